//! The hard-negative register: hide wins until an unhide that is strictly later in
//! (event time, HLC) order.
//!
//! Event time comes first so that a backfilled stream lands as it happened: replaying last
//! week's hide after today's unhide leaves the item visible, whatever order the two
//! arrive in. The HLC breaks ties between events of the same instant, so the order is
//! total and every replica reaches the same verdict.

use serde::{Deserialize, Serialize};

use super::hlc::HlcTimestamp;
use crate::schema::Timestamp;

/// Where a hide or unhide sits in the register's order: by event time, then by HLC.
/// The field order makes the derived `Ord` exactly that.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct HideStamp {
    pub at: Timestamp,
    pub hlc: HlcTimestamp,
}

impl HideStamp {
    /// The stamp of a hide written before hides carried their own time: its HLC's wall
    /// clock was the time it was written.
    pub fn from_hlc(hlc: HlcTimestamp) -> Self {
        let wall = i64::try_from(hlc.wall_ns).unwrap_or(Timestamp::MAX_NANOS);
        let at = Timestamp::from_nanos(wall.min(Timestamp::MAX_NANOS)).unwrap_or_default();
        HideStamp { at, hlc }
    }
}

/// `{hide, unhide}`, each merged by max. Union semantics: a hide seen on any replica
/// hides the item everywhere until some replica unhides it later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HideRegister {
    pub hide: HideStamp,
    pub unhide: HideStamp,
}

impl HideRegister {
    pub fn hide(&mut self, at: HideStamp) {
        self.hide = self.hide.max(at);
    }

    pub fn unhide(&mut self, at: HideStamp) {
        self.unhide = self.unhide.max(at);
    }

    pub fn merge(&mut self, other: &HideRegister) {
        self.hide(other.hide);
        self.unhide(other.unhide);
    }

    pub fn is_hidden(&self) -> bool {
        self.hide > self.unhide
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(wall_ns: u64, node_id: u16) -> HideStamp {
        HideStamp::from_hlc(HlcTimestamp {
            wall_ns,
            logical: 0,
            node_id,
        })
    }

    fn stamped(at_ns: i64, wall_ns: u64) -> HideStamp {
        HideStamp {
            at: Timestamp::from_nanos(at_ns).unwrap(),
            hlc: HlcTimestamp {
                wall_ns,
                logical: 0,
                node_id: 1,
            },
        }
    }

    #[test]
    fn hide_wins_until_a_strictly_later_unhide_in_any_order() {
        let ops: [(bool, HideStamp); 3] = [(true, at(10, 1)), (false, at(5, 2)), (true, at(3, 3))];
        let mut forward = HideRegister::default();
        let mut backward = HideRegister::default();
        for (hide, t) in ops {
            if hide {
                forward.hide(t)
            } else {
                forward.unhide(t)
            }
        }
        for (hide, t) in ops.iter().rev() {
            if *hide {
                backward.hide(*t)
            } else {
                backward.unhide(*t)
            }
        }
        assert_eq!(forward, backward);
        assert!(forward.is_hidden());
        forward.unhide(at(11, 1));
        assert!(!forward.is_hidden());
    }

    #[test]
    fn event_time_decides_before_the_clock_that_wrote_it() {
        // Today's unhide was written first; last week's hide is backfilled after it.
        let mut r = HideRegister::default();
        r.unhide(stamped(7_000, 100));
        r.hide(stamped(1_000, 200));
        assert!(!r.is_hidden());
        // At the same event time the later clock wins.
        r.hide(stamped(7_000, 300));
        assert!(r.is_hidden());
    }
}
