//! The data directories this process holds open, so that opening one of them a second
//! time here is refused as what it is, and not blamed on another process (the file lock
//! alone cannot tell the two apart).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// `(process id, canonical directory)` of every directory opened here. The process id
/// tells a forked child, which inherits the list but not the opens, from its parent.
static OPEN: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

/// The directory as the list knows it: canonical when it exists, as given otherwise.
fn key(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Whether this process holds `dir` open.
pub fn is_open_here(dir: &Path) -> bool {
    let key = (std::process::id(), key(dir));
    OPEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&key)
}

/// Marks `dir` open in this process until the returned guard is dropped.
#[derive(Debug)]
pub struct OpenHere {
    entry: (u32, PathBuf),
}

impl OpenHere {
    pub fn register(dir: &Path) -> Self {
        let entry = (std::process::id(), key(dir));
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        debug_assert!(!open.contains(&entry), "{dir:?} registered twice");
        open.push(entry.clone());
        OpenHere { entry }
    }
}

impl Drop for OpenHere {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = open.iter().position(|e| *e == self.entry) {
            open.swap_remove(i);
        }
    }
}
