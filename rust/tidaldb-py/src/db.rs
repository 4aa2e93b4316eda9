//! `tidaldb.Db`: an open database. Single calls keep the interpreter attached, because
//! detaching costs more than the work; bulk calls, retrieval, open, flush and snapshot
//! detach so that other Python threads run meanwhile.
//!
//! Two rules keep the bindings free of deadlocks between the interpreter and Rust locks:
//! - no thread waits for a Rust lock while attached. The Db lock is tried first, and on
//!   contention the call detaches and waits (and runs) there. Every call into the core,
//!   bulk ones included, holds the Db lock throughout, so a call meets a busy core here,
//!   where waiting detaches, and not at the core's own lock, which mostly cannot be
//!   tried. Two take the core's lock without the Db lock: the core's Batched flusher
//!   thread, for one sync at a time, which never waits for the interpreter; and a
//!   single `signal`, which tries the core's lock (`try_signal_at`, reaching the database
//!   through an `AttachedCell`, no lock taken) and, finding it busy, detaches and waits
//!   there as any other call;
//! - no Python code runs while a Rust lock is held: log records are queued, and delivered
//!   to Python `logging` at the end of each call, once every lock is released.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use tidaldb::cluster::RegionNames;
use tidaldb::cluster::db_durability;
use tidaldb::ledger::ItemErrors;
use tidaldb::{TidalDb, TidalError, Window};

use crate::at_exit::{self, DbSlot};
use crate::attached_cell::{self, AttachedCell};
use crate::cluster_config::{TenantArg, tenant_of, tenant_options};
use crate::convert::{
    At, Count, Float, Id, IngestThreads, Item, MaxEntities, MaxSignalsPerSec, MaxStorageBytes,
    Natural, TenantIdArg, Ts, User, Weight, bulk_seconds, duration, f64_column, id_array,
    id_column, name_bad_time, same_length, timestamp, timestamp_or_now,
};
use crate::errors::IntoPyResult;
use crate::fork_guard::Origin;
use crate::logging;
use crate::query_args::QueryArgs;
use crate::results::PyResults;
use crate::schema::PySchema;
use crate::signal_names::SignalNames;
use crate::signals;
use crate::tables;

mod in_place;

#[doc = include_str!("../pydoc/Db.md")]
#[pyclass(module = "tidaldb._native", name = "Db", frozen)]
pub struct PyDb {
    /// `None` once closed. Dropping the handle releases the data directory. Shared only
    /// with the exit hook's registry, which holds it weakly (see `at_exit`).
    db: Arc<DbSlot>,
    /// The process that opened it: the only one that may use, close or drop it.
    origin: Origin,
    path: Option<PathBuf>,
    /// The preset's name, as given.
    durability: String,
    names: SignalNames,
    /// The same database for a single `signal`, which reaches it without the Db lock:
    /// taking and releasing that lock was 7% of the call. `None` once closed.
    attached: AttachedCell<Option<TidalDb>>,
}

fn closed() -> TidalError {
    TidalError::Unavailable("this Db is closed; open a new tidaldb.Db".into())
}

fn poisoned() -> TidalError {
    TidalError::Unavailable("a thread panicked while using this Db; reopen it".into())
}

fn open(slot: &Option<TidalDb>) -> Result<&TidalDb, TidalError> {
    slot.as_ref().ok_or_else(closed)
}

