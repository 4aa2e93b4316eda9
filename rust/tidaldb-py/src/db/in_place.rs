//! A large bulk write read in place from its numpy arrays.
//!
//! `Db.signals` writes its inputs as they were when it checked them. The copying path
//! copies the arrays before it releases the interpreter, because another thread may change
//! them meanwhile. A large call's copies are fresh memory, and on this kind of machine the
//! page faults and zeroing of 24 bytes an event cost as much as a fifth of the write.
//!
//! So a large write to a lone in-memory database (no log, peer or quota, so no thread of
//! the database's own takes its lock) reads its contiguous ids, weights and times (Unix
//! seconds) where they are, lent to the core a chunk at a time ([`SharedColumns`]) while
//! it holds the interpreter.
//!
//! From the only Python thread, no Python code runs while the core reads them, except
//! signal handlers at the write's safe points (which run so that Ctrl-C stops it). Once
//! the handlers were checked, the core checks each chunk again before it applies it.
//!
//! With other Python threads alive, they are not kept waiting: between two chunks, once
//! per switch interval (`sys.getswitchinterval()`, 5 ms by default), the write releases
//! the interpreter, as Python's own threads share it. And numpy code in those threads
//! releases the interpreter in its loops, so it may write the arrays even while the core
//! reads them: the core checks the whole write in place, then copies each chunk (6 MiB
//! of scratch, reused) and checks and applies the copy. Without a global interpreter
//! lock (free-threaded Python) nothing keeps a resize out of a read, and the copying
//! path is taken.
//!
//! Either way a row made invalid during the call stops the write at its chunk
//! (`ChangedWhileWriting`: the exception's `written` says how many events stayed), and a
//! row changed to another valid value is written as it then stands, as if the write had
//! been two calls.

use std::sync::TryLockError;
use std::time::{Duration, Instant};

use numpy::{Element, PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use tidaldb::node::{SignalColumns, Times};
use tidaldb::runtime::SharedColumns;
use tidaldb::schema::SignalIdx;
use tidaldb::{EntityId, TidalError};

use super::{PyDb, open, poisoned};
use crate::convert::{name_bad_time, same_length};
use crate::{attached_cell, logging, signals};

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
        if items.len() < IN_PLACE_MIN_EVENTS {
            return Ok(None);
        }
        let ts = match ts {
            None => None,
            Some(t) => match t.cast::<PyArray1<f64>>() {
                Ok(t) => Some(t),
                // Times of another kind are converted by the copying path.
                Err(_) => return Ok(None),
            },
        };
        if !readable(items) || !readable(weights) || ts.is_some_and(|t| !readable(t)) {
            return Ok(None);
        }
        let len = items.len();
        same_length(py, "weights", weights.len(), len)?;
        if let Some(t) = ts {
            same_length(py, "ts", t.len(), len)?;
        }
        self.origin.check(py, "Db")?;
        let share_every = switch_interval_if_shared(py)?;
        if share_every.is_some() && !attached_cell::gil_orders_access() {
            return Ok(None);
        }
        let mut columns = NumpyColumns {
            py,
            ids: items,
            weights,
            secs: ts,
            len,
            share_every,
            last_shared: Instant::now(),
            handler_runs: signals::handler_runs(),
        };
        let out = signals::attached(py, || match self.db.try_lock() {
            Ok(slot) => {
                let db = open(&slot)?;
                if !db.writes_stay_in_memory()? {
                    return Ok(None);
                }
                db.signal_batch_shared(name, &mut columns).map(Some)
            }
            // Another thread is using the Db (or closing it). The copying path waits for
            // it detached.
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Poisoned(_)) => Err(poisoned()),
        });
        logging::deliver(py)?;
        // A time refused by the up-front check, before any Python code ran, is named.
        let secs = ts.and_then(|t| t.try_readonly().ok());
        name_bad_time(py, out?, secs.as_ref().and_then(|s| s.as_slice().ok()))
    }
}

