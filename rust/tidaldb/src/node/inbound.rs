//! Receiving pushed events. A frame holds runs of consecutive events per origin. A run that
//! continues the version vector applies at once through the ledger's batch path; a run
//! that arrives ahead of a gap (frames reorder on the network) is kept whole and applied
//! the same way once the gap fills, rather than event by event.

use std::collections::BTreeMap;

use super::{Message, Node, Outputs};
use crate::error::Result;
use crate::event::Event;
use crate::schema::{NodeId, Timestamp};
use crate::wal::decode_frame;

/// Events held in early runs at most; beyond it a run is dropped and the sender's repair
/// ships it again.
const MAX_EARLY_EVENTS: usize = 1 << 21;

/// Runs that arrived ahead of a gap, keyed by (origin, first seq).
#[derive(Debug, Default)]
pub(super) struct EarlyRuns {
    runs: BTreeMap<(NodeId, u64), Vec<Event>>,
    len: usize,
}

impl EarlyRuns {
    fn stash(&mut self, run: &[Event]) -> bool {
        if self.len + run.len() > MAX_EARLY_EVENTS {
            return false;
        }
        let key = (run[0].id.origin, run[0].id.seq);
        let longer = self
            .runs
            .get(&key)
            .is_none_or(|held| held.len() < run.len());
        if longer {
            let old = self.runs.insert(key, run.to_vec()).map_or(0, |r| r.len());
            self.len = self.len + run.len() - old;
        }
        true
    }

    /// The held events of `origin` from `next` on, if a held run reaches `next`; runs it
    /// has overtaken are dropped on the way.
    fn take_from(&mut self, origin: NodeId, next: u64) -> Option<Vec<Event>> {
        loop {
            let key = *self.runs.range((origin, 0)..=(origin, next)).next()?.0;
            let run = self.runs.remove(&key)?;
            self.len -= run.len();
            let last = key.1 + run.len() as u64 - 1;
            if last >= next {
                let skip = (next - key.1) as usize;
                return Some(run[skip..].to_vec());
            }
        }
    }

    /// Drops runs whose events have all been applied some other way (a snapshot, another
    /// sender).
    pub fn purge(&mut self, applied: &crate::event::VersionVector) {
        let mut dropped = 0;
        self.runs.retain(|(origin, first), run| {
            let keep = first + run.len() as u64 - 1 > applied.get(*origin);
            if !keep {
                dropped += run.len();
            }
            keep
        });
        self.len -= dropped;
    }

    /// Drops every held run of `origin`. Only safe, and only needed, for the origin of a
    /// replica that left the group: a held run waits for a gap that, if anyone still has
    /// it, repair ships again whole; and if the gap was only ever on the departed
    /// replica, the run can never apply and would hold convergence back for good.
    pub fn forget_origin(&mut self, origin: NodeId) {
        let mut dropped = 0;
        self.runs.retain(|(o, _), run| {
            let keep = *o != origin;
            if !keep {
                dropped += run.len();
            }
            keep
        });
        self.len -= dropped;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn origins(&self) -> Vec<NodeId> {
        let mut origins: Vec<NodeId> = self.runs.keys().map(|(o, _)| *o).collect();
        origins.dedup();
        origins
    }
}

impl Node {
    pub(super) fn on_push(&mut self, now: Timestamp, i: usize, frame: &[u8], out: &mut Outputs) {
        let from = self.peers[i].id;
        let events = match decode_frame(frame) {
            Ok((_, events)) => events,
            Err(e) => {
                tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "damaged push dropped; the sender will retransmit");
                return;
            }
        };
        if let Some(e) = events.iter().find(|e| e.tenant != self.cfg.tenant) {
            tracing::warn!(node = self.cfg.id.0, from = from.0, tenant = %e.tenant, "push of another tenant dropped");
            return;
        }
        if let Some(newest) = events.iter().map(|e| e.hlc).max()
            && let Err(e) = self.clock.update(newest, now)
        {
            tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "push refused");
            return;
        }
        let before = out.persist.len();
        for run in events.chunk_by(|a, b| a.id.origin == b.id.origin && b.id.seq == a.id.seq + 1) {
            if let Err(e) = self.apply_run(run, &mut out.persist) {
                tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "invalid events in a push; the rest of it dropped");
                break;
            }
        }
        for e in &out.persist[before..] {
            self.log.push(e);
        }
        if out.persist.len() > before {
            self.peers[i].ack_owed = true;
        } else {
            // Nothing new: acknowledge at once, so the sender stops shipping it.
            out.messages.push((
                from,
                Message::Ack {
                    term: self.term,
                    vv: self.durable.clone(),
                },
            ));
        }
    }

    /// Applies one origin's run of consecutive events, or holds it until its gap fills.
    fn apply_run(&mut self, run: &[Event], applied: &mut Vec<Event>) -> Result<()> {
        let origin = run[0].id.origin;
        let next = self.ledger.version_vector().get(origin) + 1;
        let Some(p) = run.iter().position(|e| e.id.seq >= next) else {
            return Ok(()); // all duplicates
        };
        let fresh = &run[p..];
        if fresh[0].id.seq > next {
            if !self.early.stash(fresh) {
                tracing::debug!(
                    node = self.cfg.id.0,
                    origin = origin.0,
                    "early-run buffer full; run dropped for retransmission"
                );
            }
            return Ok(());
        }
        self.ledger.apply_batch_collect(fresh, Some(applied))?;
        self.drain_origin(origin, applied)
    }

    /// Applies the held runs of `origin` that now continue its version vector.
    fn drain_origin(&mut self, origin: NodeId, applied: &mut Vec<Event>) -> Result<()> {
        loop {
            let next = self.ledger.version_vector().get(origin) + 1;
            let Some(held) = self.early.take_from(origin, next) else {
                return Ok(());
            };
            self.ledger.apply_batch_collect(&held, Some(applied))?;
        }
    }

    /// Applies every held run that now continues its origin (after the version vector
    /// jumped, as a snapshot install makes it).
    pub(super) fn drain_early(&mut self, applied: &mut Vec<Event>) -> Result<()> {
        for origin in self.early.origins() {
            self.drain_origin(origin, applied)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::test_support::event;

    fn run(origin: u16, seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
        seqs.map(|seq| event(origin, seq)).collect()
    }

    #[test]
    fn held_runs_are_returned_from_the_next_seq_and_overtaken_ones_dropped() {
        let mut early = EarlyRuns::default();
        assert!(early.stash(&run(1, 5..=7)));
        assert!(early.stash(&run(1, 9..=12)));
        assert!(early.stash(&run(2, 3..=4)));
        assert_eq!(early.len(), 9);
        assert!(
            early.take_from(NodeId(1), 4).is_none(),
            "seq 4 is still missing"
        );
        let from6: Vec<u64> = early
            .take_from(NodeId(1), 6)
            .unwrap()
            .iter()
            .map(|e| e.id.seq)
            .collect();
        assert_eq!(from6, vec![6, 7]);
        // 9..=12 is reached from 10 only after 8 and 9 arrive; asking from 13 drops it.
        assert!(early.take_from(NodeId(1), 13).is_none());
        assert_eq!(early.len(), 2, "only origin 2's run is left");
    }
}
