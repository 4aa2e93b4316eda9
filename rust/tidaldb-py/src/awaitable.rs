//! Awaitables for long simulator work, from pyo3-async-runtimes.
//!
//! The work runs on tokio's blocking pool, never on the asyncio event loop's thread, so
//! other coroutines keep running while virtual time advances.

use pyo3::prelude::*;
use tidaldb::TidalError;

use crate::errors::IntoPyResult;
use crate::logging;

/// An awaitable that runs `work` on the blocking pool and resolves to its result. Work
/// with no result returns `None::<()>`: a Rust `()` would reach Python as `()`, not None.
pub fn blocking<'py, T>(
    py: Python<'py>,
    work: impl FnOnce() -> Result<T, TidalError> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let joined = tokio::task::spawn_blocking(work).await;
        Python::attach(|py| {
            logging::deliver(py);
            match joined {
                Ok(r) => r.py_err(py),
                Err(e) => Err(crate::cluster::task_failed(e)),
            }
        })
    })
}
