//! Merge laws of the state-based CRDTs, and what each converges to.
//!
//! Laws: merge is commutative, associative and idempotent, checked with `==` on the whole
//! state (not just on what it reads as), so replicas that merged the same states in any
//! order and any number of times hold identical bytes. Oracles, computed from the raw
//! operations and not through the types: the counter's value is the arithmetic total of
//! its increments minus decrements; the register holds the write with the greatest stamp;
//! an item is hidden iff its latest hide is later than its latest unhide; a version vector
//! holds the max seq seen per origin. Stamps and values come from small domains, so ties
//! (equal stamps, repeated nodes) are common. `PROPTEST_CASES=10000 cargo test -p tidaldb
//! --test crdt_laws` searches longer.

use std::collections::BTreeMap;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use smallvec::SmallVec;
use tidaldb::crdt::{
    CrdtSignalState, ExpAccumulator, HalfLife, HideRegister, HideStamp, HlcTimestamp, LWWRegister,
    PNCounter, Partial, Seq48,
};
use tidaldb::{NodeId, Timestamp, VersionVector};

/// The one operation the laws are about, so each law is written once for all four types.
trait Merge: Clone + PartialEq + Debug {
    fn merge_from(&mut self, other: &Self);
}

impl Merge for PNCounter {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other)
    }
}
impl Merge for LWWRegister<u64> {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other)
    }
}
impl Merge for HideRegister {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other)
    }
}
impl Merge for CrdtSignalState {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other)
    }
}
impl Merge for VersionVector {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other)
    }
}

fn merged<T: Merge>(a: &T, b: &T) -> T {
    let mut out = a.clone();
    out.merge_from(b);
    out
}

fn commutative<T: Merge>(a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(merged(a, b), merged(b, a));
    Ok(())
}

fn associative<T: Merge>(a: &T, b: &T, c: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
    Ok(())
}

fn idempotent<T: Merge>(a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(&merged(a, a), a);
    // Receiving the same state again after other merges changes nothing either.
    let ab = merged(a, b);
    prop_assert_eq!(merged(&ab, b), ab.clone());
    prop_assert_eq!(merged(&ab, a), ab);
    Ok(())
}

/// Never the all-zero stamp: a clock never issues it, and `HideRegister` uses it as "never".
fn stamp() -> impl Strategy<Value = HlcTimestamp> {
    (1u64..6, 0u32..3, 0u16..3).prop_map(|(wall_ns, logical, node_id)| HlcTimestamp {
        wall_ns,
        logical,
        node_id,
    })
}

/// `(node, is_increment, amount)`; amounts below 2^40, so a dozen ops on one node cannot
/// overflow its `u64` and every generated op is accepted.
fn counter_op() -> impl Strategy<Value = (u16, bool, u64)> {
    (0u16..5, any::<bool>(), 0u64..1 << 40)
}

/// Every op is accepted: the generators keep each node's total far below `u64::MAX`.
fn counter_from(ops: impl IntoIterator<Item = (u16, bool, u64)>) -> PNCounter {
    let mut c = PNCounter::new();
    for (node, inc, by) in ops {
        let r = if inc {
            c.increment(NodeId(node), by)
        } else {
            c.decrement(NodeId(node), by)
        };
        r.expect("generated ops stay far below u64::MAX per node");
    }
    c
}

fn counter() -> impl Strategy<Value = PNCounter> {
    prop::collection::vec(counter_op(), 0..12).prop_map(counter_from)
}

fn lww_from(ops: &[(u64, HlcTimestamp)]) -> LWWRegister<u64> {
    let mut r = LWWRegister::new(ops[0].0, ops[0].1);
    for &(v, at) in &ops[1..] {
        r.set(v, at);
    }
    r
}

fn lww() -> impl Strategy<Value = LWWRegister<u64>> {
    prop::collection::vec((0u64..4, stamp()), 1..5).prop_map(|ops| lww_from(&ops))
}

/// Event times from a small range, so that ties (broken by the HLC) are common.
fn hide_stamp() -> impl Strategy<Value = HideStamp> {
    (0i64..3, stamp()).prop_map(|(at, hlc)| HideStamp {
        at: Timestamp::from_nanos(at).expect("a valid timestamp"),
        hlc,
    })
}

fn hide_ops() -> impl Strategy<Value = Vec<(bool, HideStamp)>> {
    prop::collection::vec((any::<bool>(), hide_stamp()), 0..6)
}

fn hide_register(ops: &[(bool, HideStamp)]) -> HideRegister {
    let mut r = HideRegister::default();
    for &(hide, at) in ops {
        if hide { r.hide(at) } else { r.unhide(at) }
    }
    r
}

fn hide() -> impl Strategy<Value = HideRegister> {
    hide_ops().prop_map(|ops| hide_register(&ops))
}

fn vv_from(ops: &[(u16, u64)]) -> VersionVector {
    let mut v = VersionVector::new();
    for &(o, s) in ops {
        v.advance(NodeId(o), s);
    }
    v
}

