//! Stopping a long call from outside: a bulk write, a simulator run, a wait for convergence
//! or a migration step asks its caller, between bounded units of work, whether to go on.
//!
//! The caller wraps the call in [`scope`] with a check (the Python bindings check for a
//! pending Ctrl-C; an awaitable checks whether it was cancelled). The core calls
//! [`checkpoint`] at points where stopping leaves the state as a shorter call would have:
//! between simulator happenings (with the simulator's lock released), between the ticks of
//! a wait, between the chunks of a bulk write or read. The check runs at most
//! every [`CHECK_INTERVAL`], so a checkpoint costs a clock read. A check that fails stops
//! the call with its error, [`TidalError::Interrupted`] by convention. A bulk write stopped
//! between two of its chunks keeps those it applied, and says how many events they held.
//!
//! The scope is the calling thread's: work handed to another thread runs unchecked unless
//! that thread opens a scope of its own. Outside a scope every checkpoint passes.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::error::{Result, TidalError};

/// How often a long call asks its caller's check: often enough that Ctrl-C feels
/// immediate, rarely enough that the check's cost (the bindings take the interpreter's
/// lock for it) stays out of the profile.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// A caller's check: `Err` stops the call.
type Check = Box<dyn FnMut() -> Result<()>>;

struct Scope {
    check: Check,
    next: Instant,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Puts back the scope that was open before, however the work ended (a panic included).
struct Restore(Option<Scope>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        SCOPE.with(|s| *s.borrow_mut() = previous);
    }
}

/// Runs `work` on this thread with `check` asked at its checkpoints, at most every
/// [`CHECK_INTERVAL`]. Scopes nest: an inner one replaces the outer for its duration.
pub fn scope<T>(
    check: impl FnMut() -> Result<()> + 'static,
    work: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let scope = Scope {
        check: Box::new(check),
        next: Instant::now() + CHECK_INTERVAL,
    };
    let _restore = Restore(SCOPE.with(|s| s.borrow_mut().replace(scope)));
    work()
}

/// Runs `work` with no scope: its checkpoints all pass, so it runs to its end. For calls
/// whose signature has no room for an interruption.
pub fn suspended<T>(work: impl FnOnce() -> T) -> T {
    let _restore = Restore(SCOPE.with(|s| s.borrow_mut().take()));
    work()
}

/// True when the scope's check is due. Loops that hold a lock test this first, and release
/// the lock before they call [`checkpoint`].
pub fn due() -> bool {
    SCOPE.with(|s| {
        s.borrow()
            .as_ref()
            .is_some_and(|s| Instant::now() >= s.next)
    })
}

/// Asks the scope's check whether to go on, if it is due; passes outside a scope.
pub fn checkpoint() -> Result<()> {
    if !due() {
        return Ok(());
    }
    // Taken out while the check runs: it may run code that makes calls of its own (a
    // Python signal handler can), and those must see no scope, or their own.
    let Some(mut scope) = SCOPE.with(|s| s.borrow_mut().take()) else {
        return Ok(());
    };
    let outcome = (scope.check)();
    scope.next = Instant::now() + CHECK_INTERVAL;
    SCOPE.with(|s| *s.borrow_mut() = Some(scope));
    outcome
}

/// The error a check returns to stop a call: `why` completes "interrupted: ...".
pub fn interrupted(why: impl Into<String>) -> TidalError {
    TidalError::Interrupted {
        why: why.into(),
        written: 0,
    }
}

/// `stopped`, from a bulk write that had written `written` events when it stopped.
pub fn after_writing(stopped: TidalError, written: usize) -> TidalError {
    match stopped {
        TidalError::Interrupted { why, .. } => TidalError::Interrupted { why, written },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// Spins through checkpoints for `run`, returning how many passed.
    fn spin(run: Duration) -> Result<u64> {
        let end = Instant::now() + run;
        let mut passed = 0;
        while Instant::now() < end {
            checkpoint()?;
            passed += 1;
        }
        Ok(passed)
    }

    #[test]
    fn outside_a_scope_every_checkpoint_passes() {
        assert!(!due());
        assert!(spin(Duration::from_millis(60)).is_ok_and(|n| n > 0));
    }

    #[test]
    fn the_check_runs_about_every_interval_and_its_error_stops_the_work() {
        let calls = Rc::new(Cell::new(0u32));
        let counted = calls.clone();
        let started = Instant::now();
        let out = scope(
            move || {
                counted.set(counted.get() + 1);
                if counted.get() == 3 {
                    Err(interrupted("by the test"))
                } else {
                    Ok(())
                }
            },
            || spin(Duration::from_secs(10)),
        );
        let took = started.elapsed();
        assert!(
            matches!(out, Err(TidalError::Interrupted { ref why, written: 0 }) if why == "by the test")
        );
        assert_eq!(calls.get(), 3);
        // Three intervals, not the ten seconds the work would have taken.
        assert!(took >= 3 * CHECK_INTERVAL, "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // The scope is gone with its call.
        assert!(!due());
    }

    #[test]
    fn scopes_nest_and_suspension_lifts_them() {
        let outer_calls = Rc::new(Cell::new(0u32));
        let counted = outer_calls.clone();
        let out = scope(
            move || {
                counted.set(counted.get() + 1);
                Ok(())
            },
            || {
                let inner = scope(
                    || Err(interrupted("inner")),
                    || spin(Duration::from_secs(10)),
                );
                assert!(matches!(inner, Err(TidalError::Interrupted { .. })));
                // Suspended: runs its whole length, and the outer check is not asked.
                let before = outer_calls.get();
                assert!(suspended(|| spin(2 * CHECK_INTERVAL)).is_ok());
                assert_eq!(outer_calls.get(), before);
                // The outer scope is back after both.
                spin(2 * CHECK_INTERVAL)
            },
        );
        assert!(out.is_ok());
        assert!(outer_calls.get() >= 1);
    }

    #[test]
    fn a_check_that_makes_checked_calls_sees_no_scope() {
        let out = scope(
            || {
                // A checkpoint inside the check passes, rather than recursing.
                assert!(!due());
                checkpoint()
            },
            || spin(3 * CHECK_INTERVAL),
        );
        assert!(out.is_ok());
    }
}
