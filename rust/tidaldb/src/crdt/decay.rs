//! Decay accumulators: the exact arithmetic of DESIGN.md "convergence is exact".

use serde::{Deserialize, Deserializer, Serialize, Serializer};

// `2^x` with the bits of the pure-Rust `libm::exp2`, so that every machine computes the
// same decay factors; inlined for the finite arguments decay sees.
use super::exp2;
use crate::schema::{NodeId, Timestamp};

/// Half-life in nanoseconds as a float; `f64::INFINITY` for signals that never decay,
/// which makes every decay factor exactly `2^-0 = 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HalfLife(pub f64);

/// An exponentially decaying sum `(sum, t_ref)`: the value at `t_ref` of every event added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpAccumulator {
    pub sum: f64,
    pub t_ref: i64,
}

impl ExpAccumulator {
    /// Adds `w` at time `t`. An event at or after `t_ref` moves the reference forward; an
    /// earlier (late) one is decayed to `t_ref` instead, so late events are exact too.
    #[inline]
    pub fn add(&mut self, w: f64, t: i64, h: HalfLife) {
        if t == self.t_ref {
            // The factor would be 2^-0, exactly 1, and `sum * 1.0` is `sum` bit for bit:
            // the same sum without the call. Events stamped "now" by one bulk write share
            // their timestamp, so this is their common case.
            debug_assert_eq!(exp2(-0.0 / h.0).to_bits(), 1f64.to_bits());
            self.sum += w;
        } else if t > self.t_ref {
            let factor = exp2(-((t - self.t_ref) as f64) / h.0);
            self.sum = self.sum * factor + w;
            self.t_ref = t;
        } else {
            self.sum += w * exp2(-((self.t_ref - t) as f64) / h.0);
        }
    }

    /// The value at `t`. Reading before `t_ref` grows the sum back, consistent with the
    /// analytical `Σ w·2^(-(t - t_i)/h)` over every event applied.
    #[inline]
    pub fn read(&self, t: i64, h: HalfLife) -> f64 {
        self.sum * exp2(-((t - self.t_ref) as f64) / h.0)
    }
}

/// A sequence number in 48 bits and 2-byte alignment, so that it shares a word with the
/// origin and a [`Partial`] stays 24 bytes. Saturates at 2^48 - 1 (281 trillion events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seq48([u16; 3]);

/// Ordered as the numbers: compared as one `u64`. The derived order would compare the
/// three halfwords one after another, with a branch each, and every event's apply takes a
/// maximum of two seqs.
impl Ord for Seq48 {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.get().cmp(&other.get())
    }
}

impl PartialOrd for Seq48 {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Seq48 {
    pub const MAX: u64 = (1 << 48) - 1;

    #[inline]
    pub fn new(seq: u64) -> Self {
        let s = seq.min(Self::MAX);
        Seq48([(s >> 32) as u16, (s >> 16) as u16, s as u16])
    }

    #[inline]
    pub fn get(self) -> u64 {
        let [hi, mid, lo] = self.0;
        (u64::from(hi) << 32) | (u64::from(mid) << 16) | u64::from(lo)
    }
}

/// One origin's share of a signal state.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub origin: NodeId,
    /// The seq of the newest of `origin`'s events added: how far into that origin's log
    /// this partial reaches. Replicas add one origin's events in seq order, so of two
    /// partials of one origin, the one that reaches further contains the other.
    pub through: Seq48,
    pub acc: ExpAccumulator,
}

impl Partial {
    /// The order `merge` keeps the maximum of: progress first, then the value's bits, so
    /// that merging is a join even for partials no replica could have produced.
    fn rank(&self) -> (Seq48, u64, i64) {
        (self.through, self.acc.sum.to_bits(), self.acc.t_ref)
    }
}

/// The decay state of one (entity, signal): one accumulator per origin, sorted by origin.
///
/// Each replica applies one origin's events in seq order, so it computes that origin's
/// partial with the same floating-point operations as every other replica; summing the
/// partials in origin order then gives bit-identical reads everywhere. No event is counted
/// twice, because an event only ever enters its own origin's partial.
///
/// 32 bytes: an entity written from one origin (every entity of a single node) keeps its
/// partial inline; a second origin moves them all to the heap.
#[derive(Clone, Debug, PartialEq)]
pub struct CrdtSignalState {
    partials: Partials,
}

/// One partial inline, or any other number of them on the heap (sorted by origin). The
/// two shapes hold the same sequence, so every read and merge sees only the slice.
#[derive(Clone, Debug, PartialEq)]
enum Partials {
    One(Partial),
    Many(Vec<Partial>),
}

