//! A value that only threads attached to the interpreter touch, so that reaching it takes
//! no lock. Attached threads run one at a time, and handing the interpreter over orders
//! each one's accesses after the last one's. An uncontended lock costs two atomic
//! read-modify-writes, which were 7% of a `db.signal()` call.
//!
//! That ordering holds only while the interpreter has its global lock. The module declares
//! that it needs one (`#[pymodule(gil_used = true)]`), which a free-threaded interpreter
//! honours by turning the lock back on, unless told otherwise (`PYTHON_GIL=0`). So the
//! module also asks the interpreter when it loads ([`install`]); without the lock, no cell
//! is ever touched and every caller takes its locked path instead.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

/// Whether the interpreter runs one attached thread at a time. False until [`install`]
/// has asked.
static GIL_ORDERS_ACCESS: AtomicBool = AtomicBool::new(false);

/// Asks the interpreter, once, whether it has its global lock (`sys._is_gil_enabled`,
/// Python 3.13 and later; every earlier interpreter has it).
pub fn install(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    let enabled = match sys.getattr("_is_gil_enabled") {
        Ok(is_enabled) => is_enabled.call0()?.extract::<bool>()?,
        Err(_) => true,
    };
    GIL_ORDERS_ACCESS.store(enabled, Ordering::Relaxed);
    Ok(())
}

/// Whether [`AttachedCell`]s are in use: the interpreter has its global lock.
pub fn gil_orders_access() -> bool {
    GIL_ORDERS_ACCESS.load(Ordering::Relaxed)
}

/// `T`, reached only with a [`Python`] token. Borrows are counted as in a [`RefCell`]
/// (without atomics): a value still borrowed by a caller that detached cannot be taken.
pub struct AttachedCell<T>(RefCell<T>);

// SAFETY: the cell is touched only by `with` and `replace`, each with a `Python` token,
// which a thread holds only while attached, and each only when the interpreter has its
// global lock (`GIL_ORDERS_ACCESS`): attached threads then run one at a time, so the
// borrow count is never read or written by two at once. A `with` whose closure detaches
// keeps its borrow counted until it is attached again, and while it is detached other
// threads may share the `&T` it holds: hence `T: Sync`.
unsafe impl<T: Send + Sync> Sync for AttachedCell<T> {}

impl<T> AttachedCell<T> {
    pub fn new(value: T) -> Self {
        AttachedCell(RefCell::new(value))
    }

    /// `f` of the value; `None`, with the value untouched, when the interpreter has no
    /// global lock (the caller then takes its locked path), or while [`Self::replace`]
    /// swaps it, which no attached caller can observe.
    #[inline]
    pub fn with<R>(&self, _attached: Python<'_>, f: impl FnOnce(&T) -> R) -> Option<R> {
        if !gil_orders_access() {
            return None;
        }
        let value = self.0.try_borrow().ok()?;
        Some(f(&value))
    }

    /// Puts `value` in and returns the old one; `Err(value)` while some caller's `with`
    /// is still running (one that detached), or when the interpreter has no global lock.
    pub fn replace(&self, _attached: Python<'_>, value: T) -> Result<T, T> {
        if !gil_orders_access() {
            return Err(value);
        }
        match self.0.try_borrow_mut() {
            Ok(mut held) => Ok(std::mem::replace(&mut *held, value)),
            Err(_) => Err(value),
        }
    }
}
