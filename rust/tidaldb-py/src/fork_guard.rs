//! Handles in a forked child. `fork()` copies every handle (its memory, its locks as other
//! threads held them at that instant, its file descriptors) but none of the threads that
//! serve it. A `Db` written there appends to the parent's log behind the parent's back,
//! which corrupts it; a lock held at the fork is never released in the child.
//!
//! So each handle remembers the process that created it, and refuses every call from
//! another with `tidaldb.ForkedProcess`. In a child it is never closed, flushed or dropped
//! either: dropping a `Db` syncs its log and releases the directory, which would act on
//! the parent's files. Its memory is left to the child's exit.
//!
//! "Another process" is told by a generation that `os.register_at_fork` advances in every
//! child, so the check is one atomic load, not a `getpid` system call on every write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// Forks of this process's ancestry that went through Python's `os.fork`, counted in
/// each child: a handle made at another count was made in another process.
static GENERATION: AtomicU64 = AtomicU64::new(0);

static FORKED_PROCESS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The process a handle was created in.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    generation: u64,
    pid: u32,
}

impl Origin {
    /// This process.
    pub fn here() -> Origin {
        Origin {
            generation: GENERATION.load(Ordering::Acquire),
            pid: std::process::id(),
        }
    }

    /// True in the process that created the handle.
    #[inline]
    pub fn is_here(&self) -> bool {
        self.generation == GENERATION.load(Ordering::Acquire)
    }

    /// Refuses a call on `handle` (a "Db", a "Cluster", ...) outside its creating process.
    #[inline]
    pub fn check(&self, py: Python<'_>, handle: &str) -> PyResult<()> {
        if self.is_here() {
            return Ok(());
        }
        Err(self.refusal(py, handle))
    }

    /// `tidaldb.ForkedProcess`, naming both processes and what to do instead.
    #[cold]
    fn refusal(&self, py: Python<'_>, handle: &str) -> PyErr {
        let message = format!(
            "this {handle} belongs to process {}, and this is process {}, forked from it. \
             A forked child cannot use its parent's {handle}: the fork copied its memory and \
             locks but not the threads that serve it (and a Db's writes would corrupt the \
             parent's files). Create a new one in the child, or start the child with \
             multiprocessing's \"spawn\" or \"forkserver\" method",
            self.pid,
            std::process::id()
        );
        match FORKED_PROCESS.import(py, "tidaldb.exceptions", "ForkedProcess") {
            Ok(class) => PyErr::from_type(class.clone(), message),
            Err(e) => e,
        }
    }

    /// Called where the handle lets go of `held`: in a forked child the reference is
    /// leaked instead, so that what it holds is never dropped (closed, synced) there.
    pub fn let_go<T>(&self, held: &Arc<T>) {
        if !self.is_here() {
            std::mem::forget(Arc::clone(held));
        }
    }
}

/// `os.register_at_fork`'s hook in a child: a new generation.
#[pyfunction]
fn after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Registers the hook; called once when the module loads. Where Python has no `fork`
/// (Windows), there is nothing to guard.
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let os = m.py().import("os")?;
    if !os.hasattr("register_at_fork")? {
        return Ok(());
    }
    let kwargs = PyDict::new(m.py());
    kwargs.set_item("after_in_child", wrap_pyfunction!(after_fork_in_child, m)?)?;
    os.call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
