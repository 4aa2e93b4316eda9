//! How long to wait before dialing a peer again: exponential, capped, with full jitter, so
//! that nodes restarted together do not all redial a recovering peer in the same instant.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(50);
const CAP: Duration = Duration::from_secs(2);

/// Delays for successive failed attempts. Jitter comes from a small xorshift generator
/// seeded per link: it needs to spread nodes apart, not to be unpredictable.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    state: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff {
            attempt: 0,
            // xorshift has a fixed point at 0.
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: uniform in [ceiling / 2, ceiling], where the ceiling doubles per
    /// attempt from 50 ms up to 2 s.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = FIRST.saturating_mul(1 << self.attempt.min(16)).min(CAP);
        self.attempt = self.attempt.saturating_add(1);
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let half = ceiling / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.state % spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_jittered_within_it() {
        let mut b = Backoff::new(7);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= FIRST / 2 && delays[0] <= FIRST);
        assert!(delays.iter().all(|d| *d <= CAP));
        assert!(delays[11] >= CAP / 2, "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= FIRST);
        let mut other = Backoff::new(8);
        let spread: Vec<Duration> = (0..12).map(|_| other.next_delay()).collect();
        assert_ne!(delays, spread, "two links do not redial in lockstep");
    }
}
