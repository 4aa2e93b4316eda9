//! Core `tracing` events → `log` records → Python `logging`, via pyo3-log.
//!
//! pyo3-log attaches to the interpreter for every record. That is a deadlock when the record
//! is emitted by a thread that holds the core's lock without holding the interpreter: the
//! Batched flusher thread, or a bulk call running under `py.detach`. Meanwhile a Python
//! thread that holds the interpreter may be waiting for that very lock. So a record from a
//! thread that is not attached is queued, and delivered by the next binding call that is
//! attached; records from attached threads go straight through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;

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
    /// Lets the hot path check for queued records with one relaxed load, no lock.
    pending: AtomicBool,
}

static BRIDGE: OnceLock<&'static Bridge> = OnceLock::new();

fn attached() -> bool {
    // SAFETY: PyGILState_Check may be called from any thread at any time; it only reads the
    // calling thread's state.
    unsafe { pyo3::ffi::PyGILState_Check() != 0 }
}

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.python.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if attached() {
            self.python.log(record);
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
        if let Ok(mut q) = self.queue.lock() {
            q.push(queued);
            self.pending.store(true, Ordering::Release);
        }
    }

    fn flush(&self) {}
}

impl Bridge {
    fn deliver(&self, _py: Python<'_>) {
        let drained = match self.queue.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(_) => return,
        };
        self.pending.store(false, Ordering::Release);
        for r in drained {
            self.python.log(
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
    }));
    if log::set_logger(bridge).is_ok() {
        log::set_max_level(LevelFilter::Debug);
        let _ = BRIDGE.set(bridge);
    }
    Ok(())
}

/// Delivers records queued by unattached threads. Cheap when there are none.
#[inline]
pub fn deliver(py: Python<'_>) {
    if let Some(bridge) = BRIDGE.get().filter(|b| b.pending.load(Ordering::Acquire)) {
        bridge.deliver(py);
    }
}