impl PyDb {
    /// Runs `f` with the Db lock held. An uncontended lock is taken without detaching (the
    /// fast path of single calls); a contended one is waited for detached, and `f` then
    /// runs detached too.
    #[inline]
    fn slot<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Option<TidalDb>) -> T + Send,
    ) -> Result<T, TidalError> {
        match self.db.try_lock() {
            Ok(mut guard) => Ok(f(&mut guard)),
            Err(TryLockError::WouldBlock) => py.detach(|| self.slot_detached(f)),
            Err(TryLockError::Poisoned(_)) => Err(poisoned()),
        }
    }

    /// [`Self::slot`] for a thread that is already detached: it may wait for the lock.
    fn slot_detached<T>(&self, f: impl FnOnce(&mut Option<TidalDb>) -> T) -> Result<T, TidalError> {
        let mut guard = self.db.lock().map_err(|_| poisoned())?;
        Ok(f(&mut guard))
    }

    /// Runs `f` on the open database: attached unless the Db is busy (see [`Self::slot`]).
    #[inline]
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TidalDb) -> Result<T, TidalError> + Send,
    ) -> PyResult<T> {
        self.origin.check(py, "Db")?;
        let out = self.slot(py, |s| f(open(s)?)).and_then(|r| r);
        logging::deliver(py)?;
        out.py_err(py)
    }

    /// Runs `f` on the open database detached from the interpreter, with the Db lock held;
    /// Ctrl-C stops it at the core's next safe point (see `signals`).
    fn detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TidalDb) -> Result<T, TidalError> + Send,
    ) -> PyResult<T> {
        self.detached_core(py, f)?.py_err(py)
    }

    /// [`Self::detached`], the core's error left for the caller to name.
    fn detached_core<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TidalDb) -> Result<T, TidalError> + Send,
    ) -> PyResult<Result<T, TidalError>> {
        self.origin.check(py, "Db")?;
        let out = signals::detached(py, || self.slot_detached(|s| f(open(s)?)).and_then(|r| r));
        logging::deliver(py)?;
        out
    }

    /// The count and weight sum of one window as of `at` (now when `None`).
    fn window_reading(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id<Item>,
        window: &str,
        at: Option<Float<At>>,
    ) -> PyResult<tidaldb::ledger::WindowReading> {
        let window = Window::parse(window).py_err(py)?;
        let at = timestamp_or_now(py, at)?;
        self.with(py, |db| db.read_window_at(item.0, name, window, at))
    }
}

