//! Whether spreading a batch over threads pays, judged by timing the batches.
//!
//! Threads pay only when cores are free. On a machine whose cores other processes keep
//! busy, a thread that the OS preempts holds up every batch it has a share of: there, a
//! spread batch measured 2 to 25 times slower than on one thread, and a 1M-event write
//! 0.58x as fast. So the ledgers of a process time both ways, into one record shared by
//! all of them, and spread a batch only while that has been the faster way. It tries the slower way again now and then, to notice when the
//! load changes, and less and less often while the answer stays the same. The choice
//! changes the speed and never the state: a partitioned apply is bit-identical to a
//! serial one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

/// Batches between two tries of the slower way, at first and after the answer changed: a
/// try on a busy machine costs several batches' time, so a 1M-event write (122 batches)
/// makes one or two.
const FIRST_PROBE_AFTER: u32 = 64;

/// The longest wait between two tries: while the answer stays the same, each try doubles
/// the wait up to this, so a machine that stays busy pays for a try at most every 1024
/// batches (8M events).
const LAST_PROBE_AFTER: u32 = 1024;

/// How much a new timing counts against the history in the smoothed cost.
const WEIGHT_OF_NEW: f64 = 0.25;

#[derive(Clone, Debug)]
pub struct Pace {
    /// Smoothed nanoseconds per event on one thread; `None` until timed.
    serial: Option<f64>,
    /// The same, spread over threads.
    spread: Option<f64>,
    /// Batches until the slower way is tried again.
    until_probe: u32,
    /// What `until_probe` restarts from after a try.
    probe_after: u32,
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

/// What the process has learned: the load is the machine's, not one ledger's, so every
/// ledger (each tenant's, each reopened database's) shares it instead of paying again for
/// timing both ways.
static PROCESS: Mutex<Pace> = Mutex::new(Pace::new());

/// Set by [`spread_every_batch`].
static SPREAD_EVERY_BATCH: AtomicBool = AtomicBool::new(false);

/// Spreads every large batch in this process over its ledger's apply threads from now on,
/// without timing whether that pays: for tests and measurements of the spread apply
/// itself, which must give the same state as applying on one thread.
pub fn spread_every_batch() {
    SPREAD_EVERY_BATCH.store(true, Ordering::Relaxed);
}

/// Whether [`spread_every_batch`] was called.
pub fn spreads_every_batch() -> bool {
    SPREAD_EVERY_BATCH.load(Ordering::Relaxed)
}

/// Runs `f` on the process's pace, or returns `None` without waiting if another thread
/// holds it: the caller then goes without (applies on one thread, or leaves a timing
/// unrecorded), which costs at most one batch's speed. Never waiting matters after a
/// `fork`: a lock some parent thread held at that moment stays held for good in the child,
/// which must still write. A thread that panicked while holding it left at worst a stale
/// timing, which the next batches correct.
pub fn with_process_pace<T>(f: impl FnOnce(&mut Pace) -> T) -> Option<T> {
    match PROCESS.try_lock() {
        Ok(mut pace) => Some(f(&mut pace)),
        Err(TryLockError::Poisoned(pace)) => Some(f(&mut pace.into_inner())),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl Pace {
    pub const fn new() -> Self {
        Pace {
            serial: None,
            spread: None,
            until_probe: FIRST_PROBE_AFTER,
            probe_after: FIRST_PROBE_AFTER,
        }
    }

    /// Whether spreading has been the faster way; `None` until both are timed.
    fn spreading_pays(&self) -> Option<bool> {
        Some(self.spread? <= self.serial?)
    }

    /// Whether the next large batch should be spread over threads: first no, then yes (so
    /// both are timed), then the faster way, except on a try of the slower one.
    pub fn spread_next(&self) -> bool {
        match (self.serial, self.spreading_pays()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(_), Some(pays)) => pays != (self.until_probe == 0),
        }
    }

    /// Records that a batch of `events` took `took`, spread over threads or not.
    pub fn record(&mut self, spread: bool, events: usize, took: Duration) {
        let per_event = took.as_nanos() as f64 / events.max(1) as f64;
        let before = self.spreading_pays();
        let tried_slower = before.is_some_and(|pays| pays != spread);
        let cost = if spread {
            &mut self.spread
        } else {
            &mut self.serial
        };
        *cost = Some(match *cost {
            // A try of the slower way replaces its cost: the old one is stale.
            Some(old) if !tried_slower => old + WEIGHT_OF_NEW * (per_event - old),
            _ => per_event,
        });
        if tried_slower {
            self.probe_after = if self.spreading_pays() == before {
                (self.probe_after * 2).min(LAST_PROBE_AFTER)
            } else {
                FIRST_PROBE_AFTER
            };
            self.until_probe = self.probe_after;
        } else {
            self.until_probe = self.until_probe.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `batches` batches at the given costs per event; which ones were spread.
    fn run(pace: &mut Pace, serial_ns: u64, spread_ns: u64, batches: usize) -> Vec<bool> {
        (0..batches)
            .map(|_| {
                let spread = pace.spread_next();
                let ns = if spread { spread_ns } else { serial_ns };
                pace.record(spread, 1000, Duration::from_nanos(ns * 1000));
                spread
            })
            .collect()
    }

    #[test]
    fn times_both_ways_then_keeps_the_faster() {
        let mut free = Pace::default();
        let chosen = run(&mut free, 50, 30, 100);
        assert_eq!(&chosen[..2], &[false, true]);
        assert!(
            chosen[2..].iter().filter(|s| !**s).count() <= 4,
            "{chosen:?}"
        );

        let mut busy = Pace::default();
        let chosen = run(&mut busy, 30, 50, 100);
        assert_eq!(&chosen[..2], &[false, true]);
        assert!(
            chosen[2..].iter().filter(|s| **s).count() <= 4,
            "{chosen:?}"
        );
    }

    #[test]
    fn tries_the_slower_way_less_often_while_it_stays_slower() {
        let mut busy = Pace::default();
        let chosen = run(&mut busy, 30, 50, 5000);
        let tries = chosen[2..].iter().filter(|s| **s).count();
        // After 64, 128, ..., 1024, then every 1024 batches: 7 tries in 5000 batches.
        assert!((5..=9).contains(&tries), "{tries} tries");
    }

    #[test]
    fn a_change_of_load_turns_the_choice_around_at_the_next_try() {
        let mut pace = Pace::default();
        run(&mut pace, 30, 50, 40);
        let wait = pace.until_probe as usize;
        // The cores free up: spreading now takes 10 ns an event.
        let chosen = run(&mut pace, 30, 10, wait + 1 + 20);
        assert!(chosen[..wait].iter().all(|s| !*s));
        assert!(chosen[wait], "the try at {wait}: {chosen:?}");
        // From then on spread, but for tries of one thread now and then.
        let serial_after = chosen[wait..].iter().filter(|s| !**s).count();
        assert!(serial_after <= 3, "{chosen:?}");
    }
}
