//! A `Db` still open when the interpreter exits is flushed and closed then. Without it, a
//! program that never calls `close()` leaves its fate to the order of the interpreter's
//! teardown, which may never drop the handle: under `durability="batched"`, writes
//! acknowledged since the last background sync would be lost.
//!
//! Every open `Db` registers here, weakly (the registry keeps none alive), and an `atexit`
//! hook closes those still open. Dbs inherited through a fork are left alone: only the
//! process that opened one may close it (see `fork_guard`).

use std::sync::{Arc, Mutex, Weak};

use pyo3::prelude::*;
use tidaldb::TidalDb;

use crate::errors::IntoPyResult;
use crate::fork_guard::Origin;

/// What a `Db` handle holds: the database, `None` once closed.
pub type DbSlot = Mutex<Option<TidalDb>>;

static OPEN: Mutex<Vec<(Origin, Weak<DbSlot>)>> = Mutex::new(Vec::new());

/// Registers a newly opened database; entries of dropped handles are pruned meanwhile, so
/// a program that opens many in turn does not grow the registry.
pub fn register(origin: Origin, slot: &Arc<DbSlot>) {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.retain(|(_, held)| held.strong_count() > 0);
    open.push((origin, Arc::downgrade(slot)));
}

/// The `atexit` hook: closes (syncing) every database this process opened and has not
/// closed. Every one is closed even if some fail; the first failure is then raised, and
/// Python prints it.
#[pyfunction]
fn close_open_dbs(py: Python<'_>) -> PyResult<()> {
    let open = std::mem::take(&mut *OPEN.lock().unwrap_or_else(|p| p.into_inner()));
    let mut first_failure = Ok(());
    for (origin, held) in open {
        if !origin.is_here() {
            continue;
        }
        let Some(slot) = held.upgrade() else {
            continue;
        };
        // Detached: a worker thread may hold the lock for a flush, and needs no GIL to
        // finish it.
        let closed = py.detach(|| {
            let db = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            db.map_or(Ok(()), |db| db.close())
        });
        if first_failure.is_ok() {
            first_failure = closed;
        }
    }
    first_failure.py_err(py)
}

/// Registers [`close_open_dbs`] with `atexit`; called once when the module loads.
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(close_open_dbs, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
