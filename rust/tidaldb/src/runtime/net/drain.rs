//! A graceful stop for the client port: requests already being answered finish before the
//! replicas close, and a request that arrives after the stop is refused untouched.
//!
//! Without it, a read that was in flight when `tidaldb serve` got SIGTERM could reach its
//! replica after the replica closed, and come back as "the database is closed" instead of
//! an answer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts the requests being answered, and refuses new ones once stopping.
#[derive(Debug, Default)]
pub struct InFlight {
    stopping: AtomicBool,
    answering: AtomicUsize,
}

/// Held while one request is answered; dropping it lets the stop proceed.
#[derive(Debug)]
pub struct Answering<'a>(&'a InFlight);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        let before = self.0.answering.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "more requests finished than started");
    }
}

impl InFlight {
    /// Admits one request, or `None` once the stop has begun.
    ///
    /// The count goes up before the flag is read, and `stop_and_wait` sets the flag before
    /// it reads the count (both `SeqCst`): either the stop sees this request and waits for
    /// it, or this request sees the stop and is refused. Neither can miss the other.
    pub fn enter(&self) -> Option<Answering<'_>> {
        self.answering.fetch_add(1, Ordering::SeqCst);
        let guard = Answering(self);
        if self.stopping.load(Ordering::SeqCst) {
            return None; // the guard's drop takes the count back down
        }
        Some(guard)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Refuses new requests, then waits up to `patience` for those being answered.
    /// Returns how many were still running when it gave up (0 when all finished).
    ///
    /// It polls rather than awaits because `Server::shutdown` is synchronous: the requests
    /// it waits for run on the runtime's other worker threads.
    pub fn stop_and_wait(&self, patience: Duration) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + patience;
        loop {
            let answering = self.answering.load(Ordering::SeqCst);
            if answering == 0 || Instant::now() >= deadline {
                return answering;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_stop_waits_for_a_request_being_answered() {
        let flight = Arc::new(InFlight::default());
        let guard_flight = flight.clone();
        let (entered, go) = std::sync::mpsc::channel();
        let answering = std::thread::spawn(move || {
            let guard = guard_flight.enter();
            assert!(guard.is_some());
            entered.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(guard);
        });
        go.recv().unwrap();
        let started = Instant::now();
        assert_eq!(flight.stop_and_wait(Duration::from_secs(5)), 0);
        assert!(started.elapsed() >= Duration::from_millis(30));
        answering.join().unwrap();
    }

    #[test]
    fn a_request_after_the_stop_is_refused_and_not_counted() {
        let flight = InFlight::default();
        assert_eq!(flight.stop_and_wait(Duration::ZERO), 0);
        assert!(flight.enter().is_none());
        assert!(flight.is_stopping());
        assert_eq!(flight.answering.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_stop_gives_up_after_its_patience_and_says_how_many_remain() {
        let flight = InFlight::default();
        let _stuck = flight.enter();
        assert_eq!(flight.stop_and_wait(Duration::from_millis(20)), 1);
    }
}
