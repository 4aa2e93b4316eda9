//! Awaitables for long work. Each call returns a coroutine (so `asyncio.run(x)` takes it,
//! as it takes any coroutine), `tidaldb._async.run(job)`. Awaited, it starts the job on a
//! thread of its own, never the event loop's, so other coroutines keep running; a job that
//! is never awaited never runs. Cancelling the awaiting task cancels the job: the core
//! stops at its next safe point (see `tidaldb::interrupt`), within about 50 ms.
//!
//! The result goes back to the loop with `call_soon_threadsafe`, from the worker thread.
//! That is the one moment a worker touches Python on its own, and it may come late: after
//! `asyncio.run` returned, even while the interpreter shuts down. A thread that takes the
//! GIL during finalization is stopped dead, and the process aborts. So every such moment
//! goes through [`with_python`], and an `atexit` hook ([`drain`]) closes the door first:
//! it waits for workers already inside, and workers that come later leave Python alone
//! (and stop their work at its next safe point).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pyo3::BoundObject;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tidaldb::{TidalError, interrupt};

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
    m.add_class::<Job>()?;
    let hook = wrap_pyfunction!(drain, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}

/// What a job's worker hands back, to finish with the GIL: the result, or the exception.
type Finish = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;
/// A job's work, run on its worker thread without the GIL.
type Work = Box<dyn FnOnce() -> Finish + Send>;

// Started once by `tidaldb._async.run`, which also cancels it when the awaiting task is
// cancelled or the coroutine is closed.
#[doc = include_str!("../pydoc/_Job.md")]
#[pyclass(module = "tidaldb._native", name = "_Job", frozen)]
pub struct Job {
    work: Mutex<Option<Work>>,
    cancelled: Arc<AtomicBool>,
}

#[pymethods]
impl Job {
    #[doc = include_str!("../pydoc/_Job/start.md")]
    fn start(&self, py: Python<'_>, event_loop: Py<PyAny>, future: Py<PyAny>) -> PyResult<()> {
        let work = self
            .work
            .lock()
            .map_err(|_| PyRuntimeError::new_err("tidaldb's awaitable was poisoned"))?
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this awaitable was already awaited"))?;
        let deliver = py.import("tidaldb._async")?.getattr("deliver")?.unbind();
        let cancelled = self.cancelled.clone();
        std::thread::Builder::new()
            .name("tidaldb-await".into())
            .spawn(move || run_job(work, cancelled, (event_loop, future, deliver)))
            .map_err(|e| {
                PyRuntimeError::new_err(format!("tidaldb could not start a worker thread: {e}"))
            })?;
        Ok(())
    }

    #[doc = include_str!("../pydoc/_Job/cancel.md")]
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

/// The worker: the work inside an interrupt scope that its cancellation (or the
/// interpreter's exit) trips, then the outcome delivered to the loop.
fn run_job(work: Work, cancelled: Arc<AtomicBool>, target: (Py<PyAny>, Py<PyAny>, Py<PyAny>)) {
    let stop = cancelled.clone();
    let check = move || {
        if stop.load(Ordering::SeqCst) || CLOSING.load(Ordering::SeqCst) {
            Err(interrupt::interrupted("the awaiting task was cancelled"))
        } else {
            Ok(())
        }
    };
    // A panic must still resolve the future, or its awaiter would wait forever.
    let finish = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        interrupt::scope(check, || Ok(work()))
    }));
    let mut target = Some(target);
    with_python(|py| {
        let Some((event_loop, future, deliver)) = target.take() else {
            return;
        };
        let finished = match finish {
            Ok(Ok(finish)) => {
                let delivered = logging::deliver(py);
                // Finished even when delivery failed: it may release resources (a bar).
                let finished = finish(py);
                delivered.and(finished)
            }
            Ok(Err(e)) => Err(crate::errors::to_py(py, e)),
            Err(_) => Err(PyRuntimeError::new_err(
                "tidaldb's worker panicked; this is a bug, please report it",
            )),
        };
        // A cancelled awaiter is gone: nobody reads the outcome.
        if cancelled.load(Ordering::SeqCst) {
            return;
        }
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
}

/// A coroutine that runs `work` (without the GIL) and then `finish` (with it, turning the
/// work's output into the result). `name` is the coroutine's `__qualname__`, as in "never
/// awaited" warnings.
pub fn spawn<'py, W: Send + 'static>(
    py: Python<'py>,
    name: &str,
    work: impl FnOnce() -> W + Send + 'static,
    finish: impl FnOnce(Python<'_>, W) -> PyResult<Py<PyAny>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    let work: Work = Box::new(move || {
        let output = work();
        Box::new(move |py: Python<'_>| finish(py, output)) as Finish
    });
    let job = Job {
        work: Mutex::new(Some(work)),
        cancelled: Arc::new(AtomicBool::new(false)),
    };
    let coroutine = py
        .import("tidaldb._async")?
        .getattr("run")?
        .call1((Py::new(py, job)?,))?;
    coroutine.setattr("__qualname__", name)?;
    Ok(coroutine)
}

/// A coroutine that runs `work` on its own thread and resolves to its result. Work with
/// no result returns `None::<()>`: a Rust `()` would reach Python as `()`, not None.
pub fn blocking<'py, T>(
    py: Python<'py>,
    name: &str,
    work: impl FnOnce() -> Result<T, TidalError> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn(py, name, work, |py, result| {
        let value = result.py_err(py)?;
        Ok(value
            .into_pyobject(py)
            .map_err(Into::into)?
            .into_any()
            .unbind())
    })
}
