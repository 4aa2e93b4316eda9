//! Window counts in coarse, sparse, integer buckets.
//!
//! Buckets hold integers (an event count and a fixed-point weight sum), and integer
//! addition does not depend on order, so replicas that applied the same events hold the
//! same buckets whatever the interleaving of origins.

use serde::{Deserialize, Serialize};

use super::slots::prefetch;
use crate::schema::Window;

/// Fixed-point resolution of window weight sums: one millionth.
pub const MICROS_PER_UNIT: f64 = 1e6;

/// Weights are at most 1e6, so one event is at most 1e12 millionths.
pub fn to_micros(weight: f64) -> i64 {
    (weight * MICROS_PER_UNIT).round() as i64
}

/// 16 bytes. An `i64` of millionths holds any `MAX_EXACT_EVENTS` events, whatever their
/// weights and order; a bucket with more refuses reads rather than answer wrongly. Whether
/// it has more depends only on its count, so replicas agree on it, and its sum wraps
/// (wrapping addition is order-independent too) so that nothing panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    granule: u32,
    count: u32,
    micros: i64,
}

/// An `i128` kept as two 64-bit halves, so that a [`WindowSet`] is 8-byte aligned (an
/// `i128` field would align, and so pad, it to 16). On the wire it is the plain `i128`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Wide([u64; 2]);

impl Wide {
    fn get(self) -> i128 {
        ((u128::from(self.0[1]) << 64) | u128::from(self.0[0])) as i128
    }

    fn new(v: i128) -> Self {
        Wide([v as u64, (v >> 64) as u64])
    }
}

impl Serialize for Wide {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i128(self.get())
    }
}

impl<'de> Deserialize<'de> for Wide {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i128::deserialize(d).map(Wide::new)
    }
}

/// Why a window read has no exact answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowGap {
    /// It needs granules that were dropped as too old.
    Pruned,
    /// A bucket's integer sum overflowed.
    Overflow,
}

/// What a window read returns: the event count and the weight sum.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowReading {
    pub count: u64,
    pub weight_sum: f64,
}

/// Events one bucket can sum exactly: `MAX_EXACT_EVENTS × 1e12` (the largest weight in
/// millionths) fits in an `i64`.
const MAX_EXACT_EVENTS: u32 = (i64::MAX / 1_000_000_000_000) as u32;

/// At most this many bounded windows per signal (1h, 24h, 7d, 30d).
const MAX_RINGS: usize = 4;

/// All windows of one (entity, signal).
///
/// Each bounded window is a ring of its non-empty granules, at most `n` of them. The newest
/// granule of each ring (its head) is kept inline, so the usual update, one more event in
/// the current granule, touches no other memory. The older granules of every ring sit one
/// ring after another in one vector, finest window last so that its frequent appends shift
/// nothing. Granules more than `n` behind a ring's newest are dropped, and
/// `pruned_through[r]` is one past the newest dropped granule, so that a read needing a
/// dropped granule says so instead of answering wrongly. All of it depends only on the set
/// of events, not on their order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSet {
    /// The newest granule of each ring; a count of zero means the ring is empty.
    heads: [Bucket; MAX_RINGS],
    /// Every ring's older granules, ascending within a ring; `lens[r]` of them for ring `r`.
    older: Vec<Bucket>,
    lens: [u8; MAX_RINGS],
    pruned_through: [u32; MAX_RINGS],
    all_count: u64,
    all_micros: Wide,
}

/// The granule of the latest valid timestamp at the finest granularity (one minute).
const MAX_GRANULE: u32 = (crate::schema::Timestamp::MAX_NANOS / 60_000_000_000) as u32;

fn granule_of(ts: i64, granule_ns: i64) -> u32 {
    // ts is at most 2^62 ns and granules are at least a minute, so this fits in u32.
    (ts / granule_ns) as u32
}

impl Bucket {
    fn first(granule: u32, micros: i64) -> Self {
        Bucket {
            granule,
            count: 1,
            micros,
        }
    }

