//! `tidaldb.Db`: an open database. Single calls keep the interpreter attached, because
//! detaching costs more than the work; bulk calls, retrieval, open, flush and snapshot
//! detach so that other Python threads run meanwhile.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tidaldb::{Durability, Retrieve, TidalDb, TidalError, Timestamp, Window};

use crate::convert::{
    Count, Id, f64_array, f64_slice, id_array, id_list, same_length, timestamp, timestamp_or_now,
};
use crate::errors::{IntoPyResult, invalid, to_py};
use crate::logging;
use crate::results::PyResults;
use crate::schema::PySchema;

/// What `durability="batched"` means: sync every 4096 writes or 10 ms, whichever is first.
const BATCHED: Durability = Durability::Batched {
    max_batch: 4096,
    max_delay: Duration::from_millis(10),
};

#[pyclass(module = "tidaldb._native", name = "Db", frozen)]
pub struct PyDb {
    /// `None` once closed. Dropping the handle releases the data directory.
    db: Mutex<Option<TidalDb>>,
    path: Option<PathBuf>,
    durability: &'static str,
}

fn closed() -> TidalError {
    TidalError::Unavailable("this Db is closed; open a new tidaldb.Db".into())
}

impl PyDb {
    fn guard(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Option<TidalDb>>> {
        self.db.lock().map_err(|_| {
            to_py(
                py,
                TidalError::Unavailable("a thread panicked while using this Db; reopen it".into()),
            )
        })
    }

    /// Runs `f` on the open database without detaching: the fast path of single calls.
    #[inline]
    fn with<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TidalDb) -> Result<T, TidalError>,
    ) -> PyResult<T> {
        let out = {
            let guard = self.guard(py)?;
            match guard.as_ref() {
                Some(db) => f(db),
                None => Err(closed()),
            }
        };
        logging::deliver(py);
        out.py_err(py)
    }

    /// A clone of the handle, for work that runs detached or on another thread.
    fn handle(&self, py: Python<'_>) -> PyResult<TidalDb> {
        match self.guard(py)?.as_ref() {
            Some(db) => Ok(db.clone()),
            None => Err(to_py(py, closed())),
        }
    }

    /// Runs `f` detached from the interpreter.
    fn detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TidalDb) -> Result<T, TidalError> + Send,
    ) -> PyResult<T> {
        let db = self.handle(py)?;
        let out = py.detach(move || f(&db));
        logging::deliver(py);
        out.py_err(py)
    }
}

#[pymethods]
impl PyDb {
    #[new]
    #[pyo3(signature = (schema, path=None, *, durability="immediate"))]
    fn new(
        py: Python<'_>,
        schema: PyRef<'_, PySchema>,
        path: Option<PathBuf>,
        durability: &str,
    ) -> PyResult<Self> {
        let (mode, name) = match durability {
            "immediate" => (Durability::Immediate, "immediate"),
            "batched" => (BATCHED, "batched"),
            other => {
                return Err(invalid(
                    py,
                    "durability",
                    format!("unknown durability {other:?}; use \"immediate\" or \"batched\""),
                ));
            }
        };
        let schema = schema.core(py)?;
        let builder = match &path {
            Some(p) => TidalDb::builder().with_data_dir(p.clone()),
            None => TidalDb::builder().ephemeral(),
        };
        let opened = py.detach(move || builder.with_schema(schema).durability(mode).open());
        logging::deliver(py);
        Ok(PyDb {
            db: Mutex::new(Some(opened.py_err(py)?)),
            path,
            durability: name,
        })
    }

    /// Records one signal; `ts` is Unix seconds, `None` for now.
    #[pyo3(signature = (name, item, weight=1.0, ts=None))]
    fn signal(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id,
        weight: f64,
        ts: Option<f64>,
    ) -> PyResult<()> {
        let ts = timestamp(py, ts)?;
        self.with(py, |db| db.signal(name, item.0, weight, ts).map(|_| ()))
    }

    /// Records many signals at once; all or nothing. Returns how many were written.
    #[pyo3(signature = (name, items, weights, ts=None))]
    fn signals<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        items: &Bound<'py, PyAny>,
        weights: &Bound<'py, PyAny>,
        ts: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<usize> {
        let items = id_array(py, "items", items)?;
        let weights = f64_array(py, "weights", weights)?;
        same_length(py, "weights", weights.as_array().len(), items.len())?;
        let ts: Option<Vec<Timestamp>> = match ts {
            None => None,
            Some(t) => {
                let secs = f64_array(py, "ts", t)?;
                same_length(py, "ts", secs.as_array().len(), items.len())?;
                let secs = f64_slice(&secs);
                Some(
                    secs.iter()
                        .map(|&s| Timestamp::from_secs_f64(s))
                        .collect::<Result<_, _>>()
                        .py_err(py)?,
                )
            }
        };
        let ids = items.as_ids();
        let weights = f64_slice(&weights);
        let (ids, weights) = (&*ids, &*weights);
        self.detached(py, move |db| {
            db.signal_batch(name, ids, weights, ts.as_deref())
        })
    }

    /// Decayed score at `at` (Unix seconds; `None` for now).
    #[pyo3(signature = (name, item, at=None))]
    fn score(&self, py: Python<'_>, name: &str, item: Id, at: Option<f64>) -> PyResult<f64> {
        let at = timestamp_or_now(py, at)?;
        self.with(py, |db| db.read_decay_score_at(item.0, name, at))
    }

