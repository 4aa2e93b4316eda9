//! The hard-negative register: hide wins until an unhide with a strictly later HLC.

use serde::{Deserialize, Serialize};

use super::hlc::HlcTimestamp;

/// `{hide_hlc, unhide_hlc}`, each merged by max. Union semantics: a hide seen on any
/// replica hides the item everywhere until some replica unhides it later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HideRegister {
    pub hide: HlcTimestamp,
    pub unhide: HlcTimestamp,
}

impl HideRegister {
    pub fn hide(&mut self, at: HlcTimestamp) {
        self.hide = self.hide.max(at);
    }

    pub fn unhide(&mut self, at: HlcTimestamp) {
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

    fn at(wall_ns: u64, node_id: u16) -> HlcTimestamp {
        HlcTimestamp {
            wall_ns,
            logical: 0,
            node_id,
        }
    }

    #[test]
    fn hide_wins_until_a_strictly_later_unhide_in_any_order() {
        let ops: [(bool, HlcTimestamp); 3] =
            [(true, at(10, 1)), (false, at(5, 2)), (true, at(3, 3))];
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
}
