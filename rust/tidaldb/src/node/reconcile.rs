//! Reconciliation: from two version vectors, what one replica must ship to the other.
//!
//! Shipping is idempotent because application is: every event carries its `(origin, seq)`,
//! and a replica drops what its version vector already covers. Applying a plan twice, or
//! two overlapping plans from different peers, therefore changes nothing the second time.

use super::log::RetainedLog;
use crate::error::{Result, TidalError};
use crate::event::{Event, VersionVector};
use crate::ledger::Ledger;
use crate::schema::NodeId;

/// The events of one origin with seq in `after+1 ..= upto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRange {
    pub origin: NodeId,
    pub after: u64,
    pub upto: u64,
}

impl LogRange {
    pub fn len(&self) -> u64 {
        self.upto - self.after
    }

    pub fn is_empty(&self) -> bool {
        self.upto <= self.after
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconcilePlan {
    /// The peer lacks nothing.
    UpToDate,
    /// Ship these ranges from the log.
    Ranges(Vec<LogRange>),
    /// Some of `missing` has left the in-memory log: read it back from the durable log
    /// (or, should that not hold it either, ship the whole state).
    ReadBack { missing: Vec<LogRange> },
}

pub struct ReconciliationEngine;

impl ReconciliationEngine {
    /// What a replica at `mine` with `log` must ship to a peer at `theirs`.
    pub fn plan(mine: &VersionVector, log: &RetainedLog, theirs: &VersionVector) -> ReconcilePlan {
        let missing = Self::missing(mine, theirs);
        if missing.is_empty() {
            ReconcilePlan::UpToDate
        } else if missing
            .iter()
            .all(|r| log.covers(r.origin, r.after, r.upto))
        {
            ReconcilePlan::Ranges(missing)
        } else {
            ReconcilePlan::ReadBack { missing }
        }
    }

    /// The ranges of events in `mine` that `theirs` lacks.
    pub fn missing(mine: &VersionVector, theirs: &VersionVector) -> Vec<LogRange> {
        mine.iter()
            .map(|(origin, upto)| LogRange {
                origin,
                after: theirs.get(origin),
                upto,
            })
            .filter(|r| !r.is_empty())
            .collect()
    }

    /// The events of `ranges`, in origin then seq order.
    pub fn gather(log: &RetainedLog, ranges: &[LogRange]) -> Vec<Event> {
        ranges
            .iter()
            .flat_map(|r| log.range(r.origin, r.after, r.upto))
            .copied()
            .collect()
    }

    /// A full resync: the state a peer shipped at `theirs`, plus the events this replica
    /// has that it lacks (from `log`). Refused, with nothing changed, when some of those
    /// have already left this replica's in-memory log; the sender then needs our events
    /// first, which we push it from our durable log.
    pub fn rebuild(snapshot: Ledger, mine: &VersionVector, log: &RetainedLog) -> Result<Ledger> {
        let ours = Self::missing(mine, snapshot.version_vector());
        if let Some(r) = ours.iter().find(|r| !log.covers(r.origin, r.after, r.upto)) {
            return Err(TidalError::Unavailable(format!(
                "cannot install the peer's snapshot: events {}..={} of origin {} are in neither \
                 it nor this replica's log",
                r.after + 1,
                r.upto,
                r.origin.0
            )));
        }
        let mut ledger = snapshot;
        for r in &ours {
            let run: Vec<Event> = log.range(r.origin, r.after, r.upto).copied().collect();
            ledger.apply_batch(&run)?;
        }
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::test_support::{event as ev, vv};

    #[test]
    fn ships_exactly_the_missing_ranges_or_reads_them_back() {
        let mut log = RetainedLog::new(NodeId(9), 100, 100);
        for seq in 1..=5 {
            log.push(&ev(1, seq));
        }
        for seq in 1..=3 {
            log.push(&ev(2, seq));
        }
        let mine = vv(&[(1, 5), (2, 3)]);
        assert_eq!(
            ReconciliationEngine::plan(&mine, &log, &mine),
            ReconcilePlan::UpToDate
        );
        let plan = ReconciliationEngine::plan(&mine, &log, &vv(&[(1, 2), (3, 9)]));
        let ReconcilePlan::Ranges(ranges) = plan else {
            panic!("expected ranges, got {plan:?}")
        };
        let ids: Vec<(u16, u64)> = ReconciliationEngine::gather(&log, &ranges)
            .iter()
            .map(|e| (e.id.origin.0, e.id.seq))
            .collect();
        assert_eq!(ids, vec![(1, 3), (1, 4), (1, 5), (2, 1), (2, 2), (2, 3)]);

        log.trim(&vv(&[(1, 3)]));
        assert!(matches!(
            ReconciliationEngine::plan(&mine, &log, &vv(&[(1, 2)])),
            ReconcilePlan::ReadBack { .. }
        ));
    }
}
