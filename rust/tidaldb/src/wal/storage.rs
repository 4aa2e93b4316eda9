//! The file operations the log (and the node's hard-state file beside it) performs, as a
//! trait: [`RealFs`] does them with `std::fs`; the simulator supplies an in-memory disk
//! that injects faults. Only what the log really uses is here, so that a simulated disk
//! has few operations to get right, and every one of them is exercised.
//!
//! The hot path calls it once per commit (one write and one sync through a
//! [`StorageFile`]); appends to the group being filled never reach it.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file open for appending.
#[allow(clippy::len_without_is_empty)] // a file length, read once at open
pub trait StorageFile: fmt::Debug + Send {
    /// Appends `bytes` whole, or fails.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes what was written durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub is_symlink: bool,
}

/// A file system as the log sees it.
pub trait Storage: fmt::Debug + Send + Sync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens an existing file for appending; `NotFound` if there is none.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Creates a file that must not exist yet (so never through a link), for appending.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Creates a file, or empties an existing one, for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// The whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Cuts a file to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// The entries of a directory, in no particular order (a name that is not UTF-8
    /// comes lossily converted: the log never makes one, it only has to see it).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<Entry>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's created, renamed and removed entries durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// True if `path` is a symbolic link; false if it is anything else or missing.
    fn is_symlink(&self, path: &Path) -> io::Result<bool>;
}

/// Shared handle on a storage, as the log holds it.
pub type SharedStorage = Arc<dyn Storage>;

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl RealFs {
    pub fn shared() -> SharedStorage {
        Arc::new(RealFs)
    }
}

#[derive(Debug)]
struct RealFile(File);

impl StorageFile for RealFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        let started = std::time::Instant::now();
        let synced = self.0.sync_data();
        super::sync_stats::record_fsync(started.elapsed());
        synced
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.0.metadata().map(|m| m.len())
    }
}

impl Storage for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(RealFile(File::create(path)?)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        fs::metadata(path).map(|m| m.len())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            out.push(Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                path: entry.path(),
                is_symlink: entry.file_type()?.is_symlink(),
            });
        }
        Ok(out)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn is_symlink(&self, path: &Path) -> io::Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(m) => Ok(m.file_type().is_symlink()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}
