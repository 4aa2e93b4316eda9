//! Ctrl-C during a long call. The call runs detached from the interpreter, where Python's
//! own signal handling cannot reach it, inside a core [`interrupt::scope`] whose check
//! attaches and runs the pending signal handlers (`PyErr_CheckSignals`) about every
//! [`interrupt::CHECK_INTERVAL`]. A handler that raises (the default SIGINT handler raises
//! `KeyboardInterrupt`) stops the call at the core's next safe point, and the call raises
//! that exception: what the core finished stays, as after a shorter call. A bulk write
//! stopped so keeps the chunks it had applied: the exception's `written` says how many
//! events they held, and a note on it says so too.
//!
//! Handlers only ever run on the main thread; elsewhere the check finds nothing to do.
//! A handler runs while the call may hold its object's lock (a bulk write holds the Db's
//! throughout), so a handler that uses the very object being called waits for itself.
//! Python's default handlers, and any that only raise or set a flag, are safe.

use std::cell::{Cell, RefCell};

use pyo3::prelude::*;
use tidaldb::TidalError;
use tidaldb::interrupt;

thread_local! {
    /// The exception a signal handler raised during this thread's current call.
    static RAISED: RefCell<Option<PyErr>> = const { RefCell::new(None) };

    /// How many times this thread checked for pending signal handlers (running any): a
    /// call reading the caller's arrays in place learns from it whether Python code may
    /// have run meanwhile.
    static HANDLER_RUNS: Cell<u64> = const { Cell::new(0) };
}

/// How many times this thread has checked for signal handlers (see `HANDLER_RUNS`).
pub fn handler_runs() -> u64 {
    HANDLER_RUNS.with(Cell::get)
}

/// Runs `work` detached, stopping it when a signal handler raises. The outer `Err` is the
/// handler's exception, which then is the call's outcome; the inner result is the core's.
pub fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, TidalError> + Send,
) -> PyResult<Result<T, TidalError>> {
    let out = py.detach(|| interrupt::scope(run_signal_handlers, work));
    outcome(py, out)
}

/// [`detached`] for work that stays attached (it reads the interpreter's memory): the
/// signal handlers run at the same safe points.
pub fn attached<T>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, TidalError>,
) -> PyResult<Result<T, TidalError>> {
    let out = interrupt::scope(run_signal_handlers, work);
    outcome(py, out)
}

/// The call's outcome once its scope ended: a handler's exception, if one raised.
fn outcome<T>(py: Python<'_>, out: Result<T, TidalError>) -> PyResult<Result<T, TidalError>> {
    match RAISED.with(|r| r.borrow_mut().take()) {
        // Even if the core swallowed the interruption and finished, the exception stands:
        // Python would have raised it at the next bytecode anyway.
        Some(raised) => {
            if let Err(stopped @ TidalError::Interrupted { written, .. }) = &out
                && *written > 0
            {
                tell_written(py, &raised, *written, stopped);
            }
            Err(raised)
        }
        None => {
            debug_assert!(
                !matches!(out, Err(TidalError::Interrupted { .. })),
                "interrupted without an exception"
            );
            Ok(out)
        }
    }
}

/// Sets `written` on the exception, and notes the core's message on it (Python 3.11+
/// shows notes under the traceback). Failing to is harmless: the exception still stops
/// the call.
fn tell_written(py: Python<'_>, raised: &PyErr, written: usize, stopped: &TidalError) {
    let value = raised.value(py);
    let _ = value.setattr("written", written);
    if value.hasattr("add_note").unwrap_or(false) {
        let _ = value.call_method1("add_note", (format!("tidaldb: {stopped}"),));
    }
}

/// The scope's check: runs pending signal handlers; one that raises stops the call.
fn run_signal_handlers() -> Result<(), TidalError> {
    HANDLER_RUNS.with(|runs| runs.set(runs.get() + 1));
    let Err(raised) = Python::attach(|py| py.check_signals()) else {
        return Ok(());
    };
    RAISED.with(|r| *r.borrow_mut() = Some(raised));
    Err(interrupt::interrupted("a Python signal handler raised"))
}
