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
//!
//! Python code runs in a handler, so an exception may come out of it: a `KeyboardInterrupt`
//! that arrived meanwhile, or one a filter raised (handlers report their own errors,
//! filters and the machinery around them do not). It stops the delivery, the records not
//! yet delivered go back to the queue for the next one, and the binding call raises it.

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
    fn deliver(&self, py: Python<'_>) -> PyResult<()> {
        let drained = match self.queue.lock() {
            Ok(mut q) => {
                self.pending.store(false, Ordering::Release);
                std::mem::take(&mut *q)
            }
            Err(_) => return Ok(()),
        };
        let mut records = drained.into_iter();
        while let Some(r) = records.next() {
            let emitted = self.emit(
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
            if let Err(e) = emitted {
                self.requeue(records);
                return Err(e);
            }
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
            )?;
        }
        Ok(())
    }

    /// Hands one record to Python; an exception that comes out is the caller's to raise.
    fn emit(&self, py: Python<'_>, record: &Record<'_>) -> PyResult<()> {
        self.python.log(record);
        PyErr::take(py).map_or(Ok(()), Err)
    }

    /// Puts back records a failed delivery did not reach, ahead of any queued since.
    fn requeue(&self, rest: impl Iterator<Item = Queued>) {
        if let Ok(mut q) = self.queue.lock() {
            let newer = std::mem::take(&mut *q);
            q.extend(rest);
            q.extend(newer);
            let over = q.len().saturating_sub(MAX_QUEUED);
            q.truncate(MAX_QUEUED);
            self.dropped.fetch_add(over as u64, Ordering::Relaxed);
            self.pending.store(!q.is_empty(), Ordering::Release);
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
/// lock held, and raise what it returns: an exception that came out of Python's logging.
/// Cheap when there are none.
#[inline]
pub fn deliver(py: Python<'_>) -> PyResult<()> {
    match BRIDGE.get().filter(|b| b.pending.load(Ordering::Acquire)) {
        Some(bridge) => bridge.deliver(py),
        None => Ok(()),
    }
}