    fn bump(&mut self, micros: i64) {
        self.count = self.count.saturating_add(1);
        self.micros = self.micros.wrapping_add(micros);
    }
}

impl WindowSet {
    /// Where ring `r`'s older granules sit in `older` (rings laid out last ring first).
    fn range(&self, ring: usize) -> std::ops::Range<usize> {
        let start: usize = self.lens[ring + 1..].iter().map(|l| *l as usize).sum();
        start..start + self.lens[ring] as usize
    }

    /// Checks what `add` maintains, for state read back from a snapshot: the rings tile
    /// the vector, each is strictly ascending, older than its head, in range, and no
    /// longer than its window.
    pub fn is_well_formed(&self, windows: &[Window]) -> bool {
        let bounded: Vec<u32> = windows
            .iter()
            .filter_map(|w| w.granulation())
            .map(|(_, n)| n)
            .collect();
        let tiled = self.lens.iter().map(|l| *l as usize).sum::<usize>() == self.older.len();
        tiled
            && self.all_count <= 1 << 62
            && (0..MAX_RINGS).all(|r| {
                let head = self.heads[r];
                let ring = &self.older[self.range(r)];
                let limit = bounded.get(r).copied().unwrap_or(0) as usize;
                let in_range = |b: &Bucket| b.granule <= MAX_GRANULE && b.count > 0;
                self.pruned_through[r] <= MAX_GRANULE + 1
                    && if head.count == 0 {
                        head == Bucket::default() && ring.is_empty()
                    } else {
                        in_range(&head)
                            && ring.len() < limit
                            && ring.iter().all(in_range)
                            && ring.windows(2).all(|b| b[0].granule < b[1].granule)
                            && ring.last().is_none_or(|b| b.granule < head.granule)
                    }
            })
    }

    /// Prefetches the inline part (the heads and the counters); the rest is rarely needed.
    pub fn prefetch(&self) {
        prefetch(&self.heads);
        prefetch(&self.all_count);
    }

    /// `windows` is the signal's window list; bounded windows map to rings in order.
    #[inline]
    pub fn add(&mut self, windows: &[Window], ts: i64, micros: i64) {
        self.all_count += 1;
        self.all_micros = Wide::new(self.all_micros.get() + micros as i128);
        let bounded = windows.iter().filter_map(|w| w.granulation());
        for (ring, (g, n)) in bounded.enumerate().take(MAX_RINGS) {
            self.add_to_ring(windows, ring, granule_of(ts, g), n, micros);
        }
    }

    /// Makes room for one more older granule: a quarter more (at least 4), but never past
    /// what the rings can hold together, so a set whose rings are full keeps no spare room.
    fn reserve_older(&mut self, windows: &[Window]) {
        let len = self.older.len();
        if len < self.older.capacity() {
            return;
        }
        let most: usize = windows
            .iter()
            .filter_map(|w| w.granulation())
            .take(MAX_RINGS)
            .map(|(_, n)| n as usize - 1)
            .sum();
        // A ring briefly holds one granule past its limit, between taking the old head and
        // pruning, hence at least one.
        let step = (len / 4).max(4).min(most.saturating_sub(len)).max(1);
        self.older.reserve_exact(step);
    }

    #[inline]
    fn add_to_ring(&mut self, windows: &[Window], ring: usize, granule: u32, n: u32, micros: i64) {
        let head = &mut self.heads[ring];
        if head.count == 0 {
            *head = Bucket::first(granule, micros);
        } else if granule == head.granule {
            head.bump(micros);
        } else if granule > head.granule {
            // The old head becomes the newest of the ring's older granules.
            let previous = std::mem::replace(head, Bucket::first(granule, micros));
            let end = self.range(ring).end;
            self.reserve_older(windows);
            self.older.insert(end, previous);
            self.lens[ring] += 1;
            self.prune(ring, (granule + 1).saturating_sub(n));
        } else {
            let newest = head.granule;
            self.add_late(windows, ring, granule, n, newest, micros);
        }
    }

