//! The bounded counter of AntidoteDB: a quota that replicas spend concurrently without
//! ever spending more than it holds together, because each spends only rights it holds.
//!
//! The rights total a fixed cap. Each replica starts with a share of them (its `initial`),
//! may give part of what it holds to another replica, and spends from what it holds. A
//! replica's rights are `initial + received − given − consumed`. Only the replica itself
//! raises its own `given` and `consumed` entries, and only while its rights stay at or
//! above zero; what it has received but not yet heard of only adds to its rights. So in
//! the union of all replicas' states every replica's rights are at least zero, and summing
//! over replicas (every transfer is given once and received once) bounds the total
//! consumed by the sum of the initial shares: the cap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::NodeId;

/// Every transfer and every replica's consumption. Each entry only ever grows, and only
/// one replica raises it, so merge is a per-entry max.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundedCounter {
    /// `(from, to)` → rights `from` has given `to` in all.
    transfers: BTreeMap<(NodeId, NodeId), u64>,
    /// Replica → rights it has spent in all.
    consumed: BTreeMap<NodeId, u64>,
}

impl BoundedCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// `by` spends `n` rights. Only `by` itself records this, after checking that it
    /// holds them (see [`BoundedCounter::rights`]).
    pub fn consume(&mut self, by: NodeId, n: u64) {
        if n > 0 {
            let e = self.consumed.entry(by).or_default();
            *e = e.saturating_add(n);
        }
    }

    /// `from` gives `n` of its rights to `to`; only `from` records this.
    pub fn transfer(&mut self, from: NodeId, to: NodeId, n: u64) {
        if n > 0 {
            let e = self.transfers.entry((from, to)).or_default();
            *e = e.saturating_add(n);
        }
    }

    pub fn consumed(&self, by: NodeId) -> u64 {
        self.consumed.get(&by).copied().unwrap_or(0)
    }

    /// Rights every replica has given `to`.
    pub fn received(&self, to: NodeId) -> u64 {
        self.transfers
            .iter()
            .filter(|((_, t), _)| *t == to)
            .fold(0u64, |s, (_, n)| s.saturating_add(*n))
    }

    /// Rights `from` has given every replica.
    pub fn given(&self, from: NodeId) -> u64 {
        self.transfers
            .range((from, NodeId(0))..=(from, NodeId(u16::MAX)))
            .fold(0u64, |s, (_, n)| s.saturating_add(*n))
    }

    /// `initial + received − given − consumed` of `node`: never negative in a state
    /// that replicas following the rules above can reach.
    pub fn balance(&self, node: NodeId, initial: u64) -> i128 {
        i128::from(initial) + i128::from(self.received(node))
            - i128::from(self.given(node))
            - i128::from(self.consumed(node))
    }

    /// What `node` holds, as far as this state knows, when it started with `initial`; a
    /// negative balance (which no replica can reach) reads as holding nothing.
    pub fn rights(&self, node: NodeId, initial: u64) -> u64 {
        u64::try_from(self.balance(node, initial).max(0)).unwrap_or(u64::MAX)
    }

    /// Everything consumed, by every replica.
    pub fn total_consumed(&self) -> u64 {
        self.consumed
            .values()
            .fold(0u64, |s, n| s.saturating_add(*n))
    }

    /// Per-entry max: each entry only grows, so the larger has seen every change the
    /// smaller has.
    pub fn merge(&mut self, other: &Self) {
        for (k, n) in &other.transfers {
            let e = self.transfers.entry(*k).or_default();
            *e = (*e).max(*n);
        }
        for (k, n) in &other.consumed {
            let e = self.consumed.entry(*k).or_default();
            *e = (*e).max(*n);
        }
    }

    /// Every transfer, as `((from, to), total)`, in key order (for digests).
    pub fn transfers(&self) -> impl Iterator<Item = (&(NodeId, NodeId), &u64)> + '_ {
        self.transfers.iter()
    }

    /// Every replica's consumption, in key order (for digests).
    pub fn consumption(&self) -> impl Iterator<Item = (&NodeId, &u64)> + '_ {
        self.consumed.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Consume(u16, u64),
        Transfer(u16, u16, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..4, 0u64..50).prop_map(|(n, k)| Op::Consume(n, k)),
            (0u16..4, 0u16..4, 0u64..50).prop_map(|(a, b, k)| Op::Transfer(a, b, k)),
        ]
    }

    fn counter() -> impl Strategy<Value = BoundedCounter> {
        proptest::collection::vec(op(), 0..20).prop_map(|ops| {
            let mut c = BoundedCounter::new();
            for o in ops {
                match o {
                    Op::Consume(n, k) => c.consume(NodeId(n), k),
                    Op::Transfer(a, b, k) => c.transfer(NodeId(a), NodeId(b), k),
                }
            }
            c
        })
    }

    fn merged(a: &BoundedCounter, b: &BoundedCounter) -> BoundedCounter {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in counter(), b in counter()) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in counter(), b in counter(), c in counter()) {
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in counter(), b in counter()) {
            prop_assert_eq!(merged(&a, &a), a.clone());
            let once = merged(&a, &b);
            prop_assert_eq!(merged(&once, &b), once);
        }
    }

    /// Replicas that each act only on their own view, consuming and giving only what they
    /// hold there, with states exchanged in a random order: whatever the schedule, the
    /// merged total consumed never passes the cap, and no replica's rights in the merged
    /// state are negative.
    #[derive(Clone, Debug)]
    enum Step {
        /// Replica tries to consume this many.
        Spend(usize, u64),
        /// Replica gives this many (if it holds them) to another.
        Give(usize, usize, u64),
        /// Replica learns another's state.
        Learn(usize, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..3, 1u64..8).prop_map(|(r, n)| Step::Spend(r, n)),
            (0usize..3, 0usize..3, 1u64..8).prop_map(|(a, b, n)| Step::Give(a, b, n)),
            (0usize..3, 0usize..3).prop_map(|(a, b)| Step::Learn(a, b)),
        ]
    }

    proptest! {
        #[test]
        fn never_admits_past_the_cap(
            cap in 1u64..40,
            home in 0usize..3,
            steps in proptest::collection::vec(step(), 0..200),
        ) {
            let initial = |r: usize| if r == home { cap } else { 0 };
            let mut views = vec![BoundedCounter::new(); 3];
            let id = |r: usize| NodeId(r as u16);
            let mut admitted = 0u64;
            for s in steps {
                match s {
                    Step::Spend(r, n) => {
                        if views[r].rights(id(r), initial(r)) >= n {
                            views[r].consume(id(r), n);
                            admitted += n;
                        }
                    }
                    Step::Give(a, b, n) => {
                        if a != b && views[a].rights(id(a), initial(a)) >= n {
                            views[a].transfer(id(a), id(b), n);
                        }
                    }
                    Step::Learn(a, b) => {
                        let other = views[b].clone();
                        views[a].merge(&other);
                    }
                }
            }
            let mut all = BoundedCounter::new();
            for v in &views {
                all.merge(v);
            }
            prop_assert!(admitted <= cap, "admitted {} past the cap {}", admitted, cap);
            prop_assert_eq!(all.total_consumed(), admitted);
            let held: i128 = (0..3)
                .map(|r| all.balance(id(r), initial(r)))
                .inspect(|h| assert!(*h >= 0, "a replica holds negative rights"))
                .sum();
            prop_assert_eq!(held + i128::from(admitted), i128::from(cap), "rights are conserved");
        }
    }
}