impl Default for CrdtSignalState {
    fn default() -> Self {
        CrdtSignalState {
            partials: Partials::Many(Vec::new()),
        }
    }
}

impl CrdtSignalState {
    /// Adds `origin`'s event number `seq`, of weight `w` at time `t`.
    #[inline]
    pub fn add(&mut self, origin: NodeId, seq: u64, w: f64, t: i64, h: HalfLife) {
        if let Partials::Many(none) = &self.partials
            && none.is_empty()
        {
            // An entity's first event: its partial inline at once, with no vector built
            // and dropped on the way (a bulk load creates an entity every few events).
            self.partials = Partials::One(Self::fresh(origin, t));
        }
        let p = match &mut self.partials {
            Partials::One(p) if p.origin == origin => p,
            _ => self.partial_for(origin, t),
        };
        p.acc.add(w, t, h);
        p.through = p.through.max(Seq48::new(seq));
    }

    /// `origin`'s partial, inserted in origin order (fresh at `t`) if it is new.
    #[cold]
    fn partial_for(&mut self, origin: NodeId, t: i64) -> &mut Partial {
        let mut all = self.take_vec();
        let at = all.partition_point(|p| p.origin < origin);
        if all.get(at).is_none_or(|p| p.origin != origin) {
            all.insert(at, Self::fresh(origin, t));
        }
        self.partials = Self::shaped(all);
        let slot = match &mut self.partials {
            Partials::One(p) => std::slice::from_mut(p),
            Partials::Many(v) => v.as_mut_slice(),
        };
        &mut slot[at]
    }

    fn take_vec(&mut self) -> Vec<Partial> {
        match std::mem::take(self).partials {
            Partials::One(p) => vec![p],
            Partials::Many(v) => v,
        }
    }

    /// The inline shape for exactly one partial, the heap for any other number.
    fn shaped(mut all: Vec<Partial>) -> Partials {
        match all.as_slice() {
            [one] => Partials::One(*one),
            _ => {
                all.shrink_to_fit();
                Partials::Many(all)
            }
        }
    }

    fn fresh(origin: NodeId, t: i64) -> Partial {
        Partial {
            origin,
            through: Seq48::default(),
            acc: ExpAccumulator { sum: 0.0, t_ref: t },
        }
    }

    /// The state-based merge: per origin, the partial that reaches further into that
    /// origin's log (it contains the other). Two replicas' states merge to the state of a
    /// replica that applied both sets of events, bit for bit. Commutative, associative
    /// and idempotent: per origin it keeps the maximum under one total order.
    pub fn merge(&mut self, other: &CrdtSignalState) {
        let (a, b) = (self.partials(), other.partials());
        let mut merged: Vec<Partial> = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.origin == y.origin => {
                    i += 1;
                    j += 1;
                    if y.rank() > x.rank() { *y } else { *x }
                }
                (Some(x), Some(y)) if x.origin < y.origin => {
                    i += 1;
                    *x
                }
                (Some(x), None) => {
                    i += 1;
                    *x
                }
                (_, Some(y)) => {
                    j += 1;
                    *y
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.partials = Self::shaped(merged);
    }

    #[inline]
    pub fn read(&self, t: i64, h: HalfLife) -> f64 {
        self.partials().iter().map(|p| p.acc.read(t, h)).sum()
    }

    /// A bound on `|read(t, h)|` found without `exp2`, for a top-k to pass over states that
    /// cannot reach it: the partials' `|sum|`, added as `read` adds their reads. At or after
    /// every partial's reference time each decay factor is at most 1 (`exp2` of a
    /// non-positive number), so each read is at most its `|sum|`, and rounding is monotone.
    /// `None` when `t` is before some reference time (the factors then exceed 1) or the
    /// half-life is not positive.
    #[inline]
    pub fn read_bound(&self, t: i64, h: HalfLife) -> Option<f64> {
        if h.0.is_nan() || h.0 <= 0.0 {
            return None;
        }
        let bound = match &self.partials {
            // The common shape without the loop: `0.0 + |sum|` is `|sum|`.
            Partials::One(p) => (t >= p.acc.t_ref).then_some(p.acc.sum.abs())?,
            Partials::Many(partials) => {
                let mut bound = 0.0;
                for p in partials {
                    if t < p.acc.t_ref {
                        return None;
                    }
                    bound += p.acc.sum.abs();
                }
                bound
            }
        };
        debug_assert!(
            self.read(t, h).abs() <= bound,
            "a read is at most the sum of its partials' magnitudes"
        );
        Some(bound)
    }

    /// A state from its partials, for decoding; `is_well_formed` checks them.
    pub fn from_partials(partials: impl IntoIterator<Item = Partial>) -> Self {
        CrdtSignalState {
            partials: Self::shaped(partials.into_iter().collect()),
        }
    }

    /// The partials in origin order, whichever shape holds them.
    #[inline]
    pub fn partials(&self) -> &[Partial] {
        match &self.partials {
            Partials::One(p) => std::slice::from_ref(p),
            Partials::Many(v) => v,
        }
    }

    /// Checks what `add` maintains, for state read back from a snapshot.
    pub fn is_well_formed(&self) -> bool {
        let valid_time = 0..=Timestamp::MAX_NANOS;
        let partials = self.partials();
        partials.windows(2).all(|p| p[0].origin < p[1].origin)
            && partials
                .iter()
                .all(|p| p.acc.sum.is_finite() && valid_time.contains(&p.acc.t_ref))
    }
}

/// On the wire a state is its partials in order, whatever its shape in memory: the same
/// bytes as when it was a struct holding one sequence.
#[derive(Serialize)]
#[serde(rename = "CrdtSignalState")]
struct WireRef<'a> {
    partials: &'a [Partial],
}

