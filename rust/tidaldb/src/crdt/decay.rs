//! Decay accumulators: the exact arithmetic of DESIGN.md "convergence is exact".

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::schema::{NodeId, Timestamp};

/// `2^x` computed by the pure-Rust `libm`, so that every machine produces the same bits.
#[inline]
fn exp2(x: f64) -> f64 {
    libm::exp2(x)
}

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
        if t >= self.t_ref {
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Seq48([u16; 3]);

impl Seq48 {
    pub const MAX: u64 = (1 << 48) - 1;

    pub fn new(seq: u64) -> Self {
        let s = seq.min(Self::MAX);
        Seq48([(s >> 32) as u16, (s >> 16) as u16, s as u16])
    }

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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CrdtSignalState {
    partials: SmallVec<[Partial; 2]>,
}

impl CrdtSignalState {
    /// Adds `origin`'s event number `seq`, of weight `w` at time `t`.
    #[inline]
    pub fn add(&mut self, origin: NodeId, seq: u64, w: f64, t: i64, h: HalfLife) {
        let slot = match self.partials.iter().position(|p| p.origin >= origin) {
            Some(i) if self.partials[i].origin == origin => i,
            Some(i) => {
                self.partials.insert(i, Self::fresh(origin, t));
                i
            }
            None => {
                self.partials.push(Self::fresh(origin, t));
                self.partials.len() - 1
            }
        };
        let p = &mut self.partials[slot];
        p.acc.add(w, t, h);
        p.through = p.through.max(Seq48::new(seq));
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
        let mut merged: SmallVec<[Partial; 2]> = SmallVec::new();
        let (a, b) = (&self.partials, &other.partials);
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
        self.partials = merged;
    }

    #[inline]
    pub fn read(&self, t: i64, h: HalfLife) -> f64 {
        self.partials.iter().map(|p| p.acc.read(t, h)).sum()
    }

    /// A state from its partials, for decoding; `is_well_formed` checks them.
    pub fn from_partials(partials: SmallVec<[Partial; 2]>) -> Self {
        CrdtSignalState { partials }
    }

    pub fn partials(&self) -> &[Partial] {
        &self.partials
    }

    /// Checks what `add` maintains, for state read back from a snapshot.
    pub fn is_well_formed(&self) -> bool {
        let valid_time = 0..=Timestamp::MAX_NANOS;
        self.partials.windows(2).all(|p| p[0].origin < p[1].origin)
            && self
                .partials
                .iter()
                .all(|p| p.acc.sum.is_finite() && valid_time.contains(&p.acc.t_ref))
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
        assert!(Seq48::new(70_000) > Seq48::new(65_536));
        assert_eq!(std::mem::size_of::<Partial>(), 24);
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
