//! The positive-negative counter: a count that replicas change concurrently and merge
//! without coordination.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::error::{Result, TidalError};
use crate::schema::NodeId;

/// One `(node, p, n)` triple per node that ever changed the counter.
///
/// A single signed total cannot be merged: two replicas that each added 1 look the same as
/// one replica that added 1 seen twice. Keeping each node's increments (`p`) and decrements
/// (`n`) apart, and letting only that node raise them, makes every entry grow monotonically,
/// so merge is a per-node max and delivering a state twice changes nothing. The entries are
/// sorted by node: clusters have a handful of nodes, so a small sorted vector beats a map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PNCounter {
    entries: SmallVec<[(NodeId, u64, u64); 4]>,
}

impl PNCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` to `node`'s increments. Only `node` itself may call this on its own
    /// replica, or two replicas would raise the same entry and merge would lose one raise.
    pub fn increment(&mut self, node: NodeId, by: u64) -> Result<()> {
        self.bump(node, by, |e| &mut e.1, "increments")
    }

    /// Adds `by` to `node`'s decrements, with the same single-writer rule as `increment`.
    pub fn decrement(&mut self, node: NodeId, by: u64) -> Result<()> {
        self.bump(node, by, |e| &mut e.2, "decrements")
    }

    /// The total, as `i128` because the sum over up to 2^16 nodes of `u64` increments minus
    /// as many decrements cannot overflow it.
    pub fn value(&self) -> i128 {
        self.entries
            .iter()
            .map(|&(_, p, n)| i128::from(p) - i128::from(n))
            .sum()
    }

    /// Per-node max of `p` and of `n`: each entry only ever grows, so the larger one has seen
    /// every change the smaller one has.
    pub fn merge(&mut self, other: &Self) {
        if other.entries.is_empty() {
            return;
        }
        let mut out: SmallVec<[(NodeId, u64, u64); 4]> =
            SmallVec::with_capacity(self.entries.len().max(other.entries.len()));
        let (mut a, mut b) = (
            self.entries.iter().peekable(),
            other.entries.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x.0 == y.0 => {
                    a.next();
                    b.next();
                    (x.0, x.1.max(y.1), x.2.max(y.2))
                }
                (Some(&&x), Some(&&y)) if x.0 < y.0 => {
                    a.next();
                    x
                }
                (_, Some(&&y)) => {
                    b.next();
                    y
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            out.push(next);
        }
        self.entries = out;
    }

    /// Sorted by node without repeats, as `increment` and `merge` keep it; for counters read
    /// from disk or the network, whose merge would otherwise silently mis-align entries.
    pub fn is_well_formed(&self) -> bool {
        self.entries.windows(2).all(|p| p[0].0 < p[1].0)
    }

    fn bump(
        &mut self,
        node: NodeId,
        by: u64,
        field: fn(&mut (NodeId, u64, u64)) -> &mut u64,
        what: &str,
    ) -> Result<()> {
        // A zero change must not create an entry: states would then differ under `==`
        // while meaning the same count.
        if by == 0 {
            return Ok(());
        }
        let i = match self.entries.binary_search_by_key(&node, |e| e.0) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (node, 0, 0));
                i
            }
        };
        let slot = field(&mut self.entries[i]);
        match slot.checked_add(by) {
            Some(v) => {
                *slot = v;
                Ok(())
            }
            None => {
                let current = *slot;
                // Undo the insert above, so a refused change leaves no trace.
                if self.entries[i].1 == 0 && self.entries[i].2 == 0 {
                    self.entries.remove(i);
                }
                Err(TidalError::InvalidArgument {
                    name: "by",
                    reason: format!(
                        "node {}'s {what} are {current}; adding {by} overflows u64, \
                         and saturating would silently drop counts, so the change is refused",
                        node.0
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_sums_increments_minus_decrements_across_nodes() {
        let mut c = PNCounter::new();
        c.increment(NodeId(3), 10).unwrap();
        c.decrement(NodeId(1), 4).unwrap();
        c.increment(NodeId(1), 1).unwrap();
        c.increment(NodeId(2), 0).unwrap();
        assert_eq!(c.value(), 7);
        assert!(c.is_well_formed());
        assert_eq!(c.entries.len(), 2, "a zero change creates no entry");
    }

    #[test]
    fn value_does_not_overflow_at_the_extremes() {
        let mut c = PNCounter::new();
        c.increment(NodeId(1), u64::MAX).unwrap();
        c.increment(NodeId(2), u64::MAX).unwrap();
        assert_eq!(c.value(), 2 * i128::from(u64::MAX));
        let mut d = PNCounter::new();
        d.decrement(NodeId(1), u64::MAX).unwrap();
        d.decrement(NodeId(2), u64::MAX).unwrap();
        assert_eq!(d.value(), -2 * i128::from(u64::MAX));
    }

    #[test]
    fn overflow_is_refused_and_leaves_the_counter_unchanged() {
        let mut c = PNCounter::new();
        c.increment(NodeId(1), u64::MAX - 1).unwrap();
        let before = c.clone();
        let err = c.increment(NodeId(1), 2).unwrap_err();
        assert!(matches!(
            err,
            TidalError::InvalidArgument { name: "by", .. }
        ));
        assert_eq!(c, before);
        c.decrement(NodeId(1), u64::MAX).unwrap();
        assert!(c.decrement(NodeId(1), 1).is_err());
        assert_eq!(c.value(), -1);
    }

    #[test]
    fn merge_takes_the_per_node_max_and_keeps_order() {
        let mut a = PNCounter::new();
        a.increment(NodeId(1), 5).unwrap();
        a.increment(NodeId(4), 2).unwrap();
        let mut b = PNCounter::new();
        b.increment(NodeId(1), 3).unwrap();
        b.decrement(NodeId(1), 1).unwrap();
        b.increment(NodeId(2), 7).unwrap();
        b.decrement(NodeId(9), 2).unwrap();
        a.merge(&b);
        assert!(a.is_well_formed());
        assert_eq!(a.value(), 5 - 1 + 2 + 7 - 2);
        let again = a.clone();
        a.merge(&b);
        assert_eq!(a, again);
    }

    #[test]
    fn unsorted_entries_are_not_well_formed() {
        let c = PNCounter {
            entries: SmallVec::from_vec(vec![(NodeId(2), 1, 0), (NodeId(1), 1, 0)]),
        };
        assert!(!c.is_well_formed());
    }
}
