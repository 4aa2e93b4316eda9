//! Core `tracing` events → `log` records → Python `logging`, via pyo3-log.
//!
//! A record is never handed to Python where it is emitted. The core logs while it holds its
//! lock (and the bindings hold the Db lock around it), on any thread: the caller's, the
//! Batched flusher, a bulk call running detached. Python logging handlers may release the
//! interpreter (a file write does), another Python thread then runs and waits for that lock
//! while holding the interpreter, and the first thread can never get the interpreter back:
//! a deadlock. So every record is queued, and each binding call delivers the queue at its
//! end, after it has released every lock. Records from background threads therefore
//! arrive with the next binding call on any thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;

/// Records held at most between two deliveries; later ones are counted and dropped, so that
/// a process that stops calling tidaldb does not grow the queue without bound.
const MAX_QUEUED: usize = 10_000;

struct Queued {
    level: Level,
    target: String,
    message: String,
    module_path: Option<String>,
    file: Option<String>,
    line: Option<u32>,
}

struct Bridge {
    python: pyo3_log::Logger,
    queue: Mutex<Vec<Queued>>,
    /// Lets the hot path check for queued records with one load, no lock.
    pending: AtomicBool,
    dropped: AtomicU64,
}

static BRIDGE: OnceLock<&'static Bridge> = OnceLock::new();

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Filters by level only; it does not call into Python.
        self.python.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let queued = Queued {
            level: record.level(),
            target: record.target().to_owned(),
            message: record.args().to_string(),
            module_path: record.module_path().map(str::to_owned),
            file: record.file().map(str::to_owned),
            line: record.line(),
        };
        // The queue lock is only ever held for a push or a swap, never while waiting for
        // anything else, so taking it here cannot deadlock.
        if let Ok(mut q) = self.queue.lock() {
            if q.len() < MAX_QUEUED {
                q.push(queued);
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            self.pending.store(true, Ordering::Release);
        }
    }

    fn flush(&self) {}
}

impl Bridge {
    fn deliver(&self, py: Python<'_>) {
        let drained = match self.queue.lock() {
            Ok(mut q) => {
                self.pending.store(false, Ordering::Release);
                std::mem::take(&mut *q)
            }
            Err(_) => return,
        };
        for r in drained {
            self.emit(
                py,
                &Record::builder()
                    .level(r.level)
                    .target(&r.target)
                    .args(format_args!("{}", r.message))
                    .module_path(r.module_path.as_deref())
                    .file(r.file.as_deref())
                    .line(r.line)
                    .build(),
            );
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.emit(
                py,
                &Record::builder()
                    .level(Level::Warn)
                    .target(module_path!())
                    .args(format_args!(
                        "{dropped} log records were dropped: more than {MAX_QUEUED} arrived \
                         between two tidaldb calls"
                    ))
                    .build(),
            );
        }
    }

    /// Hands one record to Python. A handler that raises must not leave its exception set
    /// behind the binding call's own result, so it is reported as unraisable instead.
    fn emit(&self, py: Python<'_>, record: &Record<'_>) {
        self.python.log(record);
        if let Some(e) = PyErr::take(py) {
            e.write_unraisable(py, None);
        }
    }
}

/// Installs the bridge as the process's `log` logger, once. If some other extension got
/// there first, tidaldb's records go to that logger instead; that is not an error.
pub fn install(py: Python<'_>) -> PyResult<()> {
    if BRIDGE.get().is_some() {
        return Ok(());
    }
    // Caching off: Python-side level changes (caplog, logging.basicConfig) take effect at
    // once, which a cache would hide until it was reset.
    let python = pyo3_log::Logger::new(py, pyo3_log::Caching::Nothing)?.filter(LevelFilter::Debug);
    let bridge: &'static Bridge = Box::leak(Box::new(Bridge {
        python,
        queue: Mutex::new(Vec::new()),
        pending: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    }));
    if log::set_logger(bridge).is_ok() {
        log::set_max_level(LevelFilter::Debug);
        let _ = BRIDGE.set(bridge);
    }
    Ok(())
}

/// Delivers queued records. Call it attached, at the end of a binding call, with no Rust
/// lock held. Cheap when there are none.
#[inline]
pub fn deliver(py: Python<'_>) {
    if let Some(bridge) = BRIDGE.get().filter(|b| b.pending.load(Ordering::Acquire)) {
        bridge.deliver(py);
    }
}
