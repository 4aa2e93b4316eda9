//! Window counts in coarse, sparse, integer buckets.
//!
//! Buckets hold integers (an event count and a fixed-point weight sum), and integer
//! addition does not depend on order, so replicas that applied the same events hold the
//! same buckets whatever the interleaving of origins.

use serde::{Deserialize, Serialize};

use crate::schema::Window;

/// Fixed-point resolution of window weight sums: one millionth.
pub const MICROS_PER_UNIT: f64 = 1e6;

pub fn to_micros(weight: f64) -> i64 {
    (weight * MICROS_PER_UNIT).round() as i64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    granule: u32,
    count: u32,
    micros: i64,
}

/// What a window read returns: the event count and the weight sum.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowReading {
    pub count: u64,
    pub weight_sum: f64,
}

/// The non-empty granules of one window, newest last, at most `n` of them.
///
/// Granules more than `n` behind the newest are dropped; `pruned_through` is one past the
/// newest dropped granule, so a read that would need a dropped granule can say so instead
/// of answering wrongly. Both fields depend only on the set of events, not their order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRing {
    buckets: Vec<Bucket>,
    pruned_through: u32,
}

impl WindowRing {
    fn add(&mut self, granule: u32, n: u32, micros: i64) {
        let newest = match self.buckets.last_mut() {
            Some(last) if last.granule == granule => {
                last.count = last.count.wrapping_add(1);
                last.micros = last.micros.wrapping_add(micros);
                return;
            }
            Some(last) => last.granule,
            None => granule,
        };
        if granule.saturating_add(n) <= newest {
            self.pruned_through = self.pruned_through.max(granule + 1);
            return;
        }
        match self.buckets.binary_search_by_key(&granule, |b| b.granule) {
            Ok(i) => {
                let b = &mut self.buckets[i];
                b.count = b.count.wrapping_add(1);
                b.micros = b.micros.wrapping_add(micros);
            }
            Err(i) => self.buckets.insert(
                i,
                Bucket {
                    granule,
                    count: 1,
                    micros,
                },
            ),
        }
        if granule > newest {
            let dead = self
                .buckets
                .partition_point(|b| b.granule.saturating_add(n) <= granule);
            if dead > 0 {
                self.pruned_through = self.pruned_through.max(self.buckets[dead - 1].granule + 1);
                self.buckets.drain(..dead);
            }
        }
    }

    /// Sums granules `(at - n, at]`; `None` if one of them was dropped.
    fn read(&self, at: u32, n: u32) -> Option<WindowReading> {
        let lo = (at + 1).saturating_sub(n);
        if self.pruned_through > lo {
            return None;
        }
        let (count, micros) = self
            .buckets
            .iter()
            .filter(|b| (lo..=at).contains(&b.granule))
            .fold((0u64, 0i64), |(c, m), b| {
                (c + b.count as u64, m.wrapping_add(b.micros))
            });
        Some(WindowReading {
            count,
            weight_sum: micros as f64 / MICROS_PER_UNIT,
        })
    }
}

/// All windows of one (entity, signal): a ring per bounded window, plus all-time totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSet {
    rings: Vec<WindowRing>,
    all_count: u64,
    all_micros: i64,
}

fn granule_of(ts: i64, granule_ns: i64) -> u32 {
    // ts is at most 2^62 ns and granules are at least a minute, so this fits in u32.
    (ts / granule_ns) as u32
}

impl WindowSet {
    pub fn new(windows: &[Window]) -> Self {
        WindowSet {
            rings: windows
                .iter()
                .filter(|w| w.granulation().is_some())
                .map(|_| WindowRing::default())
                .collect(),
            all_count: 0,
            all_micros: 0,
        }
    }

    /// `windows` is the signal's window list, the same one this set was built with.
    #[inline]
    pub fn add(&mut self, windows: &[Window], ts: i64, micros: i64) {
        self.all_count += 1;
        self.all_micros = self.all_micros.wrapping_add(micros);
        let bounded = windows.iter().filter_map(|w| w.granulation());
        for (ring, (g, n)) in self.rings.iter_mut().zip(bounded) {
            ring.add(granule_of(ts, g), n, micros);
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
        let slot = windows
            .iter()
            .filter(|w| w.granulation().is_some())
            .position(|w| *w == window)?;
        self.rings[slot].read(granule_of(at, g), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn one_hour_window_rolls_by_the_minute() {
        let w = [Window::OneHour];
        let mut s = WindowSet::new(&w);
        for m in 0..90 {
            s.add(&w, m * MIN, 1_000_000);
        }
        let r = s.read(&w, Window::OneHour, 89 * MIN).unwrap();
        assert_eq!(r.count, 60);
        assert_eq!(r.weight_sum, 60.0);
        assert_eq!(s.read(&w, Window::OneHour, 120 * MIN).unwrap().count, 29);
        assert_eq!(s.read(&w, Window::OneHour, 500 * MIN).unwrap().count, 0);
        assert_eq!(s.read(&w, Window::AllTime, 0).unwrap().count, 90);
        assert!(
            s.read(&w, Window::OneHour, 40 * MIN).is_none(),
            "minute 0 was dropped"
        );
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let w = [Window::OneHour, Window::TwentyFourHours];
        let times: Vec<i64> = (0..200).map(|i| (i * 7919 % 3000) * MIN / 10).collect();
        let mut a = WindowSet::new(&w);
        let mut b = WindowSet::new(&w);
        for t in &times {
            a.add(&w, *t, 5);
        }
        for t in times.iter().rev() {
            b.add(&w, *t, 5);
        }
        assert_eq!(a, b);
    }
}
