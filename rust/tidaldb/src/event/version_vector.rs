//! The version vector: the highest seq applied from each origin.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::schema::NodeId;

/// Sorted by origin. Clusters have a handful of origins, so a small sorted vector beats a map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector {
    entries: SmallVec<[(NodeId, u64); 4]>,
}

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn get(&self, origin: NodeId) -> u64 {
        self.entries
            .iter()
            .find(|(o, _)| *o == origin)
            .map_or(0, |(_, s)| *s)
    }

    /// Raises `origin`'s entry to `seq`; never lowers it.
    #[inline]
    pub fn advance(&mut self, origin: NodeId, seq: u64) {
        match self.entries.binary_search_by_key(&origin, |(o, _)| *o) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.max(seq),
            Err(i) => self.entries.insert(i, (origin, seq)),
        }
    }

    /// Sorted by origin without repeats, as `advance` keeps it; for vectors read from disk.
    pub fn is_well_formed(&self) -> bool {
        self.entries.windows(2).all(|p| p[0].0 < p[1].0)
            && self.entries.iter().all(|(_, seq)| *seq <= 1 << 62)
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Total events applied, summed over origins.
    pub fn sum(&self) -> u64 {
        self.entries.iter().map(|(_, s)| *s).sum()
    }

    /// True when every entry of `other` is covered by `self`.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.iter().all(|(o, s)| self.get(o) >= s)
    }

    pub fn merge(&mut self, other: &VersionVector) {
        for (o, s) in other.iter() {
            self.advance(o, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_merge_and_dominate() {
        let mut a = VersionVector::new();
        a.advance(NodeId(2), 5);
        a.advance(NodeId(1), 3);
        a.advance(NodeId(2), 4);
        assert_eq!(a.get(NodeId(2)), 5);
        assert_eq!(a.get(NodeId(9)), 0);
        let mut b = VersionVector::new();
        b.advance(NodeId(1), 7);
        assert!(!a.dominates(&b) && !b.dominates(&a));
        a.merge(&b);
        assert!(a.dominates(&b));
        assert_eq!(a.sum(), 12);
    }
}
