//! The last-writer-wins register: one value that replicas overwrite concurrently.

use serde::{Deserialize, Serialize};

use super::hlc::HlcTimestamp;

/// A value and the HLC of the write that set it; the write with the greatest stamp wins.
///
/// HLC stamps include the node id, so two different nodes never issue equal stamps. Equal
/// stamps with different values can still reach a replica (a buggy or replayed writer, a
/// hand-built state), and then keeping the larger value under `Ord` is what keeps merge
/// commutative: either side would otherwise win depending on who merged into whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LWWRegister<T> {
    value: T,
    stamp: HlcTimestamp,
}

impl<T: Clone + Ord> LWWRegister<T> {
    pub fn new(value: T, at: HlcTimestamp) -> Self {
        LWWRegister { value, stamp: at }
    }

    /// Takes `value` if `at` is newer than the current stamp (or equal, with a larger value);
    /// an older write is ignored, so writes may arrive in any order.
    pub fn set(&mut self, value: T, at: HlcTimestamp) {
        if self.wins(&value, at) {
            self.value = value;
            self.stamp = at;
        }
    }

    pub fn get(&self) -> &T {
        &self.value
    }

    pub fn stamp(&self) -> HlcTimestamp {
        self.stamp
    }

    /// Keeps whichever side wins under `set`'s rule; clones only when `other` wins.
    pub fn merge(&mut self, other: &Self) {
        if self.wins(&other.value, other.stamp) {
            self.value = other.value.clone();
            self.stamp = other.stamp;
        }
    }

    /// `(stamp, value)` compared lexicographically: a total order, hence a lawful max.
    fn wins(&self, value: &T, at: HlcTimestamp) -> bool {
        (at, value) > (self.stamp, &self.value)
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
    fn the_newest_write_wins_in_any_arrival_order() {
        let mut r = LWWRegister::new("a", at(5, 1));
        r.set("old", at(3, 2));
        assert_eq!(*r.get(), "a");
        r.set("new", at(5, 2));
        assert_eq!(*r.get(), "new");
        assert_eq!(r.stamp(), at(5, 2));
        r.set("older", at(4, 9));
        assert_eq!(*r.get(), "new");
    }

    #[test]
    fn equal_stamps_keep_the_larger_value_whichever_side_merges() {
        let mut a = LWWRegister::new(3u64, at(7, 1));
        let mut b = LWWRegister::new(9u64, at(7, 1));
        let a0 = a.clone();
        a.merge(&b);
        b.merge(&a0);
        assert_eq!(a, b);
        assert_eq!(*a.get(), 9);
    }
}
