//! Maps core errors onto the exception classes of `tidaldb.exceptions`.
//!
//! The classes are defined in Python so that they can subclass both `TidalError` and the
//! nearest built-in (ValueError, KeyError, ...), which is awkward to express from Rust. They
//! are imported once per interpreter and cached.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use tidaldb::tenancy::{Quota, QuotaBreach};
use tidaldb::{ErrorKind, TidalError};

static SCHEMA_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID_ARGUMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static NOT_FOUND: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CORRUPTION: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UNAVAILABLE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static QUOTA_EXCEEDED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFLICT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static OUTCOME_UNKNOWN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIDAL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

const MODULE: &str = "tidaldb.exceptions";

/// The Python exception for a core error, carrying the core's own message.
pub fn to_py(py: Python<'_>, err: TidalError) -> PyErr {
    let (cell, name) = match (&err, err.kind()) {
        (TidalError::OutcomeUnknown(_), _) => (&OUTCOME_UNKNOWN, "OutcomeUnknown"),
        (_, kind) => class_of(kind),
    };
    let message = err.to_string();
    match cell.import(py, MODULE, name) {
        Ok(class) => {
            let exc = PyErr::from_type(class.clone(), message);
            let breach = err.quota_breach();
            let written = match &err {
                TidalError::PartlyWritten { written, .. }
                | TidalError::ChangedWhileWriting { written, .. } => Some(*written),
                _ => None,
            };
            if let Some(breach) = breach {
                describe_breach(py, &exc, breach);
            }
            if let Some(written) = written {
                // See `describe_breach` on why a failure here is ignored.
                let _ = exc.value(py).setattr("written", written);
            }
            exc
        }
        // Only reachable if the pure-Python half of the package is broken; still surface the
        // original message rather than the import failure.
        Err(_) => PyRuntimeError::new_err(message),
    }
}

/// The exception class of each error kind.
fn class_of(kind: ErrorKind) -> (&'static PyOnceLock<Py<PyType>>, &'static str) {
    match kind {
        ErrorKind::Schema => (&SCHEMA_ERROR, "SchemaError"),
        ErrorKind::InvalidArgument => (&INVALID_ARGUMENT, "InvalidArgument"),
        ErrorKind::NotFound => (&NOT_FOUND, "NotFound"),
        ErrorKind::Corruption => (&CORRUPTION, "Corruption"),
        // An I/O failure means the database cannot serve the call; the message names the
        // file and the operation, which is what the caller needs to act on it.
        ErrorKind::Io | ErrorKind::Unavailable => (&UNAVAILABLE, "Unavailable"),
        ErrorKind::Timeout => (&TIMEOUT, "Timeout"),
        ErrorKind::QuotaExceeded => (&QUOTA_EXCEEDED, "QuotaExceeded"),
        ErrorKind::Conflict => (&CONFLICT, "Conflict"),
        // A call stops so only at its caller's request, and the caller raises its own
        // exception instead (`signals`, `awaitable`); this is the fallback.
        ErrorKind::Interrupted => (&TIDAL_ERROR, "TidalError"),
    }
}

/// Sets `quota`, `limit`, `retry_after` (seconds, or None) and `tenant` on a
/// `QuotaExceeded`, so that a caller can back off without parsing the message.
fn describe_breach(py: Python<'_>, exc: &PyErr, breach: &QuotaBreach) {
    let value = exc.value(py);
    let quota = match breach.quota {
        Quota::SignalsPerSec => "signals_per_sec",
        Quota::Entities => "entities",
        Quota::StorageBytes => "storage_bytes",
    };
    let retry_after = breach.retry_after.map(|d| d.as_secs_f64());
    // Setting attributes on a fresh exception instance cannot fail short of memory
    // exhaustion; the message still carries every figure if it ever did.
    let _ = value.setattr("quota", quota);
    let _ = value.setattr("limit", breach.limit);
    let _ = value.setattr("retry_after", retry_after);
    let _ = value.setattr("tenant", breach.tenant);
}

/// `Result<T, TidalError>` → `PyResult<T>`, for use with `?`.
pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, TidalError> {
    #[inline]
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// An `InvalidArgument` raised by the bindings themselves, for input the core never sees
/// (a wrong numpy dtype, an unknown durability name). It goes through the core's error type
/// so that its message reads like every other one.
pub fn invalid(py: Python<'_>, name: &'static str, reason: impl Into<String>) -> PyErr {
    to_py(
        py,
        TidalError::InvalidArgument {
            name,
            reason: reason.into(),
        },
    )
}