#[derive(Deserialize)]
#[serde(rename = "CrdtSignalState")]
struct Wire {
    partials: Vec<Partial>,
}

impl Serialize for CrdtSignalState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRef {
            partials: self.partials(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CrdtSignalState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Wire::deserialize(deserializer).map(|w| Self::from_partials(w.partials))
    }
}

/// Linear decay keeps the live events themselves, because each one expires at its own time.
///
/// Events are kept sorted by `(t, weight bits)`, so the sum is independent of the order in
/// which they arrived, whatever their origins. Events dead at every time from the newest
/// event onwards are dropped; `horizon` remembers the earliest time at which reads are still
/// exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinearState {
    events: Vec<(i64, f64)>,
    newest: i64,
    horizon: i64,
}

impl LinearState {
    pub fn add(&mut self, w: f64, t: i64, lifetime: i64) {
        self.newest = self.newest.max(t);
        let key = (t, w.to_bits());
        let at = self
            .events
            .partition_point(|&(et, ew)| (et, ew.to_bits()) < key);
        self.events.insert(at, (t, w));
        let dead = self
            .events
            .partition_point(|&(et, _)| et.saturating_add(lifetime) <= self.newest);
        if dead > 0 {
            let (last_dead, _) = self.events[dead - 1];
            self.horizon = self.horizon.max(last_dead.saturating_add(lifetime));
            self.events.drain(..dead);
        }
    }

    /// `None` when `t` is before the horizon: some dropped event would still be alive then.
    pub fn read(&self, t: i64, lifetime: i64) -> Option<f64> {
        if t < self.horizon {
            return None;
        }
        let l = lifetime as f64;
        Some(
            self.events
                .iter()
                .map(|&(et, w)| w * (1.0 - (t - et) as f64 / l).max(0.0))
                .sum(),
        )
    }

    pub fn live_events(&self) -> usize {
        self.events.len()
    }