    /// Decayed scores of many items as a float64 array.
    #[pyo3(signature = (name, items, at=None))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        items: &Bound<'py, PyAny>,
        at: Option<f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let at = timestamp_or_now(py, at)?;
        let items = id_array(py, "items", items)?;
        let out = PyArray1::<f64>::zeros(py, items.len(), false);
        {
            let mut rw = out
                .try_readwrite()
                .map_err(|e| invalid(py, "items", e.to_string()))?;
            let slots = rw
                .as_slice_mut()
                .map_err(|e| invalid(py, "items", e.to_string()))?;
            let ids = items.as_ids();
            let ids = &*ids;
            self.detached(py, move |db| db.read_decay_scores_at(name, ids, at, slots))?;
        }
        Ok(out)
    }

    /// Events counted in `window` ("1h", "24h", "7d", "30d", "all") as of `at`.
    #[pyo3(signature = (name, item, window, at=None))]
    fn window_count(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id,
        window: &str,
        at: Option<f64>,
    ) -> PyResult<u64> {
        let window = Window::parse(window).py_err(py)?;
        let at = timestamp_or_now(py, at)?;
        self.with(py, |db| {
            db.read_window_at(item.0, name, window, at).map(|r| r.count)
        })
    }

    /// Sum of the weights counted in `window` as of `at`.
    #[pyo3(signature = (name, item, window, at=None))]
    fn window_sum(
        &self,
        py: Python<'_>,
        name: &str,
        item: Id,
        window: &str,
        at: Option<f64>,
    ) -> PyResult<f64> {
        let window = Window::parse(window).py_err(py)?;
        let at = timestamp_or_now(py, at)?;
        self.with(py, |db| {
            db.read_window_at(item.0, name, window, at)
                .map(|r| r.weight_sum)
        })
    }

    /// Weight per hour over the signal's shortest window, as of `at`.
    #[pyo3(signature = (name, item, at=None))]
    fn velocity(&self, py: Python<'_>, name: &str, item: Id, at: Option<f64>) -> PyResult<f64> {
        let at = timestamp_or_now(py, at)?;
        self.with(py, |db| db.read_velocity_at(item.0, name, at))
    }

    fn hide(&self, py: Python<'_>, user: Id, item: Id) -> PyResult<()> {
        self.with(py, |db| db.hide_item(user.0, item.0).map(|_| ()))
    }

    fn unhide(&self, py: Python<'_>, user: Id, item: Id) -> PyResult<()> {
        self.with(py, |db| db.unhide_item(user.0, item.0).map(|_| ()))
    }

    fn is_hidden(&self, py: Python<'_>, user: Id, item: Id) -> PyResult<bool> {
        self.with(py, |db| db.is_hidden(user.0, item.0))
    }

    /// Top `limit` candidates by `Σ coefficient · score(signal)`, minus the user's hidden items.
    #[pyo3(
        signature = (candidates, rank_by, *, user=None, limit=Count(10), at=None),
        text_signature = "(self, /, candidates, rank_by, *, user=None, limit=10, at=None)"
    )]
    fn retrieve<'py>(
        &self,
        py: Python<'py>,
        candidates: &Bound<'py, PyAny>,
        rank_by: &Bound<'py, PyDict>,
        user: Option<Id>,
        limit: Count,
        at: Option<f64>,
    ) -> PyResult<PyResults> {
        let candidates = id_list(py, candidates)?;
        let mut terms: Vec<(String, f64)> = Vec::with_capacity(rank_by.len());
        for (k, v) in rank_by.iter() {
            terms.push((k.extract()?, v.extract()?));
        }
        let at = timestamp(py, at)?;
        let results = self.detached(py, move |db| {
            let refs: Vec<(&str, f64)> = terms.iter().map(|(s, c)| (s.as_str(), *c)).collect();
            let mut q = Retrieve::builder()
                .candidates(candidates)
                .rank_by(&refs)
                .limit(limit.0);
            if let Some(u) = user {
                q = q.for_user(u.0);
            }
            if let Some(t) = at {
                q = q.at(t);
            }
            db.retrieve(&q.build()?)
        })?;
        PyResults::new(py, results)
    }

    /// Syncs every acknowledged write to disk now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.detached(py, |db| db.flush())
    }

    /// `flush()` as an awaitable, run on tokio's blocking pool.
    fn flush_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let db = self.handle(py)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let joined = tokio::task::spawn_blocking(move || db.flush()).await;
            Python::attach(|py| {
                logging::deliver(py);
                match joined {
                    Ok(r) => r.py_err(py),
                    Err(e) => Err(PyRuntimeError::new_err(format!("flush task failed: {e}"))),
                }
            })
        })
    }

    /// Writes a snapshot now; returns the log position it covers (0 when ephemeral).
    fn snapshot(&self, py: Python<'_>) -> PyResult<u64> {
        self.detached(py, |db| db.snapshot())
    }

    #[getter]
    fn events_applied(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |db| db.events_applied())
    }

    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.guard(py)?.is_none())
    }

    /// Syncs, releases the data directory and reports a failed final sync. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(db) = self.guard(py)?.take() else {
            return Ok(());
        };
        let closed = py.detach(move || db.close());
        logging::deliver(py);
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

    fn __repr__(&self, py: Python<'_>) -> String {
        let place = match &self.path {
            Some(p) => format!("path={:?}", p.display().to_string()),
            None => "ephemeral".to_owned(),
        };
        let state = match self
            .guard(py)
            .ok()
            .and_then(|g| g.as_ref().map(|db| db.events_applied()))
        {
            Some(Ok(n)) => format!("events_applied={n}"),
            Some(Err(_)) => "unavailable".to_owned(),
            None => "closed".to_owned(),
        };
        format!("Db({place}, durability={:?}, {state})", self.durability)
    }
}