/// Whether the write can read `array` in place: contiguous, and not borrowed mutably by
/// other Rust code.
fn readable<T: Element>(array: &Bound<'_, PyArray1<T>>) -> bool {
    array.is_c_contiguous() && array.try_readonly().is_ok()
}

/// How often a write shares the interpreter: the interpreter's switch interval when other
/// Python threads exist (CPython's `sys._current_frames()` names each thread that has a
/// Python frame), never when the caller is the only one.
fn switch_interval_if_shared(py: Python<'_>) -> PyResult<Option<Duration>> {
    let sys = py.import("sys")?;
    if sys.call_method0("_current_frames")?.len()? == 1 {
        return Ok(None);
    }
    let secs: f64 = sys.call_method0("getswitchinterval")?.extract()?;
    Ok(Some(
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO),
    ))
}

/// A write's numpy arrays, lent to the core a chunk at a time with the interpreter held.
/// Each read borrows them afresh (numpy's borrow flags are keyed by the data's address,
/// which a resize in Python code run between chunks changes).
struct NumpyColumns<'a, 'py> {
    py: Python<'py>,
    ids: &'a Bound<'py, PyArray1<u64>>,
    weights: &'a Bound<'py, PyArray1<f64>>,
    secs: Option<&'a Bound<'py, PyArray1<f64>>>,
    /// Rows when the write was checked.
    len: usize,
    /// How often other Python threads get the interpreter; never when there are none.
    share_every: Option<Duration>,
    last_shared: Instant,
    /// [`signals::handler_runs`] at the last read.
    handler_runs: u64,
}

impl SharedColumns for NumpyColumns<'_, '_> {
    fn len(&self) -> usize {
        self.len
    }

    fn read(
        &mut self,
        signal: SignalIdx,
        start: usize,
        end: usize,
        f: &mut dyn FnMut(&SignalColumns<'_>) -> Result<(), TidalError>,
    ) -> Result<(), TidalError> {
        // Taken afresh each time: Python code that ran since may have resized an array.
        let borrowed = |_| changed_at(start, "another extension holds one mutably");
        let ids = self.ids.try_readonly().map_err(borrowed)?;
        let weights = self.weights.try_readonly().map_err(borrowed)?;
        let secs = self
            .secs
            .map(|s| s.try_readonly())
            .transpose()
            .map_err(borrowed)?;
        let moved = |_| changed_at(start, "one is no longer contiguous");
        let ids = ids.as_slice().map_err(moved)?;
        let weights = weights.as_slice().map_err(moved)?;
        let secs = match &secs {
            None => None,
            Some(secs) => Some(secs.as_slice().map_err(moved)?),
        };
        let kept = |rows: usize| rows == self.len;
        if !kept(ids.len()) || !kept(weights.len()) || secs.is_some_and(|s| !kept(s.len())) {
            return Err(changed_at(start, "one changed length"));
        }
        self.handler_runs = signals::handler_runs();
        let out = f(&SignalColumns {
            signal,
            entities: EntityId::from_raw_slice(&ids[start..end]),
            weights: &weights[start..end],
            ts: secs.map(|s| Times::Seconds(&s[start..end])),
        });
        debug_assert_eq!(
            signals::handler_runs(),
            self.handler_runs,
            "Python code ran while the core read the arrays"
        );
        out
    }

    fn written_during_reads(&self) -> bool {
        self.share_every.is_some()
    }

    fn pause(&mut self) -> bool {
        let mut ran = signals::handler_runs() != self.handler_runs;
        if let Some(every) = self.share_every
            && self.last_shared.elapsed() >= every
        {
            // Another thread waiting for the interpreter takes it here.
            self.py.detach(|| ());
            self.last_shared = Instant::now();
            ran = true;
        }
        ran
    }
}

/// The error of arrays changed (`why`) while the write ran, after `written` events.
fn changed_at(written: usize, why: &str) -> TidalError {
    TidalError::ChangedWhileWriting {
        written,
        cause: Box::new(TidalError::InvalidArgument {
            name: "arrays",
            reason: format!("{why} since the write began"),
        }),
    }
}
