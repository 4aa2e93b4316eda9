//! Window counts in coarse, sparse, integer buckets.
//!
//! Buckets hold integers (an event count and a fixed-point weight sum), and integer
//! addition does not depend on order, so replicas that applied the same events hold the
//! same buckets whatever the interleaving of origins.

use serde::{Deserialize, Serialize};

use super::slots::prefetch;
use super::window_codec::{self, Bucket, RingBuf, RingBytes};
use crate::schema::Window;

/// Fixed-point resolution of window weight sums: one millionth.
pub const MICROS_PER_UNIT: f64 = 1e6;

/// Weights are at most 1e6, so one event is at most 1e12 millionths.
pub fn to_micros(weight: f64) -> i64 {
    (weight * MICROS_PER_UNIT).round() as i64
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
/// ring after another in one byte vector, encoded (`window_codec`: 5-8 bytes a bucket),
/// finest window last so that its frequent appends shift nothing; a change to a ring
/// decodes it, edits it and encodes it back. Granules more than `n` behind a ring's newest
/// are dropped, and `pruned_through[r]` is one past the newest dropped granule, so that a
/// read needing a dropped granule says so instead of answering wrongly. All of it depends
/// only on the set of events, not on their order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowSet {
    /// The newest granule of each ring; a count of zero means the ring is empty.
    heads: [Bucket; MAX_RINGS],
    /// Every ring's older granules, ascending within a ring, encoded; `lens[r]` bytes of
    /// them for ring `r`, whose oldest granule is `oldest[r]` (0 when it has none).
    older: Vec<u8>,
    lens: [u16; MAX_RINGS],
    oldest: [u32; MAX_RINGS],
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

    /// Ring `r`'s older granules, decoded, ascending.
    fn ring(&self, ring: usize) -> window_codec::Decoder<'_> {
        window_codec::decode(&self.older[self.range(ring)], self.oldest[ring])
    }

    /// Replaces ring `r`'s older granules. The byte vector grows by an eighth (at least 16
    /// bytes), so a set keeps little spare room.
    fn store(&mut self, ring: usize, buckets: &[Bucket]) {
        let bytes = window_codec::encode(buckets, self.heads[ring].granule);
        self.oldest[ring] = buckets.first().map_or(0, |b| b.granule);
        self.splice(ring, self.range(ring), bytes);
    }

    /// Replaces `range` (within ring `ring`) by `bytes`, growing the vector by an eighth
    /// (at least 16 bytes) when it must grow, so a set keeps little spare room.
    fn splice(&mut self, ring: usize, range: std::ops::Range<usize>, bytes: RingBytes) {
        let encoded = self.lens[ring] as usize - range.len() + bytes.len();
        debug_assert!(
            encoded <= usize::from(u16::MAX),
            "a ring holds at most 255 buckets (a snapshot's count is a u8) of at most 20 bytes"
        );
        let len = self.older.len() - range.len() + bytes.len();
        if len > self.older.capacity() {
            let more = (len - self.older.len()).max(self.older.len() / 8).max(16);
            self.older.reserve_exact(more);
        }
        if range.is_empty() {
            // An insertion (a head moving on): append, then turn the tail into place; for
            // the finest ring, last in the vector, the tail is just the new bytes.
            let at = range.start;
            self.older.extend_from_slice(&bytes);
            self.older[at..].rotate_right(bytes.len());
        } else if bytes.is_empty() {
            self.older.drain(range);
        } else {
            self.older.splice(range, bytes);
        }
        self.lens[ring] = encoded as u16;
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
                let Some((ring, end)) =
                    window_codec::decode_all(&self.older[self.range(r)], self.oldest[r])
                else {
                    return false;
                };
                let limit = bounded.get(r).copied().unwrap_or(0) as usize;
                let in_range = |b: &Bucket| b.granule <= MAX_GRANULE && b.count > 0;
                self.pruned_through[r] <= MAX_GRANULE + 1
                    && if head.count == 0 {
                        head == Bucket::default() && ring.is_empty() && self.oldest[r] == 0
                    } else {
                        in_range(&head)
                            && (ring.is_empty() && self.oldest[r] == 0
                                || end == i64::from(head.granule))
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
            self.add_to_ring(ring, granule_of(ts, g), n, micros);
        }
    }

    #[inline]
    fn add_to_ring(&mut self, ring: usize, granule: u32, n: u32, micros: i64) {
        let head = &mut self.heads[ring];
        if head.count == 0 {
            *head = Bucket::first(granule, micros);
        } else if granule == head.granule {
            head.bump(micros);
        } else if granule > head.granule {
            // The old head becomes the newest of the ring's older granules, the gap to the
            // new head its gap; granules that fall out of the window go from the front.
            let previous = std::mem::replace(head, Bucket::first(granule, micros));
            let lo = (granule + 1).saturating_sub(n);
            self.drop_below(ring, lo);
            if previous.granule < lo {
                self.pruned_through[ring] = self.pruned_through[ring].max(previous.granule + 1);
            } else {
                if self.lens[ring] == 0 {
                    self.oldest[ring] = previous.granule;
                }
                let mut bytes = RingBytes::new();
                window_codec::record(&mut bytes, previous, i64::from(granule - previous.granule));
                let end = self.range(ring).end;
                self.splice(ring, end..end, bytes);
            }
        } else {
            let newest = head.granule;
            self.add_late(ring, granule, n, newest, micros);
        }
    }

    /// Drops ring `ring`'s older granules below `lo`: a prefix of its bytes.
    fn drop_below(&mut self, ring: usize, lo: u32) {
        if self.lens[ring] == 0 || self.oldest[ring] >= lo {
            return;
        }
        let range = self.range(ring);
        let mut ring_buckets = window_codec::decode(&self.older[range.clone()], self.oldest[ring]);
        let (mut cut, mut newest_dead, mut oldest) = (0, None, 0);
        while let Some(b) = ring_buckets.next() {
            if b.granule >= lo {
                oldest = b.granule;
                break;
            }
            cut = ring_buckets.position();
            newest_dead = Some(b.granule);
        }
        if let Some(dead) = newest_dead {
            self.pruned_through[ring] = self.pruned_through[ring].max(dead + 1);
            self.splice(ring, range.start..range.start + cut, RingBytes::new());
            self.oldest[ring] = if self.lens[ring] == 0 { 0 } else { oldest };
        }
    }

    /// An event older than the ring's newest granule: counted if still in the window.
    fn add_late(&mut self, ring: usize, granule: u32, n: u32, newest: u32, micros: i64) {
        if granule.saturating_add(n) <= newest {
            self.pruned_through[ring] = self.pruned_through[ring].max(granule + 1);
            return;
        }
        let mut buckets: RingBuf<Bucket> = self.ring(ring).collect();
        match buckets.binary_search_by_key(&granule, |b| b.granule) {
            Ok(i) => buckets[i].bump(micros),
            Err(i) => buckets.insert(i, Bucket::first(granule, micros)),
        }
        self.store(ring, &buckets);
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
        let head = self.heads[ring];
        let in_window = || {
            self.ring(ring)
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

/// A window set as the wire (snapshots, digests) has always carried it: every ring's older
/// buckets whole, `lens` counting buckets, the sum a plain `i128`.
#[derive(Serialize, Deserialize)]
#[serde(rename = "WindowSet")]
struct Wire {
    heads: [Bucket; MAX_RINGS],
    older: Vec<Bucket>,
    lens: [u8; MAX_RINGS],
    pruned_through: [u32; MAX_RINGS],
    all_count: u64,
    all_micros: i128,
}

impl Serialize for WindowSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut older = Vec::new();
        let mut lens = [0u8; MAX_RINGS];
        for ring in (0..MAX_RINGS).rev() {
            let before = older.len();
            older.extend(self.ring(ring));
            lens[ring] = u8::try_from(older.len() - before).unwrap_or(u8::MAX);
        }
        Wire {
            heads: self.heads,
            older,
            lens,
            pruned_through: self.pruned_through,
            all_count: self.all_count,
            all_micros: self.all_micros.get(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for WindowSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        let mut set = WindowSet {
            heads: wire.heads,
            older: Vec::new(),
            lens: [0; MAX_RINGS],
            oldest: [0; MAX_RINGS],
            pruned_through: wire.pruned_through,
            all_count: wire.all_count,
            all_micros: Wide::new(wire.all_micros),
        };
        let mut start = 0;
        for ring in (0..MAX_RINGS).rev() {
            let end = start + usize::from(wire.lens[ring]);
            let buckets = wire.older.get(start..end).ok_or_else(|| {
                serde::de::Error::custom("the window rings do not tile their buckets")
            })?;
            set.store(ring, buckets);
            start = end;
        }
        if start != wire.older.len() {
            return Err(serde::de::Error::custom(
                "the window rings do not tile their buckets",
            ));
        }
        Ok(set)
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
        let mut ring: Vec<Bucket> = unsorted.ring(0).collect();
        let last = ring.len() - 1;
        ring.swap(last - 1, last);
        unsorted.store(0, &ring);
        assert!(!unsorted.is_well_formed(&w));
        let mut cut = s.clone();
        let end = cut.range(0).end;
        cut.older[end - 1] |= 0x80;
        assert!(
            !cut.is_well_formed(&w),
            "a ring whose last varint never ends"
        );
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
        assert_eq!(std::mem::size_of::<WindowSet>(), 152);
    }

    #[test]
    fn the_wire_carries_every_bucket_whole() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let mut s = WindowSet::default();
        // Minutes 0, 7, ..., 693: the 1h ring's head is minute 693 and its older buckets
        // the eight minutes from 637 on; the 24h ring holds hours 0-11, head 11.
        let minutes: Vec<i64> = (0..100).map(|m| m * 7).collect();
        for (i, m) in minutes.iter().enumerate() {
            s.add(
                &w,
                m * MIN,
                -3_000_000_000_000 + i as i64 * 1_000_000_000_001,
            );
        }
        let micros = |m: i64| -3_000_000_000_000 + (m / 7) * 1_000_000_000_001;
        let bytes = postcard::to_allocvec(&s).unwrap();
        // Read back as the wire struct, independently of the set's own ring decoding.
        let plain: Wire = postcard::from_bytes(&bytes).unwrap();
        let hour_ring: Vec<(u32, u32)> = plain.older[..11]
            .iter()
            .map(|b| (b.granule, b.count))
            .collect();
        let hour_counts: Vec<u32> = (0..11)
            .map(|h| minutes.iter().filter(|m| **m / 60 == h).count() as u32)
            .collect();
        assert_eq!(hour_ring, (0..11).zip(hour_counts).collect::<Vec<_>>());
        let minute_ring: Vec<Bucket> = plain.older[11..].to_vec();
        let expected: Vec<Bucket> = minutes[91..99]
            .iter()
            .map(|m| Bucket {
                granule: *m as u32,
                count: 1,
                micros: micros(*m),
            })
            .collect();
        assert_eq!(minute_ring, expected);
        assert_eq!(plain.lens, [8, 11, 0, 0]);
        assert_eq!(plain.heads[0].granule, 693);
        assert_eq!(plain.pruned_through[0], 631);
        assert_eq!(plain.all_count, 100);
        assert_eq!(
            plain.all_micros,
            minutes.iter().map(|m| micros(*m) as i128).sum::<i128>()
        );
        assert_eq!(postcard::from_bytes::<WindowSet>(&bytes).unwrap(), s);
        let mut untiled = plain;
        untiled.lens[0] = 9;
        assert!(
            postcard::from_bytes::<WindowSet>(&postcard::to_allocvec(&untiled).unwrap()).is_err()
        );
    }

    #[test]
    fn full_rings_take_about_six_bytes_a_bucket() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let mut s = WindowSet::default();
        let day0 = 29_000_040 * MIN; // on the hour
        for m in 0..24 * 60 {
            s.add(&w, day0 + m * MIN, 1_000_000);
        }
        assert_eq!((s.ring(0).count(), s.ring(1).count()), (59, 23));
        assert!(s.older.len() <= 82 * 6, "{} bytes", s.older.len());
        let ring: Vec<Bucket> = s.ring(0).collect();
        let mut rebuilt = s.clone();
        rebuilt.store(0, &ring);
        assert_eq!(
            rebuilt, s,
            "appending and pruning give the bytes a whole encoding gives"
        );
        assert!(s.older.capacity() <= s.older.len() + (s.older.len() / 8).max(16));
        let r = s
            .read(&w, Window::TwentyFourHours, day0 + (24 * 60 - 1) * MIN)
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
