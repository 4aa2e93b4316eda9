//! A large bulk write read in place from its numpy arrays, for a caller that is the only
//! Python thread.
//!
//! `Db.signals` reads its inputs as they were when it was called: it copies the arrays
//! before it releases the interpreter, because another thread may change them meanwhile.
//! A large call's copies are fresh memory, and on this kind of machine the page faults
//! and zeroing of 24 bytes an event cost as much as a third of the write itself.
//!
//! When no other Python thread exists, releasing the interpreter lets no one else run, so
//! keeping it costs no one anything, and keeping it keeps the arrays as they were: no
//! Python code runs while the write reads them. The one exception is a signal handler,
//! which runs at the write's safe points (so that Ctrl-C stops it): a handler that
//! changes the arrays changes the rows not yet written, as it would had it run between
//! two calls. So a large write to a lone in-memory database (no log, peer or quota, so
//! no thread of the database's own takes its lock) from the only Python thread stays
//! attached and reads its ids, weights and times (Unix seconds) where they are.

use std::sync::TryLockError;

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use tidaldb::EntityId;

use super::{PyDb, open, poisoned};
use crate::convert::{name_bad_time, same_length};
use crate::{logging, signals};

/// Calls smaller than this are copied: their copies come from memory the allocator keeps,
/// and counting the interpreter's threads would cost more than it saves.
const IN_PLACE_MIN_EVENTS: usize = 1 << 16;

impl PyDb {
    /// Writes the call in place when it can (see the module's doc); `None` when it cannot,
    /// and the caller copies. Only contiguous uint64 ids and float64 weights and times are
    /// read in place; any other input is converted by the copying path.
    pub(super) fn signals_in_place(
        &self,
        py: Python<'_>,
        name: &str,
        items: &Bound<'_, PyAny>,
        weights: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<usize>> {
        let (Ok(items), Ok(weights)) = (
            items.cast::<PyArray1<u64>>(),
            weights.cast::<PyArray1<f64>>(),
        ) else {
            return Ok(None);
        };
        if items.len() < IN_PLACE_MIN_EVENTS || !only_python_thread(py)? {
            return Ok(None);
        }
        let (Ok(items), Ok(weights)) = (items.try_readonly(), weights.try_readonly()) else {
            return Ok(None);
        };
        let (Ok(ids), Ok(weights)) = (items.as_slice(), weights.as_slice()) else {
            return Ok(None);
        };
        same_length(py, "weights", weights.len(), ids.len())?;
        let ts = match ts {
            None => None,
            Some(t) => match t.cast::<PyArray1<f64>>().map(|t| t.try_readonly()) {
                Ok(Ok(t)) => Some(t),
                // Times of another kind are converted by the copying path.
                _ => return Ok(None),
            },
        };
        let secs = match &ts {
            None => None,
            Some(t) => match t.as_slice() {
                Ok(secs) => Some(secs),
                Err(_) => return Ok(None),
            },
        };
        if let Some(secs) = secs {
            same_length(py, "ts", secs.len(), ids.len())?;
        }
        self.origin.check(py, "Db")?;
        let out = signals::attached(py, || match self.db.try_lock() {
            Ok(slot) => {
                let db = open(&slot)?;
                if !db.writes_stay_in_memory()? {
                    return Ok(None);
                }
                let ids = EntityId::from_raw_slice(ids);
                db.signal_batch_secs(name, ids, weights, secs).map(Some)
            }
            // Only a Python thread takes this lock, and there is no other: a handle being
            // closed by an exit hook, say. The copying path waits for it detached.
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Poisoned(_)) => Err(poisoned()),
        });
        logging::deliver(py)?;
        name_bad_time(py, out?, secs)
    }
}

/// Whether the calling thread is the only one running Python code (CPython's
/// `sys._current_frames()` names each thread that has a Python frame).
fn only_python_thread(py: Python<'_>) -> PyResult<bool> {
    let frames = py.import("sys")?.call_method0("_current_frames")?;
    Ok(frames.len()? == 1)
}
