//! A value that only threads attached to the interpreter touch, so that reaching it takes
//! no lock. Attached threads run one at a time, and handing the interpreter over orders
//! each one's accesses after the last one's. An uncontended lock costs two atomic
//! read-modify-writes, which were 7% of a `db.signal()` call.
//!
//! That ordering holds only where the interpreter has a global lock, so the module
//! declares that it needs one (`#[pymodule(gil_used = true)]`): a free-threaded
//! interpreter turns its lock back on when it imports tidaldb.

use std::cell::RefCell;

use pyo3::Python;

/// `T`, reached only with a [`Python`] token. Borrows are counted as in a [`RefCell`]
/// (without atomics): a value still borrowed by a caller that detached cannot be taken.
pub struct AttachedCell<T>(RefCell<T>);

// SAFETY: every access needs a `Python` token, which a thread holds only while attached,
// and attached threads run one at a time (the module requires the global lock). The
// borrow count is read and written only inside `with` and `take_if_free`, both attached.
// A `with` whose closure detaches keeps its borrow counted until it is attached again.
unsafe impl<T: Send> Sync for AttachedCell<T> {}

impl<T> AttachedCell<T> {
    pub fn new(value: T) -> Self {
        AttachedCell(RefCell::new(value))
    }

    /// `f` of the value. `None` only while [`Self::replace`] swaps it, which no attached
    /// caller can observe; the `Option` spares the path a panic.
    #[inline]
    pub fn with<R>(&self, _attached: Python<'_>, f: impl FnOnce(&T) -> R) -> Option<R> {
        let value = self.0.try_borrow().ok()?;
        Some(f(&value))
    }

    /// Puts `value` in and returns the old one; `Err(value)` while some caller's `with`
    /// is still running (one that detached).
    pub fn replace(&self, _attached: Python<'_>, value: T) -> Result<T, T> {
        match self.0.try_borrow_mut() {
            Ok(mut held) => Ok(std::mem::replace(&mut *held, value)),
            Err(_) => Err(value),
        }
    }
}
