//! Ctrl-C during a long call. The call runs detached from the interpreter, where Python's
//! own signal handling cannot reach it, inside a core [`interrupt::scope`] whose check
//! attaches and runs the pending signal handlers (`PyErr_CheckSignals`) about every
//! [`interrupt::CHECK_INTERVAL`]. A handler that raises (the default SIGINT handler raises
//! `KeyboardInterrupt`) stops the call at the core's next safe point, and the call raises
//! that exception: what the core finished stays, as after a shorter call.
//!
//! Handlers only ever run on the main thread; elsewhere the check finds nothing to do.
//! A handler runs while the call may hold its object's lock (a bulk write holds the Db's
//! throughout), so a handler that uses the very object being called waits for itself.
//! Python's default handlers, and any that only raise or set a flag, are safe.

use std::cell::RefCell;

use pyo3::prelude::*;
use tidaldb::TidalError;
use tidaldb::interrupt;

thread_local! {
    /// The exception a signal handler raised during this thread's current call.
    static RAISED: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Runs `work` detached, stopping it when a signal handler raises. The outer `Err` is the
/// handler's exception, which then is the call's outcome; the inner result is the core's.
pub fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, TidalError> + Send,
) -> PyResult<Result<T, TidalError>> {
    let out = py.detach(|| interrupt::scope(run_signal_handlers, work));
    match RAISED.with(|r| r.borrow_mut().take()) {
        // Even if the core swallowed the interruption and finished, the exception stands:
        // Python would have raised it at the next bytecode anyway.
        Some(raised) => Err(raised),
        None => {
            debug_assert!(
                !matches!(out, Err(TidalError::Interrupted(_))),
                "interrupted without an exception"
            );
            Ok(out)
        }
    }
}

/// The scope's check: runs pending signal handlers; one that raises stops the call.
fn run_signal_handlers() -> Result<(), TidalError> {
    let Err(raised) = Python::attach(|py| py.check_signals()) else {
        return Ok(());
    };
    RAISED.with(|r| *r.borrow_mut() = Some(raised));
    Err(interrupt::interrupted("a Python signal handler raised"))
}