fn vv() -> impl Strategy<Value = VersionVector> {
    prop::collection::vec((0u16..5, 0u64..20), 0..8).prop_map(|ops| vv_from(&ops))
}

/// Per-replica operation lists, with an order in which to merge the replicas.
/// Any state, including ones no replica could produce: a partial per origin (0..3) or
/// none, with small progress, sums and times, so equal progress with different values
/// (which merge must still order) is common.
fn signal_state() -> impl Strategy<Value = CrdtSignalState> {
    prop::collection::vec(
        prop::option::of((0u64..4, prop::sample::select(vec![0.5, 1.0, 2.0]), 0i64..3)),
        3,
    )
    .prop_map(|slots| {
        let partials: SmallVec<[Partial; 2]> = slots
            .into_iter()
            .enumerate()
            .filter_map(|(o, slot)| {
                slot.map(|(through, sum, t_ref)| Partial {
                    origin: NodeId(o as u16),
                    through: Seq48::new(through),
                    acc: ExpAccumulator { sum, t_ref },
                })
            })
            .collect();
        CrdtSignalState::from_partials(partials)
    })
}

const H: HalfLife = HalfLife(1e9);

/// The state of a replica that applied the first `upto[o]` events of each origin `o`'s
/// stream, in seq order.
fn replica_state(streams: &[Vec<(f64, i64)>], upto: &[usize]) -> CrdtSignalState {
    let mut s = CrdtSignalState::default();
    for (o, stream) in streams.iter().enumerate() {
        for (k, &(w, t)) in stream.iter().take(upto[o]).enumerate() {
            s.add(NodeId(o as u16), k as u64 + 1, w, t, H);
        }
    }
    s
}

fn replicas_in_order<T: Debug + Clone>(
    per_replica: impl Strategy<Value = T>,
) -> impl Strategy<Value = (Vec<T>, Vec<usize>)> {
    prop::collection::vec(per_replica, 1..5).prop_flat_map(|rs| {
        let order: Vec<usize> = (0..rs.len()).collect();
        (Just(rs), Just(order).prop_shuffle())
    })
}

/// Merges every replica into a fresh state, in `order`, then checks that every replica that
/// merges the result ends identical to it: convergence, not just an equal reading.
fn merge_all<T: Merge>(start: T, replicas: &[T], order: &[usize]) -> Result<T, TestCaseError> {
    let mut all = start;
    for &i in order {
        all.merge_from(&replicas[i]);
    }
    for r in replicas {
        prop_assert_eq!(&merged(r, &all), &all);
    }
    Ok(all)
}

proptest! {
    #[test]
    fn pn_counter_merge_is_commutative(a in counter(), b in counter()) {
        commutative(&a, &b)?;
    }

    #[test]
    fn pn_counter_merge_is_associative(a in counter(), b in counter(), c in counter()) {
        associative(&a, &b, &c)?;
    }

    #[test]
    fn pn_counter_merge_is_idempotent(a in counter(), b in counter()) {
        idempotent(&a, &b)?;
        prop_assert!(merged(&a, &b).is_well_formed());
    }

    #[test]
    fn lww_register_merge_is_commutative(a in lww(), b in lww()) {
        commutative(&a, &b)?;
    }

    #[test]
    fn lww_register_merge_is_associative(a in lww(), b in lww(), c in lww()) {
        associative(&a, &b, &c)?;
    }

    #[test]
    fn lww_register_merge_is_idempotent(a in lww(), b in lww()) {
        idempotent(&a, &b)?;
    }

    #[test]
    fn hide_register_merge_is_commutative(a in hide(), b in hide()) {
        commutative(&a, &b)?;
    }

    #[test]
    fn hide_register_merge_is_associative(a in hide(), b in hide(), c in hide()) {
        associative(&a, &b, &c)?;
    }

    #[test]
    fn hide_register_merge_is_idempotent(a in hide(), b in hide()) {
        idempotent(&a, &b)?;
    }

    #[test]
    fn signal_state_merge_is_commutative(a in signal_state(), b in signal_state()) {
        commutative(&a, &b)?;
    }

    #[test]
    fn signal_state_merge_is_associative(
        a in signal_state(),
        b in signal_state(),
        c in signal_state(),
    ) {
        associative(&a, &b, &c)?;
    }

    #[test]
    fn signal_state_merge_is_idempotent(a in signal_state(), b in signal_state()) {
        idempotent(&a, &b)?;
    }

    #[test]
    fn version_vector_merge_is_commutative(a in vv(), b in vv()) {
        commutative(&a, &b)?;
    }

    #[test]
    fn version_vector_merge_is_associative(a in vv(), b in vv(), c in vv()) {
        associative(&a, &b, &c)?;
    }

    #[test]
    fn version_vector_merge_is_idempotent(a in vv(), b in vv()) {
        idempotent(&a, &b)?;
    }
}

