//! How long the disk takes to make the log durable: every real `fsync` of a WAL segment is
//! timed into one process-wide histogram, which `/metrics` exports. Process-wide because
//! it measures the disk, which every log of the process shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram's buckets, in seconds (Prometheus `le` labels).
pub const FSYNC_BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

struct Histogram {
    /// Cumulative is computed on read; each bucket counts only its own range, and the
    /// last slot counts syncs slower than every bound.
    buckets: [AtomicU64; FSYNC_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

static FSYNC: Histogram = Histogram {
    buckets: [const { AtomicU64::new(0) }; FSYNC_BUCKETS.len() + 1],
    count: AtomicU64::new(0),
    sum_ns: AtomicU64::new(0),
};

/// Records one fsync's duration.
pub fn record_fsync(took: Duration) {
    let secs = took.as_secs_f64();
    let slot = FSYNC_BUCKETS
        .iter()
        .position(|&le| secs <= le)
        .unwrap_or(FSYNC_BUCKETS.len());
    FSYNC.buckets[slot].fetch_add(1, Ordering::Relaxed);
    FSYNC.count.fetch_add(1, Ordering::Relaxed);
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    FSYNC.sum_ns.fetch_add(ns, Ordering::Relaxed);
}

/// The histogram so far, with cumulative bucket counts as Prometheus expects.
#[derive(Clone, Debug, PartialEq)]
pub struct FsyncReading {
    /// `(le, syncs at most that long)`, one per bound in [`FSYNC_BUCKETS`].
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_secs: f64,
}

pub fn fsync_latency() -> FsyncReading {
    let mut running = 0;
    let cumulative = FSYNC_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, &le)| {
            running += FSYNC.buckets[i].load(Ordering::Relaxed);
            (le, running)
        })
        .collect();
    FsyncReading {
        cumulative,
        count: FSYNC.count.load(Ordering::Relaxed),
        sum_secs: FSYNC.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_land_in_the_bucket_of_their_duration() {
        let before = fsync_latency();
        record_fsync(Duration::from_micros(700));
        let after = fsync_latency();
        assert_eq!(after.count, before.count + 1);
        let grew: Vec<f64> = after
            .cumulative
            .iter()
            .zip(&before.cumulative)
            .filter(|(a, b)| a.1 > b.1)
            .map(|(a, _)| a.0)
            .collect();
        // Other tests may sync concurrently, so only the lowest bucket that grew is sure.
        assert!(grew.contains(&0.001), "{grew:?}");
        assert!(after.cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}