    /// Checks what `add` maintains, for state read back from a snapshot.
    pub fn is_well_formed(&self) -> bool {
        self.events
            .windows(2)
            .all(|p| (p[0].0, p[0].1.to_bits()) <= (p[1].0, p[1].1.to_bits()))
            && self
                .events
                .iter()
                .all(|(t, w)| (0..=self.newest).contains(t) && w.is_finite())
            && (0..=Timestamp::MAX_NANOS).contains(&self.newest)
            && (0..=Timestamp::MAX_NANOS.saturating_mul(2)).contains(&self.horizon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: HalfLife = HalfLife(1e9);

    #[test]
    fn one_half_life_halves_the_score() {
        let mut s = CrdtSignalState::default();
        s.add(NodeId(0), 1, 8.0, 0, H);
        assert_eq!(s.read(1_000_000_000, H), 4.0);
        assert_eq!(s.read(3_000_000_000, H), 1.0);
    }

    /// States of one to three origins with weights of both signs, read from each partial's
    /// reference time on, under several half-lives: the bound holds (`read_bound`'s own
    /// `debug_assert` checks it too), and reads before a reference time have none.
    #[test]
    fn the_read_bound_holds_from_every_reference_time_on() {
        // splitmix64, seeded: the crdt layer sits below the simulator and its generator.
        let mut state = 11u64;
        let mut next = move |n: u64| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        };
        for h in [HalfLife(1.0), H, HalfLife(3.6e12), HalfLife(f64::INFINITY)] {
            for _ in 0..2_000 {
                let mut s = CrdtSignalState::default();
                for seq in 1..=next(6) + 1 {
                    let w = (next(1 << 20) as f64 / (1 << 20) as f64 - 0.3) * 1e6;
                    let t = next(1 << 40) as i64;
                    s.add(NodeId(next(3) as u16), seq, w, t, h);
                }
                let newest = s.partials().iter().map(|p| p.acc.t_ref).max().unwrap();
                for at in [newest, newest + 1, newest + next(1 << 42) as i64] {
                    let bound = s.read_bound(at, h).unwrap();
                    assert!(s.read(at, h).abs() <= bound, "{s:?} at {at}");
                }
                assert_eq!(s.read_bound(newest - 1, h), None);
            }
        }
        assert_eq!(CrdtSignalState::default().read_bound(0, H), Some(0.0));
        assert_eq!(
            CrdtSignalState::default().read_bound(0, HalfLife(0.0)),
            None
        );
    }

    #[test]
    fn a_second_origin_moves_the_partials_to_the_heap_in_order() {
        let mut s = CrdtSignalState::default();
        s.add(NodeId(5), 1, 1.0, 0, H);
        assert!(matches!(s.partials, Partials::One(_)));
        s.add(NodeId(2), 1, 2.0, 0, H);
        s.add(NodeId(5), 2, 4.0, 0, H);
        let got: Vec<(u16, f64)> = s
            .partials()
            .iter()
            .map(|p| (p.origin.0, p.acc.sum))
            .collect();
        assert_eq!(got, vec![(2, 2.0), (5, 5.0)]);
        let mut only_five = CrdtSignalState::default();
        only_five.add(NodeId(5), 1, 1.0, 0, H);
        only_five.merge(&CrdtSignalState::default());
        assert!(
            matches!(only_five.partials, Partials::One(_)),
            "a merge keeps one partial inline"
        );
    }

    #[test]
    fn permanent_is_a_plain_sum() {
        let never = HalfLife(f64::INFINITY);
        let mut s = CrdtSignalState::default();
        s.add(NodeId(0), 1, 1.5, 100, never);
        s.add(NodeId(0), 2, 2.5, 50, never);
        assert_eq!(s.read(1 << 60, never), 4.0);
    }

    #[test]
    fn partials_stay_sorted_by_origin() {
        let mut s = CrdtSignalState::default();
        for (seq, o) in [3, 1, 2, 1].into_iter().enumerate() {
            s.add(NodeId(o), seq as u64 + 1, 1.0, 0, H);
        }
        let origins: Vec<u16> = s.partials().iter().map(|p| p.origin.0).collect();
        assert_eq!(origins, vec![1, 2, 3]);
    }

    #[test]
    fn seq48_round_trips_and_saturates() {
        for seq in [0, 1, 65_535, 65_536, 1 << 32, Seq48::MAX] {
            assert_eq!(Seq48::new(seq).get(), seq);
        }
        assert_eq!(Seq48::new(u64::MAX).get(), Seq48::MAX);
        assert_eq!(std::mem::size_of::<Partial>(), 24);
        assert_eq!(std::mem::size_of::<CrdtSignalState>(), 32);
    }

    /// Seqs compare as the numbers they hold, including where a lower halfword is larger
    /// and a higher one smaller.
    #[test]
    fn seq48_orders_as_its_numbers() {
        let seqs = [
            0,
            1,
            65_535,
            65_536,
            70_000,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 65_535,
            Seq48::MAX,
        ];
        for a in seqs {
            for b in seqs {
                let (x, y) = (Seq48::new(a), Seq48::new(b));
                assert_eq!(x.cmp(&y), a.cmp(&b), "{a} against {b}");
                assert_eq!(x.max(y).get(), a.max(b));
            }
        }
    }

    #[test]
    fn linear_decay_and_its_horizon() {
        let mut s = LinearState::default();
        s.add(10.0, 0, 100);
        s.add(10.0, 50, 100);
        assert_eq!(s.read(50, 100), Some(15.0));
        s.add(1.0, 200, 100);
        assert_eq!(s.live_events(), 1, "both early events are dead at 200");
        assert_eq!(s.read(200, 100), Some(1.0));
        assert_eq!(s.read(149, 100), None, "the event at 50 was alive at 149");
    }
}
