//! Replication lag: how far a replica is behind, in events and in time.

use std::time::Duration;

use serde::Serialize;

use crate::event::VersionVector;
use crate::schema::{NodeId, Timestamp};

/// One replica's lag as last measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LagReading {
    /// Events the reference has that the replica lacks, summed over origins.
    pub events: u64,
    /// How long the oldest of those has existed; zero when `events` is zero.
    pub oldest_age: Duration,
    /// When this was measured.
    pub measured_at_ns: i64,
}

/// Reference vectors a replica was seen behind, oldest first, for when no event times are
/// known. Every event the replica lacks appeared after the newest checkpoint it covers, so
/// the time since that checkpoint bounds the age from above, to within the interval between
/// reports. Bounded; when full, newer checkpoints are skipped, which can only overstate it.
const MAX_CHECKPOINTS: usize = 64;

#[derive(Clone, Debug, Default)]
struct Tracked {
    reading: LagReading,
    checkpoints: std::collections::VecDeque<(Timestamp, VersionVector)>,
    /// When the replica last covered everything the reference had.
    caught_up_at: Option<Timestamp>,
}

/// Lag per replica against a reference version vector (the leader's, or the union of
/// every live replica's).
#[derive(Clone, Debug, Default)]
pub struct ReplicationLagGauge {
    readings: Vec<(NodeId, Tracked)>,
}

/// Events in `reference` missing from `replica`.
pub fn events_behind(reference: &VersionVector, replica: &VersionVector) -> u64 {
    reference
        .iter()
        .map(|(o, seq)| seq.saturating_sub(replica.get(o)))
        .sum()
}

impl ReplicationLagGauge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `replica`'s state at `now`. `oldest_unapplied` is the time of the oldest
    /// event it lacks, when the caller knows it (a leader looks it up in its log); without
    /// it the age counts from the newest report of `reference` that the replica covers.
    pub fn record(
        &mut self,
        replica: NodeId,
        reference: &VersionVector,
        replica_vv: &VersionVector,
        oldest_unapplied: Option<Timestamp>,
        now: Timestamp,
    ) {
        let events = events_behind(reference, replica_vv);
        let i = match self.readings.binary_search_by_key(&replica, |(n, _)| *n) {
            Ok(i) => i,
            Err(i) => {
                self.readings.insert(i, (replica, Tracked::default()));
                i
            }
        };
        let tracked = &mut self.readings[i].1;
        while let Some((at, seen)) = tracked.checkpoints.front() {
            if !replica_vv.dominates(seen) {
                break;
            }
            tracked.caught_up_at = Some(*at);
            tracked.checkpoints.pop_front();
        }
        if events == 0 {
            tracked.caught_up_at = Some(now);
            tracked.checkpoints.clear();
        } else if tracked.checkpoints.len() < MAX_CHECKPOINTS
            && tracked
                .checkpoints
                .back()
                .is_none_or(|(_, seen)| seen != reference)
        {
            tracked.checkpoints.push_back((now, reference.clone()));
        }
        let since = match oldest_unapplied {
            _ if events == 0 => None,
            Some(t) => Some(t),
            None => tracked
                .caught_up_at
                .or(tracked.checkpoints.front().map(|(t, _)| *t)),
        };
        let age_ns = since.map_or(0, |t| (now.as_nanos() - t.as_nanos()).max(0));
        tracked.reading = LagReading {
            events,
            oldest_age: Duration::from_nanos(age_ns as u64),
            measured_at_ns: now.as_nanos(),
        };
    }

    pub fn lag(&self, replica: NodeId) -> Option<LagReading> {
        self.readings
            .binary_search_by_key(&replica, |(n, _)| *n)
            .ok()
            .map(|i| self.readings[i].1.reading)
    }

    pub fn readings(&self) -> impl Iterator<Item = (NodeId, LagReading)> + '_ {
        self.readings.iter().map(|(n, t)| (*n, t.reading))
    }

    pub fn forget(&mut self, replica: NodeId) {
        self.readings.retain(|(n, _)| *n != replica);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::test_support::vv;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000).unwrap()
    }

    #[test]
    fn counts_missing_events_and_ages_from_the_oldest_or_first_seen() {
        let mut g = ReplicationLagGauge::new();
        let reference = vv(&[(0, 10), (1, 4)]);
        g.record(NodeId(2), &reference, &vv(&[(0, 7), (1, 5)]), None, at(100));
        g.record(NodeId(2), &reference, &vv(&[(0, 8), (1, 5)]), None, at(150));
        let r = g.lag(NodeId(2)).unwrap();
        assert_eq!(r.events, 2);
        assert_eq!(
            r.oldest_age,
            Duration::from_millis(50),
            "behind since 100 ms"
        );
        g.record(NodeId(3), &reference, &vv(&[(0, 9)]), Some(at(20)), at(150));
        assert_eq!(
            g.lag(NodeId(3)).unwrap().oldest_age,
            Duration::from_millis(130)
        );
        g.record(NodeId(2), &reference, &reference, None, at(160));
        assert_eq!(g.lag(NodeId(2)).unwrap().events, 0);
        assert_eq!(g.lag(NodeId(2)).unwrap().oldest_age, Duration::ZERO);
        assert!(g.lag(NodeId(9)).is_none());
    }

    /// Under steady writes a replica is always a little behind; its age is how far behind,
    /// not how long it has been writing.
    #[test]
    fn the_age_under_steady_writes_stays_at_the_delay() {
        let mut g = ReplicationLagGauge::new();
        // Every 50 ms the reference gains 10 events; the replica has what the reference
        // had 100 ms before.
        for step in 2..200 {
            let reference = vv(&[(0, step * 10)]);
            let replica = vv(&[(0, (step - 2) * 10)]);
            g.record(NodeId(1), &reference, &replica, None, at(step as i64 * 50));
        }
        let r = g.lag(NodeId(1)).unwrap();
        assert_eq!(r.events, 20);
        // The oldest missing event appeared between 50 and 100 ms ago: after the reference
        // of 100 ms ago, which the replica covers.
        assert_eq!(r.oldest_age, Duration::from_millis(100));
    }
}
