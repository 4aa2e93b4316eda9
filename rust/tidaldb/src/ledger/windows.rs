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

/// Weights are at most 1e6, so one event is at most 1e12 millionths; an `i128` sum of
/// those cannot overflow in any plausible lifetime of a database, so plain addition is
/// exact and order-independent.
pub fn to_micros(weight: f64) -> i128 {
    (weight * MICROS_PER_UNIT).round() as i128
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    granule: u32,
    count: u64,
    micros: i128,
}

impl Bucket {
    fn bump(&mut self, micros: i128) {
        self.count += 1;
        self.micros += micros;
    }
}

/// What a window read returns: the event count and the weight sum.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowReading {
    pub count: u64,
    pub weight_sum: f64,
}

/// At most this many bounded windows per signal (1h, 24h, 7d, 30d).
const MAX_RINGS: usize = 4;

/// All windows of one (entity, signal).
///
/// Each bounded window is a ring of its non-empty granules, newest last, at most `n` of
/// them; the rings sit one after another in a single vector so that an update touches one
/// allocation. Granules more than `n` behind a ring's newest are dropped, and
/// `pruned_through[r]` is one past the newest dropped granule, so that a read needing a
/// dropped granule says so instead of answering wrongly. All of it depends only on the set
/// of events, not on their order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSet {
    buckets: Vec<Bucket>,
    lens: [u8; MAX_RINGS],
    pruned_through: [u32; MAX_RINGS],
    all_count: u64,
    all_micros: i128,
}

fn granule_of(ts: i64, granule_ns: i64) -> u32 {
    // ts is at most 2^62 ns and granules are at least a minute, so this fits in u32.
    (ts / granule_ns) as u32
}

impl WindowSet {
    fn range(&self, ring: usize) -> std::ops::Range<usize> {
        let start: usize = self.lens[..ring].iter().map(|l| *l as usize).sum();
        start..start + self.lens[ring] as usize
    }

    /// Checks what `add` maintains, for state read back from a snapshot: the rings tile
    /// the bucket vector, each is strictly ascending and no longer than its window.
    pub fn is_well_formed(&self, windows: &[Window]) -> bool {
        let bounded: Vec<u32> = windows
            .iter()
            .filter_map(|w| w.granulation())
            .map(|(_, n)| n)
            .collect();
        let tiled = self.lens.iter().map(|l| *l as usize).sum::<usize>() == self.buckets.len();
        tiled
            && (0..MAX_RINGS).all(|r| {
                let ring = &self.buckets[self.range(r)];
                let limit = bounded.get(r).copied().unwrap_or(0) as usize;
                ring.len() <= limit && ring.windows(2).all(|b| b[0].granule < b[1].granule)
            })
    }

    pub fn prefetch_buckets(&self) {
        if let Some(first) = self.buckets.first() {
            prefetch(first);
        }
    }

    /// `windows` is the signal's window list; bounded windows map to rings in order.
    #[inline]
    pub fn add(&mut self, windows: &[Window], ts: i64, micros: i128) {
        self.all_count += 1;
        self.all_micros += micros;
        let bounded = windows.iter().filter_map(|w| w.granulation());
        for (ring, (g, n)) in bounded.enumerate().take(MAX_RINGS) {
            self.add_to_ring(ring, granule_of(ts, g), n, micros);
        }
    }

    fn add_to_ring(&mut self, ring: usize, granule: u32, n: u32, micros: i128) {
        let range = self.range(ring);
        let newest = match self.buckets[range.clone()].last_mut() {
            Some(last) if last.granule == granule => return last.bump(micros),
            Some(last) => last.granule,
            None => granule,
        };
        if granule.saturating_add(n) <= newest {
            self.pruned_through[ring] = self.pruned_through[ring].max(granule + 1);
            return;
        }
        match self.buckets[range.clone()].binary_search_by_key(&granule, |b| b.granule) {
            Ok(i) => self.buckets[range.start + i].bump(micros),
            Err(i) => {
                let bucket = Bucket {
                    granule,
                    count: 1,
                    micros,
                };
                self.buckets.insert(range.start + i, bucket);
                self.lens[ring] += 1;
            }
        }
        if granule > newest {
            let range = self.range(ring);
            let dead = self.buckets[range.clone()]
                .partition_point(|b| b.granule.saturating_add(n) <= granule);
            if dead > 0 {
                let newest_dead = self.buckets[range.start + dead - 1].granule;
                self.pruned_through[ring] = self.pruned_through[ring].max(newest_dead + 1);
                self.buckets.drain(range.start..range.start + dead);
                self.lens[ring] -= dead as u8;
            }
        }
    }

    /// `None` if the read needs history this set no longer keeps.
    pub fn read(&self, windows: &[Window], window: Window, at: i64) -> Option<WindowReading> {
        let Some((g, n)) = window.granulation() else {
            return Some(WindowReading {
                count: self.all_count,
                weight_sum: self.all_micros as f64 / MICROS_PER_UNIT,
            });
        };
        let ring = windows
            .iter()
            .filter(|w| w.granulation().is_some())
            .position(|w| *w == window)?;
        let at = granule_of(at, g);
        let lo = (at + 1).saturating_sub(n);
        if self.pruned_through[ring] > lo {
            return None;
        }
        let (count, micros) = self.buckets[self.range(ring)]
            .iter()
            .filter(|b| (lo..=at).contains(&b.granule))
            .fold((0u64, 0i128), |(c, m), b| (c + b.count, m + b.micros));
        Some(WindowReading {
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
            s.read(&w, Window::OneHour, 40 * MIN).is_none(),
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
        unsorted.buckets.swap(0, 1);
        assert!(!unsorted.is_well_formed(&w));
        assert!(
            !s.is_well_formed(&[Window::OneHour]),
            "a ring for a window the signal lacks"
        );
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