#[pymethods]
impl PyDb {
    #[new]
    #[pyo3(signature = (
        schema, path=None, *, durability="immediate", sync_interval=None, max_future_skew=None,
        ingest_threads=None,
    ))]
    fn new(
        py: Python<'_>,
        schema: PyRef<'_, PySchema>,
        path: Option<PathBuf>,
        durability: &str,
        sync_interval: Option<&Bound<'_, PyAny>>,
        max_future_skew: Option<&Bound<'_, PyAny>>,
        ingest_threads: Option<Natural<IngestThreads>>,
    ) -> PyResult<Self> {
        let interval = sync_interval
            .map(|v| duration(py, "sync_interval", v))
            .transpose()?;
        let mode = db_durability(durability, interval).py_err(py)?;
        let skew = max_future_skew
            .map(|v| duration(py, "max_future_skew", v))
            .transpose()?;
        let schema = schema.core(py)?;
        let mut builder = match &path {
            Some(p) => TidalDb::builder().with_data_dir(p.clone()),
            None => TidalDb::builder().ephemeral(),
        };
        if let Some(skew) = skew {
            builder = builder.max_future_skew(skew);
        }
        if let Some(threads) = ingest_threads {
            builder = builder.ingest_threads(threads.narrow(py)?);
        }
        let opened = py.detach(move || builder.with_schema(schema).durability(mode).open());
        logging::deliver(py)?;
        let opened = opened.py_err(py)?;
        let names = SignalNames::new(py, opened.schema());
        let attached = AttachedCell::new(Some(opened.clone()));
        let db = Arc::new(Mutex::new(Some(opened)));
        let origin = Origin::here();
        at_exit::register(origin, &db);
        Ok(PyDb {
            db,
            origin,
            path,
            durability: durability.to_owned(),
            names,
            attached,
        })
    }

    #[doc = include_str!("../pydoc/Db/signal.md")]
    #[pyo3(
        signature = (name, item, weight=Float::new(1.0), ts=None, tenant=None),
        text_signature = "(self, /, name, item, weight=1.0, ts=None, tenant=None)"
    )]
    fn signal(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyString>,
        item: Id<Item>,
        weight: Float<Weight>,
        ts: Option<Float<Ts>>,
        tenant: Option<TenantArg>,
    ) -> PyResult<()> {
        let ts = timestamp(py, ts)?;
        match tenant {
            None => {
                // A forked child hears that first, as from every other call.
                self.origin.check(py, "Db")?;
                let signal = self.names.resolve(name)?;
                // A poisoned Db lock refuses every call, this one too (on the path below).
                let tried = self.attached.with(py, |db| {
                    db.as_ref()
                        .filter(|_| !self.db.is_poisoned())
                        .and_then(|db| db.try_signal_at(signal, item.0, weight.0, ts))
                });
                if let Some(Some(written)) = tried {
                    logging::deliver(py)?;
                    return written.map(|_| ()).py_err(py);
                }
                // Closed (which the Db lock's path reports), or busy: wait detached.
                self.detached(py, |db| {
                    db.signal_at(signal, item.0, weight.0, ts).map(|_| ())
                })
            }
            Some(TenantArg(t)) => {
                let name = name.to_cow()?;
                self.with(py, |db| {
                    db.signal_for_tenant(t, &name, item.0, weight.0, ts)
                        .map(|_| ())
                })
            }
        }
    }

    #[doc = include_str!("../pydoc/Db/signals.md")]
    #[pyo3(signature = (name, items, weights, ts=None))]
    fn signals<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        items: &Bound<'py, PyAny>,
        weights: &Bound<'py, PyAny>,
        ts: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<usize> {
        if let Some(written) = self.signals_in_place(py, name, items, weights, ts)? {
            return Ok(written);
        }
        // Copies, taken while attached: the arrays may change once the interpreter is
        // released. The times stay seconds, which the core converts as it applies them.
        let items = id_column(py, "items", items)?;
        let weights = f64_column(py, "weights", weights)?;
        same_length(py, "weights", weights.len(), items.len())?;
        let secs = bulk_seconds(py, ts, items.len())?;
        let secs = secs.as_deref();
        let out =
            self.detached_core(py, |db| db.signal_batch_secs(name, &items, &weights, secs))?;
        name_bad_time(py, out, secs)
    }

    #[doc = include_str!("../pydoc/Db/score.md")]
    #[pyo3(signature = (name, item, at=None, tenant=None))]
    fn score(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id<Item>,
        at: Option<Float<At>>,
        tenant: Option<TenantArg>,
    ) -> PyResult<f64> {
        let at = timestamp_or_now(py, at)?;
        match tenant {
            None => self.with(py, |db| db.read_decay_score_at(item.0, name, at)),
            Some(TenantArg(t)) => {
                self.with(py, |db| db.read_score_for_tenant_at(t, item.0, name, at))
            }
        }
    }

    #[doc = include_str!("../pydoc/Db/register_tenant.md")]
    #[pyo3(signature = (id, max_signals_per_sec = None, max_entities = None,
        max_storage_bytes = None, label = None))]
    fn register_tenant(
        &self,
        py: Python<'_>,
        id: Natural<TenantIdArg>,
        max_signals_per_sec: Option<Natural<MaxSignalsPerSec>>,
        max_entities: Option<Natural<MaxEntities>>,
        max_storage_bytes: Option<Natural<MaxStorageBytes>>,
        label: Option<String>,
    ) -> PyResult<()> {
        let quotas = (max_signals_per_sec, max_entities, max_storage_bytes);
        // An embedded Db is in no region, so the options name none.
        let config = tenant_options(id, quotas, None, label)?
            .config(&RegionNames::default())
            .py_err(py)?;
        self.with(py, |db| db.register_tenant(config))
    }

    #[doc = include_str!("../pydoc/Db/tenants.md")]
    #[getter]
    fn tenants(&self, py: Python<'_>) -> PyResult<Vec<u64>> {
        self.with(py, |db| {
            Ok(db.tenants().iter().map(|c| c.tenant_id.0).collect())
        })
    }

    #[doc = include_str!("../pydoc/Db/total_count.md")]
    #[pyo3(signature = (signal, tenant = None))]
    fn total_count(
        &self,
        py: Python<'_>,
        signal: &str,
        tenant: Option<TenantArg>,
    ) -> PyResult<u64> {
        let t = tenant_of(tenant);
        self.with(py, |db| db.total_signal_count_for_tenant(t, signal))
    }

    #[doc = include_str!("../pydoc/Db/scores.md")]
    #[pyo3(signature = (name, items, at=None, errors="raise"))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        items: &Bound<'py, PyAny>,
        at: Option<Float<At>>,
        errors: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let on_error = ItemErrors::parse(errors).py_err(py)?;
        let at = timestamp_or_now(py, at)?;
        // A copy, taken while attached: see `signals`.
        let items = id_array(py, "items", items)?;
        let (ids, scores) = self.detached(py, move |db| {
            let mut out = vec![0.0; items.len()];
            db.read_decay_scores_on_error_at(name, &items, at, on_error, &mut out)?;
            Ok((tables::ids(&items), out))
        })?;
        tables::scores(py, ids, scores)
    }

    #[doc = include_str!("../pydoc/Db/window_count.md")]
    #[pyo3(signature = (name, item, window, at=None))]
    fn window_count(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id<Item>,
        window: &str,
        at: Option<Float<At>>,
    ) -> PyResult<u64> {
        Ok(self.window_reading(py, name, item, window, at)?.count)
    }

    #[doc = include_str!("../pydoc/Db/window_sum.md")]
    #[pyo3(signature = (name, item, window, at=None))]
    fn window_sum(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id<Item>,
        window: &str,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        Ok(self.window_reading(py, name, item, window, at)?.weight_sum)
    }

    #[doc = include_str!("../pydoc/Db/velocity.md")]
    #[pyo3(signature = (name, item, at=None))]
    fn velocity(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id<Item>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        let at = timestamp_or_now(py, at)?;
        self.with(py, |db| db.read_velocity_at(item.0, name, at))
    }

    #[doc = include_str!("../pydoc/Db/hide.md")]
    #[pyo3(signature = (user, item, ts = None))]
    fn hide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        ts: Option<Float<Ts>>,
    ) -> PyResult<()> {
        let ts = timestamp(py, ts)?;
        self.with(py, |db| db.hide_item(user.0, item.0, ts).map(|_| ()))
    }

    #[doc = include_str!("../pydoc/Db/unhide.md")]
    #[pyo3(signature = (user, item, ts = None))]
    fn unhide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        ts: Option<Float<Ts>>,
    ) -> PyResult<()> {
        let ts = timestamp(py, ts)?;
        self.with(py, |db| db.unhide_item(user.0, item.0, ts).map(|_| ()))
    }

    #[doc = include_str!("../pydoc/Db/is_hidden.md")]
    fn is_hidden(&self, py: Python<'_>, user: Id<User>, item: Id<Item>) -> PyResult<bool> {
        self.with(py, |db| db.is_hidden(user.0, item.0))
    }

    #[doc = include_str!("../pydoc/Db/retrieve.md")]
    #[pyo3(
        signature = (candidates, rank_by, *, user=None, limit=Count(10), at=None),
        text_signature = "(self, /, candidates, rank_by, *, user=None, limit=10, at=None)"
    )]
    fn retrieve<'py>(
        &self,
        py: Python<'py>,
        candidates: &Bound<'py, PyAny>,
        rank_by: &Bound<'py, PyDict>,
        user: Option<Id<User>>,
        limit: Count,
        at: Option<Float<At>>,
    ) -> PyResult<PyResults> {
        let args = QueryArgs::new(py, candidates, rank_by, user, limit, at)?;
        let results = self.detached(py, move |db| db.retrieve(&args.build()?))?;
        PyResults::new(py, results)
    }

    #[doc = include_str!("../pydoc/Db/flush.md")]
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.detached(py, |db| db.flush())
    }

    #[doc = include_str!("../pydoc/Db/flush_async.md")]
    fn flush_async<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        // A closed Db raises here, at the call, like every other method.
        slf.get().with(py, |_| Ok(()))?;
        let this = slf.clone().unbind();
        crate::awaitable::blocking(py, "Db.flush_async", move || {
            let flushed = this.get().slot_detached(|s| open(s)?.flush());
            // `None`, so the awaitable resolves to Python's None rather than `()`.
            flushed.and_then(|r| r).map(|()| None::<()>)
        })
    }

    #[doc = include_str!("../pydoc/Db/snapshot.md")]
    fn snapshot(&self, py: Python<'_>) -> PyResult<u64> {
        self.detached(py, |db| db.snapshot())
    }

    #[doc = include_str!("../pydoc/Db/recovery_report.md")]
    #[pyo3(signature = (tenant = None))]
    fn recovery_report<'py>(
        &self,
        py: Python<'py>,
        tenant: Option<TenantArg>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = tenant_of(tenant);
        let report = self.with(py, |db| db.tenant_recovery_report(t))?;
        let out = PyDict::new(py);
        out.set_item("snapshot_lsn", report.snapshot_lsn)?;
        out.set_item("events_replayed", report.events_replayed)?;
        out.set_item("torn_bytes_truncated", report.torn_bytes_truncated)?;
        out.set_item("empty_segments_removed", report.empty_segments_removed)?;
        Ok(out)
    }

    #[doc = include_str!("../pydoc/Db/events_applied.md")]
    #[getter]
    fn events_applied(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |db| db.events_applied())
    }

    #[doc = include_str!("../pydoc/Db/path.md")]
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    #[doc = include_str!("../pydoc/Db/closed.md")]
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        self.origin.check(py, "Db")?;
        self.slot(py, |s| s.is_none()).py_err(py)
    }

    #[doc = include_str!("../pydoc/Db/close.md")]
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.origin.check(py, "Db")?;
        // No attached caller is inside `with` now: none of them detaches there. Dropped
        // at once, while the slot still holds the database: the slot's handle is then the
        // last, and is closed and dropped detached, ledger and all.
        let released = self.attached.replace(py, None);
        debug_assert!(
            released.is_ok() || !attached_cell::gil_orders_access(),
            "a single write detached while using the Db"
        );
        drop(released);
        let Some(db) = self.slot(py, Option::take).py_err(py)? else {
            return Ok(());
        };
        let closed = py.detach(move || db.close());
        logging::deliver(py)?;
        closed.py_err(py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    #[doc = include_str!("../pydoc/Db/__reduce__.md")]
    fn __reduce__(&self) -> PyResult<()> {
        Err(crate::pickling::db())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let place = match &self.path {
            Some(p) => format!("path={:?}", p.display().to_string()),
            None => "ephemeral".to_owned(),
        };
        let state = if !self.origin.is_here() {
            "inherited through a fork: unusable here".to_owned()
        } else {
            match self
                .slot(py, |s| s.as_ref().map(TidalDb::events_applied))
                .ok()
                .flatten()
            {
                Some(Ok(n)) => format!("events_applied={n}"),
                Some(Err(_)) => "unavailable".to_owned(),
                None => "closed".to_owned(),
            }
        };
        format!("Db({place}, durability={:?}, {state})", self.durability)
    }
}

impl Drop for PyDb {
    fn drop(&mut self) {
        // In a forked child, dropping would sync and unlock the parent's files.
        self.origin.let_go(&self.db);
    }
}