    /// Drops ring `ring`'s older granules below `lo`; they sit at the front of the ring.
    fn prune(&mut self, ring: usize, lo: u32) {
        let range = self.range(ring);
        let dead = self.older[range.clone()]
            .iter()
            .take_while(|b| b.granule < lo)
            .count();
        if dead > 0 {
            let newest_dead = self.older[range.start + dead - 1].granule;
            self.pruned_through[ring] = self.pruned_through[ring].max(newest_dead + 1);
            self.older.drain(range.start..range.start + dead);
            self.lens[ring] -= dead as u8;
        }
    }

    /// An event older than the ring's newest granule: counted if still in the window.
    fn add_late(
        &mut self,
        windows: &[Window],
        ring: usize,
        granule: u32,
        n: u32,
        newest: u32,
        micros: i64,
    ) {
        if granule.saturating_add(n) <= newest {
            self.pruned_through[ring] = self.pruned_through[ring].max(granule + 1);
            return;
        }
        let range = self.range(ring);
        match self.older[range.clone()].binary_search_by_key(&granule, |b| b.granule) {
            Ok(i) => self.older[range.start + i].bump(micros),
            Err(i) => {
                self.reserve_older(windows);
                self.older
                    .insert(range.start + i, Bucket::first(granule, micros));
                self.lens[ring] += 1;
            }
        }
    }

