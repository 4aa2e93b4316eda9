//! Awaitables for long work, run on the blocking pool of pyo3-async-runtimes' tokio
//! runtime, never on the asyncio event loop's thread, so other coroutines keep running.
//!
//! The result goes back to the loop with `call_soon_threadsafe`, from the worker thread.
//! That is the one moment a worker touches Python on its own, and it may come late: after
//! `asyncio.run` returned, even while the interpreter shuts down. A thread that takes the
//! GIL during finalization is stopped dead, and the process aborts. So every such moment
//! goes through [`with_python`], and an `atexit` hook ([`drain`]) closes the door first:
//! it waits for workers already inside, and workers that come later leave Python alone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pyo3::BoundObject;
use pyo3::prelude::*;
use tidaldb::TidalError;

use crate::errors::IntoPyResult;
use crate::logging;

/// Set by [`drain`] at interpreter exit: no worker may take the GIL after it.
static CLOSING: AtomicBool = AtomicBool::new(false);
/// Workers that passed the door and may hold, or be about to take, the GIL.
static INSIDE: AtomicUsize = AtomicUsize::new(0);
static LEFT: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

/// How long exit waits for a worker that is delivering a result: delivery is one call
/// into the event loop, so this only bounds a pathological case.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Runs `f` with the GIL from a worker thread, unless the interpreter is shutting down
/// (then `None`, and `f` does not run).
pub fn with_python<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    let _inside = Inside::enter();
    if CLOSING.load(Ordering::SeqCst) {
        return None;
    }
    Some(Python::attach(f))
}

/// One worker through the door; leaving is counted even if the worker panics, or exit
/// would wait for it in vain.
struct Inside;

impl Inside {
    fn enter() -> Inside {
        INSIDE.fetch_add(1, Ordering::SeqCst);
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        if INSIDE.fetch_sub(1, Ordering::SeqCst) == 1 {
            let (lock, left) = &LEFT;
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            left.notify_all();
        }
    }
}

/// The `atexit` hook: closes the door to Python for workers, then waits (without the
/// GIL) for those already through it.
#[pyfunction]
pub fn drain(py: Python<'_>) {
    CLOSING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let (lock, left) = &LEFT;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        while INSIDE.load(Ordering::SeqCst) > 0 {
            let (g, timeout) = left
                .wait_timeout(guard, DRAIN_LIMIT)
                .unwrap_or_else(|p| p.into_inner());
            guard = g;
            if timeout.timed_out() {
                break;
            }
        }
    });
}

/// Registers [`drain`] with `atexit`; called once when the module loads.
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(drain, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}

/// An asyncio future that `work` (run on the blocking pool) and then `finish` (with the
/// GIL, turning its output into the result) resolve. A cancelled future is left alone;
/// the work itself runs to its end.
pub fn spawn<'py, W: Send + 'static>(
    py: Python<'py>,
    work: impl FnOnce() -> W + Send + 'static,
    finish: impl FnOnce(Python<'_>, W) -> PyResult<Py<PyAny>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let future = event_loop.call_method0("create_future")?;
    let deliver = py.import("tidaldb._async")?.getattr("deliver")?;
    let target = (
        event_loop.unbind(),
        future.clone().unbind(),
        deliver.unbind(),
    );
    pyo3_async_runtimes::tokio::get_runtime().spawn_blocking(move || {
        // A panic must still resolve the future, or its awaiter would wait forever.
        let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let mut target = Some(target);
        with_python(|py| {
            let Some((event_loop, future, deliver)) = target.take() else {
                return;
            };
            logging::deliver(py);
            let finished = match output {
                Ok(output) => finish(py, output),
                Err(_) => Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "tidaldb's worker panicked; this is a bug, please report it",
                )),
            };
            let (ok, value) = match finished {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            // The loop may have closed meanwhile (the program moved on): nobody waits.
            if let Err(e) =
                event_loop.call_method1(py, "call_soon_threadsafe", (deliver, future, ok, value))
                && !event_loop
                    .call_method0(py, "is_closed")
                    .and_then(|c| c.extract::<bool>(py))
                    .unwrap_or(false)
            {
                e.write_unraisable(py, None);
            }
        });
        // Exiting: the references are left to the interpreter's own teardown, since
        // releasing them needs the GIL this thread may no longer take.
        std::mem::forget(target);
    });
    Ok(future)
}

/// An awaitable that runs `work` on the blocking pool and resolves to its result. Work
/// with no result returns `None::<()>`: a Rust `()` would reach Python as `()`, not None.
pub fn blocking<'py, T>(
    py: Python<'py>,
    work: impl FnOnce() -> Result<T, TidalError> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn(py, work, |py, result| {
        let value = result.py_err(py)?;
        Ok(value
            .into_pyobject(py)
            .map_err(Into::into)?
            .into_any()
            .unbind())
    })
}
