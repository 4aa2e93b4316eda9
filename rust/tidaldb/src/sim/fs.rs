//! `SimFs`: an in-memory file system under the real WAL, one per simulated machine, that
//! fails the way disks do, from the run's seed.
//!
//! Each file keeps its bytes and how many of them are synced; the rest is the page cache.
//! Directory operations (create, rename, remove) are durable at once, as on a file system
//! that journals its metadata synchronously: only file contents have an unsynced tail.
//! That is the one simplification, and the log never relies on it (it syncs directories
//! anyway).
//!
//! Faults, each switched on by the simulation and drawn from its seed:
//! - a crash that loses the page cache tears every unsynced tail: lost whole, cut to a
//!   prefix, zeroed from some point on, or written back with holes (4 KiB pages zeroed);
//! - a lying fsync reports success and syncs nothing;
//! - a full disk fails writes (sometimes after a partial write) and syncs with ENOSPC;
//! - a flipped bit in synced data.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::rng::SimRng;
use crate::wal::{Entry, Storage, StorageFile};

/// The page size holes are punched at.
const PAGE: usize = 4096;

#[derive(Debug, Default)]
struct SimFile {
    data: Vec<u8>,
    /// `data[..synced]` survives any crash.
    synced: usize,
    /// Where `synced` stood before the last sync that moved it: `data[previous..synced]`
    /// is the last write a sync really covered, so damage before it is followed by
    /// synced data.
    previous: usize,
    /// A sync lied about `data[synced..]`.
    lied: bool,
}

/// What a crash did to a disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashDamage {
    /// Unsynced tails lost or torn.
    pub torn_tails: u64,
    /// Bytes lost that a lying sync had reported durable.
    pub acknowledged_bytes_lost: u64,
}

#[derive(Debug)]
struct FsState {
    files: BTreeMap<PathBuf, SimFile>,
    dirs: BTreeSet<PathBuf>,
    rng: SimRng,
    full: bool,
    lying: bool,
    /// The next sync fails as if the power went out during it (see [`SimFs::cut_power`]).
    power_cut: bool,
}

/// A simulated disk. Clones share it.
#[derive(Clone, Debug)]
pub struct SimFs(Arc<Mutex<FsState>>);

fn no_space() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "no space left on device (simulated)",
    )
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found (simulated)", path.display()),
    )
}

impl SimFs {
    pub fn new(seed: u64) -> Self {
        SimFs(Arc::new(Mutex::new(FsState {
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
            rng: SimRng::new(seed),
            full: false,
            lying: false,
            power_cut: false,
        })))
    }

    fn state(&self) -> MutexGuard<'_, FsState> {
        // Nothing panics while holding the lock; if a test did, the state is still the
        // best evidence there is.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// While full, every write and sync fails with ENOSPC.
    pub fn set_full(&self, full: bool) {
        self.state().full = full;
    }

    /// While lying, every sync reports success and syncs nothing.
    pub fn set_lying(&self, lying: bool) {
        self.state().lying = lying;
    }

    /// Makes the next sync fail as a power cut during it would: what was written stays
    /// unsynced, for [`crash`](Self::crash) to tear.
    pub fn cut_power(&self, on: bool) {
        self.state().power_cut = on;
    }

    /// The machine goes down. With `lose_unsynced`, each file's unsynced tail is lost or
    /// torn (the seed picks how); without, the page cache reaches the disk whole. Either
    /// way the faults end: a restarted machine gets a disk with free space and an honest
    /// fsync.
    pub fn crash(&self, lose_unsynced: bool) -> CrashDamage {
        let mut st = self.state();
        let FsState { files, rng, .. } = &mut *st;
        let mut damage = CrashDamage::default();
        for file in files.values_mut() {
            let tail = file.data.len() - file.synced;
            if tail > 0 && lose_unsynced {
                tear(&mut file.data, file.synced, rng);
                damage.torn_tails += 1;
                if file.lied {
                    // A lie covers the whole tail, and tearing damages some of it.
                    damage.acknowledged_bytes_lost += tail as u64;
                }
            }
            file.synced = file.data.len();
            file.previous = file.previous.min(file.synced);
            file.lied = false;
        }
        st.full = false;
        st.lying = false;
        st.power_cut = false;
        damage
    }

