//! Hybrid logical clock: wall time that never runs backwards and orders concurrent events.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TidalError};
use crate::schema::{NodeId, Timestamp};

/// Ordered by `(wall_ns, logical, node_id)`; the field order makes the derived `Ord` exactly that.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct HlcTimestamp {
    pub wall_ns: u64,
    pub logical: u32,
    pub node_id: u16,
}

/// The clock of one node. It is handed the physical time on every call (the node is
/// sans-IO), and it refuses remote timestamps too far ahead, so one machine with a broken
/// clock cannot drag every replica's clock into the future.
#[derive(Clone, Debug)]
pub struct HybridClock {
    node: NodeId,
    last: HlcTimestamp,
    max_drift_ns: u64,
}

impl HybridClock {
    pub const DEFAULT_MAX_DRIFT: Duration = Duration::from_secs(60);

    pub fn new(node: NodeId, max_drift: Duration) -> Self {
        HybridClock {
            node,
            last: HlcTimestamp {
                wall_ns: 0,
                logical: 0,
                node_id: node.0,
            },
            max_drift_ns: u64::try_from(max_drift.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// A timestamp for a local event, strictly greater than every one issued or seen before.
    ///
    /// It returns the stamp it built rather than reading `last` back: a bulk write stamps
    /// millions of events in a row, and reading back the fields just stored one by one
    /// stalls the CPU on every event (the wider load cannot be forwarded from the stores).
    pub fn now(&mut self, physical: Timestamp) -> HlcTimestamp {
        let wall = physical.as_nanos() as u64;
        let (wall, logical) = if wall > self.last.wall_ns {
            (wall, 0)
        } else {
            after(self.last.wall_ns, self.last.logical)
        };
        let stamp = HlcTimestamp {
            wall_ns: wall,
            logical,
            node_id: self.node.0,
        };
        self.last = stamp;
        stamp
    }

    /// Merges a remote timestamp, so that later local events order after it.
    pub fn update(&mut self, remote: HlcTimestamp, physical: Timestamp) -> Result<HlcTimestamp> {
        let wall_now = physical.as_nanos() as u64;
        let ahead = remote.wall_ns.saturating_sub(wall_now);
        if ahead > self.max_drift_ns {
            return Err(TidalError::ClockSkew {
                ahead_ns: ahead,
                max_drift_ns: self.max_drift_ns,
            });
        }
        let wall = wall_now.max(self.last.wall_ns).max(remote.wall_ns);
        let logical = match (wall == self.last.wall_ns, wall == remote.wall_ns) {
            (true, true) => Some(self.last.logical.max(remote.logical)),
            (true, false) => Some(self.last.logical),
            (false, true) => Some(remote.logical),
            (false, false) => None,
        };
        match logical {
            Some(l) => self.tick_logical(wall, l),
            None => self.set(wall, 0),
        }
        Ok(self.last)
    }

    /// Advances past a timestamp replayed from the log, without the drift check: it was
    /// accepted once already.
    pub fn observe(&mut self, seen: HlcTimestamp) {
        if (seen.wall_ns, seen.logical) > (self.last.wall_ns, self.last.logical) {
            self.set(seen.wall_ns, seen.logical);
        }
    }

    fn tick_logical(&mut self, wall: u64, logical: u32) {
        let (wall, logical) = after(wall, logical);
        self.set(wall, logical);
    }

    fn set(&mut self, wall_ns: u64, logical: u32) {
        self.last = HlcTimestamp {
            wall_ns,
            logical,
            node_id: self.node.0,
        };
    }
}

/// The `(wall, logical)` that follows one: the next logical tick, or, after 4 billion events
/// in one nanosecond, the next nanosecond.
fn after(wall: u64, logical: u32) -> (u64, u32) {
    match logical.checked_add(1) {
        Some(l) => (wall, l),
        None => (wall.saturating_add(1), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ns: i64) -> Timestamp {
        Timestamp::from_nanos(ns).unwrap()
    }

    #[test]
    fn now_is_strictly_monotonic_even_when_the_wall_clock_stalls_or_steps_back() {
        let mut c = HybridClock::new(NodeId(1), HybridClock::DEFAULT_MAX_DRIFT);
        let a = c.now(ts(100));
        let b = c.now(ts(100));
        let d = c.now(ts(50));
        assert!(a < b && b < d);
        assert_eq!(d.wall_ns, 100);
    }

    #[test]
    fn update_orders_after_the_remote_and_rejects_excess_drift() {
        let mut c = HybridClock::new(NodeId(1), Duration::from_nanos(1_000));
        let remote = HlcTimestamp {
            wall_ns: 900,
            logical: 7,
            node_id: 2,
        };
        let merged = c.update(remote, ts(500)).unwrap();
        assert!(merged > remote);
        assert!(c.now(ts(500)) > merged);
        let far = HlcTimestamp {
            wall_ns: 10_000,
            logical: 0,
            node_id: 2,
        };
        assert!(matches!(
            c.update(far, ts(500)),
            Err(TidalError::ClockSkew { .. })
        ));
        assert!(c.last() < far, "a rejected remote must not move the clock");
    }
}