    /// The count and weight sum of `window` at `at`, or why there is no exact answer.
    pub fn read(
        &self,
        windows: &[Window],
        window: Window,
        at: i64,
    ) -> Result<WindowReading, WindowGap> {
        let Some((g, n)) = window.granulation() else {
            return Ok(WindowReading {
                count: self.all_count,
                weight_sum: self.all_micros.get() as f64 / MICROS_PER_UNIT,
            });
        };
        let Some(ring) = windows
            .iter()
            .filter(|w| w.granulation().is_some())
            .position(|w| *w == window)
        else {
            return Ok(WindowReading::default());
        };
        let at = granule_of(at, g);
        let lo = (at + 1).saturating_sub(n);
        if self.pruned_through[ring] > lo {
            return Err(WindowGap::Pruned);
        }
        let head = &self.heads[ring];
        let in_window = || {
            self.older[self.range(ring)]
                .iter()
                .chain((head.count > 0).then_some(head))
                .filter(|b| (lo..=at).contains(&b.granule))
        };
        if in_window().any(|b| b.count > MAX_EXACT_EVENTS) {
            return Err(WindowGap::Overflow);
        }
        let (count, micros) = in_window().fold((0u64, 0i128), |(c, m), b| {
            (c + b.count as u64, m + b.micros as i128)
        });
        Ok(WindowReading {
            count,
            weight_sum: micros as f64 / MICROS_PER_UNIT,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn one_hour_window_rolls_by_the_minute() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let mut s = WindowSet::default();
        for m in 0..90 {
            s.add(&w, m * MIN, 1_000_000);
        }
        let r = s.read(&w, Window::OneHour, 89 * MIN).unwrap();
        assert_eq!(r.count, 60);
        assert_eq!(r.weight_sum, 60.0);
        assert_eq!(s.read(&w, Window::OneHour, 120 * MIN).unwrap().count, 29);
        assert_eq!(s.read(&w, Window::OneHour, 500 * MIN).unwrap().count, 0);
        assert_eq!(
            s.read(&w, Window::TwentyFourHours, 89 * MIN).unwrap().count,
            90
        );
        assert_eq!(s.read(&w, Window::AllTime, 0).unwrap().count, 90);
        assert!(
            s.read(&w, Window::OneHour, 40 * MIN) == Err(WindowGap::Pruned),
            "minute 0 was dropped"
        );
    }

    #[test]
    fn malformed_sets_are_recognised() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let mut s = WindowSet::default();
        for m in 0..10 {
            s.add(&w, m * MIN, 1);
        }
        assert!(s.is_well_formed(&w));
        let mut bad_lens = s.clone();
        bad_lens.lens[0] += 1;
        assert!(!bad_lens.is_well_formed(&w));
        let mut unsorted = s.clone();
        let last = unsorted.older.len() - 1;
        unsorted.older.swap(last - 1, last);
        assert!(!unsorted.is_well_formed(&w));
        let mut stale_head = s.clone();
        stale_head.heads[0].granule = 0;
        assert!(
            !stale_head.is_well_formed(&w),
            "the head must be the newest granule"
        );
        assert!(
            !s.is_well_formed(&[Window::OneHour]),
            "a ring for a window the signal lacks"
        );
    }

    #[test]
    fn a_bucket_too_full_to_sum_exactly_refuses_reads_but_not_all_time() {
        let w = [Window::OneHour];
        let mut s = WindowSet::default();
        s.add(&w, 0, 1);
        s.heads[0].count = MAX_EXACT_EVENTS;
        s.add(&w, 0, 10);
        assert_eq!(s.read(&w, Window::OneHour, 0), Err(WindowGap::Overflow));
        assert_eq!(s.read(&w, Window::AllTime, 0).unwrap().count, 2);
        // a read whose window no longer includes the full bucket is exact again
        s.add(&w, 90 * MIN, 1);
        assert_eq!(s.read(&w, Window::OneHour, 90 * MIN).unwrap().count, 1);
    }

    #[test]
    fn wide_round_trips_and_the_layout_is_compact() {
        for v in [0, -1, i128::MAX, i128::MIN, 1 << 64, -(1 << 70) + 3] {
            assert_eq!(Wide::new(v).get(), v);
        }
        assert_eq!(std::mem::size_of::<Bucket>(), 16);
        assert_eq!(std::mem::size_of::<WindowSet>(), 136);
    }

    /// The layout the wire format was defined by: a plain `i128` sum.
    #[derive(Serialize)]
    struct PlainSet {
        heads: [Bucket; MAX_RINGS],
        older: Vec<Bucket>,
        lens: [u8; MAX_RINGS],
        pruned_through: [u32; MAX_RINGS],
        all_count: u64,
        all_micros: i128,
    }

    #[test]
    fn the_wire_format_is_that_of_a_plain_sum() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let mut s = WindowSet::default();
        for m in 0..100 {
            s.add(&w, m * 7 * MIN, -3_000_000_000_000 + m * 1_000_000_000_001);
        }
        let reference = PlainSet {
            heads: s.heads,
            older: s.older.clone(),
            lens: s.lens,
            pruned_through: s.pruned_through,
            all_count: s.all_count,
            all_micros: s.all_micros.get(),
        };
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&reference).unwrap());
        assert_eq!(postcard::from_bytes::<WindowSet>(&bytes).unwrap(), s);
    }

    #[test]
    fn full_rings_keep_no_spare_room() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let mut s = WindowSet::default();
        for m in 0..24 * 60 {
            s.add(&w, m * MIN, 1_000_000);
        }
        assert_eq!(s.older.len(), 59 + 23);
        assert!(
            s.older.capacity() <= 59 + 23 + 1,
            "capacity {}",
            s.older.capacity()
        );
        let r = s
            .read(&w, Window::TwentyFourHours, (24 * 60 - 1) * MIN)
            .unwrap();
        assert_eq!((r.count, r.weight_sum), (24 * 60, 1440.0));
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let times: Vec<i64> = (0..200).map(|i| (i * 7919 % 3000) * MIN / 10).collect();
        let mut a = WindowSet::default();
        let mut b = WindowSet::default();
        for t in &times {
            a.add(&w, *t, 5);
        }
        for t in times.iter().rev() {
            b.add(&w, *t, 5);
        }
        assert_eq!(a, b);
    }
}