    /// Flips one bit of synced data that later synced data follows (so that the log can
    /// tell it from a torn write): in a log segment, before its last synced write; in any
    /// other file, anywhere. Returns the file, or `None` if nothing qualifies.
    pub fn flip_bit(&self) -> Option<PathBuf> {
        let mut st = self.state();
        let FsState { files, rng, .. } = &mut *st;
        let span = |path: &Path, f: &SimFile| {
            let is_segment = path.extension().is_some_and(|e| e == "wal");
            if is_segment { f.previous } else { f.synced }
        };
        let candidates: Vec<&PathBuf> = (files.iter())
            .filter(|(p, f)| span(p, f) > 0 && !p.to_string_lossy().ends_with(".tmp"))
            .map(|(p, _)| p)
            .collect();
        let path = (*candidates.get(rng.below(candidates.len() as u64) as usize)?).clone();
        let file = files.get_mut(&path)?;
        let at = rng.below(span(&path, file) as u64) as usize;
        file.data[at] ^= 1 << rng.below(8);
        Some(path)
    }

    /// Bytes held, synced or not, over all files.
    pub fn bytes(&self) -> usize {
        self.state().files.values().map(|f| f.data.len()).sum()
    }
}

/// What a crash leaves of `data[synced..]`: nothing, a prefix, zeros from some point on, or
/// holes. Always less than all of it, so an unsynced commit group never survives whole.
fn tear(data: &mut Vec<u8>, synced: usize, rng: &mut SimRng) {
    let tail = data.len() - synced;
    let cut = synced + rng.below(tail as u64) as usize;
    match rng.below(4) {
        0 => data.truncate(synced),
        1 => data.truncate(cut),
        2 => data[cut..].fill(0),
        _ => {
            // Pages written back out of order: some reach the disk, at least one does not.
            let first_page = synced / PAGE;
            let last_page = (data.len() - 1) / PAGE;
            let pages = last_page - first_page + 1;
            let sure = first_page + rng.below(pages as u64) as usize;
            for page in first_page..=last_page {
                if page == sure || rng.chance(0.5) {
                    let from = (page * PAGE).max(synced);
                    let to = ((page + 1) * PAGE).min(data.len());
                    data[from..to].fill(0);
                }
            }
        }
    }
}

/// A file opened on a [`SimFs`].
#[derive(Debug)]
struct SimHandle {
    fs: SimFs,
    path: PathBuf,
}

impl SimHandle {
    fn with<T>(&self, f: impl FnOnce(&mut FsState, &Path) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.fs.state();
        f(&mut st, &self.path)
    }
}

fn file_mut<'a>(st: &'a mut FsState, path: &Path) -> io::Result<&'a mut SimFile> {
    st.files.get_mut(path).ok_or_else(|| not_found(path))
}

impl StorageFile for SimHandle {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.with(|st, path| {
            if st.full {
                // A full disk may take part of a write before refusing the rest.
                let part = st.rng.below(bytes.len() as u64 + 1) as usize;
                file_mut(st, path)?.data.extend_from_slice(&bytes[..part]);
                return Err(no_space());
            }
            file_mut(st, path)?.data.extend_from_slice(bytes);
            Ok(())
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        self.with(|st, path| {
            if st.power_cut {
                st.power_cut = false;
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "the power went out during the sync (simulated)",
                ));
            }
            if st.full {
                return Err(no_space());
            }
            let lying = st.lying;
            let file = file_mut(st, path)?;
            if file.data.len() > file.synced {
                if lying {
                    file.lied = true;
                } else {
                    file.previous = file.synced;
                    file.synced = file.data.len();
                    file.lied = false;
                }
            }
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with(|st, path| {
            let file = file_mut(st, path)?;
            truncate(file, len as usize);
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|st, path| Ok(file_mut(st, path)?.data.len() as u64))
    }
}

/// Shrinks a file; growing is not something the log does.
fn truncate(file: &mut SimFile, len: usize) {
    file.data.truncate(len);
    file.synced = file.synced.min(len);
    file.previous = file.previous.min(len);
}

impl Storage for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.state().dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        if !self.state().files.contains_key(path) {
            return Err(not_found(path));
        }
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut st = self.state();
        if st.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists (simulated)", path.display()),
            ));
        }
        st.files.insert(path.to_path_buf(), SimFile::default());
        drop(st);
        self.open_append(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut st = self.state();
        truncate(st.files.entry(path.to_path_buf()).or_default(), 0);
        drop(st);
        self.open_append(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.state();
        let file = st.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(file.data.clone())
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        let st = self.state();
        let file = st.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(file.data.len() as u64)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.state();
        let file = file_mut(&mut st, path)?;
        truncate(file, len as usize);
        file.synced = file.data.len();
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let st = self.state();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let entries = (st.files.keys())
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| {
                Some(Entry {
                    name: p.file_name()?.to_string_lossy().into_owned(),
                    path: p.clone(),
                    is_symlink: false,
                })
            });
        Ok(entries.collect())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match self.state().files.remove(path) {
            Some(_) => Ok(()),
            None => Err(not_found(path)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state();
        let file = st.files.remove(from).ok_or_else(|| not_found(from))?;
        st.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn is_symlink(&self, _path: &Path) -> io::Result<bool> {
        Ok(false)
    }
}