proptest! {
    /// Replica `i` changes only its own entry, `NodeId(i)`, as the single-writer rule asks.
    /// The oracle is the plain signed sum of every op, whichever replica applied it.
    #[test]
    fn pn_counter_converges_to_increments_minus_decrements(
        (ops, order) in replicas_in_order(prop::collection::vec((any::<bool>(), 0u64..1 << 40), 0..10)),
        gossip in prop::collection::vec((any::<usize>(), any::<usize>()), 0..8),
    ) {
        let mut replicas: Vec<PNCounter> = ops
            .iter()
            .enumerate()
            .map(|(i, rops)| counter_from(rops.iter().map(|&(inc, by)| (i as u16, inc, by))))
            .collect();
        let total: i128 = ops.iter().flatten().map(|&(inc, by)| if inc { by as i128 } else { -(by as i128) }).sum();
        // Some partial gossip first, so states overlap before the final merge.
        for (i, j) in gossip {
            let (i, j) = (i % replicas.len(), j % replicas.len());
            let from = replicas[j].clone();
            replicas[i].merge(&from);
        }
        let all = merge_all(PNCounter::new(), &replicas, &order)?;
        prop_assert_eq!(all.value(), total);
    }

    #[test]
    fn lww_register_converges_to_the_write_with_the_max_stamp(
        (ops, order) in replicas_in_order(prop::collection::vec((0u64..4, stamp()), 1..6)),
    ) {
        let replicas: Vec<LWWRegister<u64>> = ops.iter().map(|r| lww_from(r)).collect();
        let start = replicas[order[0]].clone();
        let all = merge_all(start, &replicas, &order)?;
        // Oracle: the greatest stamp over every write; equal stamps keep the larger value.
        let max_stamp = ops.iter().flatten().map(|&(_, at)| at).max();
        let winner = ops.iter().flatten().filter(|&&(_, at)| Some(at) == max_stamp).map(|&(v, _)| v).max();
        prop_assert_eq!(Some(all.stamp()), max_stamp);
        prop_assert_eq!(Some(*all.get()), winner);
    }

    #[test]
    fn hide_register_is_hidden_iff_the_latest_hide_follows_the_latest_unhide(
        (ops, order) in replicas_in_order(hide_ops()),
    ) {
        let replicas: Vec<HideRegister> = ops.iter().map(|r| hide_register(r)).collect();
        let all = merge_all(HideRegister::default(), &replicas, &order)?;
        // Event time first, then the clock: spelled out as a tuple, not the stamp's own order.
        let latest = |want: bool| ops.iter().flatten().filter(|&&(h, _)| h == want).map(|&(_, s)| (s.at, s.hlc)).max();
        let hidden = match (latest(true), latest(false)) {
            (Some(h), Some(u)) => h > u,
            (Some(_), None) => true,
            (None, _) => false,
        };
        prop_assert_eq!(all.is_hidden(), hidden);
    }

    #[test]
    fn version_vector_converges_to_the_max_seq_per_origin(
        (ops, order) in replicas_in_order(prop::collection::vec((0u16..5, 0u64..20), 0..8)),
    ) {
        let replicas: Vec<VersionVector> = ops.iter().map(|r| vv_from(r)).collect();
        let all = merge_all(VersionVector::new(), &replicas, &order)?;
        let mut expected: BTreeMap<u16, u64> = BTreeMap::new();
        for &(o, s) in ops.iter().flatten() {
            let e = expected.entry(o).or_default();
            *e = (*e).max(s);
        }
        let got: BTreeMap<u16, u64> = all.iter().map(|(o, s)| (o.0, s)).collect();
        prop_assert_eq!(&got, &expected);
        for o in 0..6u16 {
            prop_assert_eq!(all.get(NodeId(o)), expected.get(&o).copied().unwrap_or(0));
        }
    }

    /// Replicas that applied different prefixes of each origin's stream merge into the
    /// state of a replica that applied the longest prefix of each, bit for bit: no event
    /// is counted twice, none is lost.
    #[test]
    fn signal_states_merge_to_the_replica_that_applied_both(
        streams in prop::collection::vec(
            prop::collection::vec((-4.0f64..4.0, 0i64..5_000_000_000), 0..8),
            3,
        ),
        cuts in prop::collection::vec((0usize..9, 0usize..9), 3),
    ) {
        let upto = |pick: fn(&(usize, usize)) -> usize| -> Vec<usize> {
            cuts.iter().zip(&streams).map(|(c, s)| pick(c).min(s.len())).collect()
        };
        let (a_upto, b_upto) = (upto(|c| c.0), upto(|c| c.1));
        let both: Vec<usize> = a_upto.iter().zip(&b_upto).map(|(a, b)| *a.max(b)).collect();
        let mut merged = replica_state(&streams, &a_upto);
        merged.merge(&replica_state(&streams, &b_upto));
        let expected = replica_state(&streams, &both);
        prop_assert_eq!(merged.read(7_000_000_000, H), expected.read(7_000_000_000, H));
        prop_assert_eq!(merged, expected);
    }
}
