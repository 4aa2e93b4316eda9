//! Reading a log that no process has open, changing nothing: for the operator tools
//! (`tidaldb inspect`, `verify`, `export`).
//!
//! Opening a log recovers it, and recovery cleans up after a crash: it cuts a torn tail
//! and removes an empty segment. A tool looking at a directory (perhaps one kept for a
//! post-mortem) must leave it exactly as it found it. So the tools run the very same
//! recovery code over [`ReadOnlyFs`], whose reads go to the disk and whose clean-ups are
//! discarded. Recovery never reads back what it cleaned up, so the state it returns is
//! the one an open would recover, bit for bit, and the directory is untouched.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::recovery::{RecoveryReport, recover};
use super::segment::{list_segments_on, scan_segment_on};
use super::storage::{Entry, RealFs, Storage, StorageFile};
use super::{WalConfig, schema_fingerprint, snapshot};
use crate::error::{Result, TidalError};
use crate::event::Event;
use crate::ledger::Ledger;
use crate::schema::{Schema, ShardId};

/// A storage that reads the real file system and writes nothing.
///
/// The clean-ups recovery performs (cutting a torn tail, removing an empty segment,
/// syncing a directory) report success without touching the disk; anything that would
/// create or replace a file fails, since no read-only caller should ever ask for one.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOnlyFs;

fn refused(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{what} {} refused: the operator tools never write into a data directory",
            path.display()
        ),
    )
}

impl Storage for ReadOnlyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        Err(refused("creating", dir))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Err(refused("appending to", path))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Err(refused("creating", path))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Err(refused("creating", path))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFs.read(path)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        RealFs.len(path)
    }
    /// Discarded: recovery cuts a torn tail only for the appends that would follow it.
    fn truncate(&self, _path: &Path, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        RealFs.list_dir(dir)
    }
    /// Discarded: recovery removes only empty segments and fully torn ones, which it
    /// then skips anyway.
    fn remove(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &Path, _to: &Path) -> io::Result<()> {
        Err(refused("renaming", from))
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn is_symlink(&self, path: &Path) -> io::Result<bool> {
        RealFs.is_symlink(path)
    }
}

/// A log replayed in memory as an open would replay it.
pub struct OfflineLog {
    pub ledger: Ledger,
    pub report: RecoveryReport,
    /// The position the next record would take: every earlier one is in the snapshot or
    /// a segment.
    pub next_lsn: u64,
    /// The position of the first record the segments still hold (`next_lsn` when they
    /// hold none): records before it live only in the snapshot.
    pub first_logged: u64,
    /// The newest snapshot, as (the position it covers, its file).
    pub snapshot: Option<(u64, PathBuf)>,
    /// Every segment file, empty ones included, as (its first position, its file).
    pub segments: Vec<(u64, PathBuf)>,
}

impl OfflineLog {
    /// Records the segments hold (from `first_logged` on).
    pub fn records_logged(&self) -> u64 {
        self.next_lsn.saturating_sub(self.first_logged)
    }
}

/// The shard every `TidalDb` log is written under (one log per tenant and node).
fn shard() -> ShardId {
    WalConfig::default().shard
}

/// Replays the log in `dir` under `schema` without writing anything. A missing directory
/// is an empty log: a tenant that never wrote has none yet.
pub fn replay_read_only(dir: &Path, schema: &Arc<Schema>) -> Result<OfflineLog> {
    let fs = ReadOnlyFs;
    if !is_dir(dir)? {
        return Ok(OfflineLog {
            ledger: Ledger::new(schema.clone()),
            report: RecoveryReport::default(),
            next_lsn: 1,
            first_logged: 1,
            snapshot: None,
            segments: Vec::new(),
        });
    }
    let fingerprint = schema_fingerprint(schema)?;
    let cfg = WalConfig::default();
    let recovered = recover(&fs, dir, &cfg, schema, fingerprint, |ledger, events| {
        ledger.apply_batch(events)
    })?;
    let segments = list_segments_on(&fs, dir, shard())?;
    let first_logged = non_empty(&fs, &segments)
        .next()
        .map_or(recovered.next_lsn, |(first, _)| *first);
    let snapshot = snapshot::list_snapshots(&fs, dir, shard())?.pop();
    Ok(OfflineLog {
        ledger: recovered.ledger,
        report: recovered.report,
        next_lsn: recovered.next_lsn,
        first_logged,
        snapshot,
        segments,
    })
}

/// The segments that hold bytes: an empty one is the trace of a crash before its first
/// write, which recovery removes and so never reads.
fn non_empty<'a>(
    fs: &'a dyn Storage,
    segments: &'a [(u64, PathBuf)],
) -> impl Iterator<Item = &'a (u64, PathBuf)> + 'a {
    segments
        .iter()
        .filter(move |(_, path)| fs.len(path).map(|len| len > 0).unwrap_or(true))
}

/// Hands every record the log in `dir` holds to `each`, one batch at a time, in log
/// order, leaving out what recovery would cut (a torn tail, an unfinished last group).
/// Checks each batch as recovery does; run [`replay_read_only`] first to check the log's
/// continuity and schema.
pub fn for_each_logged_batch(
    dir: &Path,
    mut each: impl FnMut(&[Event]) -> Result<()>,
) -> Result<()> {
    if !is_dir(dir)? {
        return Ok(());
    }
    let fs = ReadOnlyFs;
    let segments = list_segments_on(&fs, dir, shard())?;
    let segments: Vec<_> = non_empty(&fs, &segments).collect();
    for (i, (first, path)) in segments.iter().enumerate() {
        let scanned = scan_segment_on(&fs, path, *first, i + 1 == segments.len())?;
        for batch in &scanned.batches {
            each(&batch.events)?;
        }
    }
    Ok(())
}

/// True for a directory, false when nothing is there.
fn is_dir(dir: &Path) -> Result<bool> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(TidalError::Corruption {
            path: dir.to_path_buf(),
            offset: 0,
            detail: "a log directory is expected here, but this is a file; move it away".into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(TidalError::Io {
            context: format!("inspecting {}", dir.display()),
            source: e,
        }),
    }
}
