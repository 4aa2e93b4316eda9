//! The control plane's Raft log on disk: one append-only file of framed records.
//!
//! Each frame is `[payload length u32 LE][crc32c of the payload u32 LE][payload]`, the
//! payload one postcard-encoded [`ControlRecord`]. Appends are synced before they return,
//! because the voter sends its votes and acknowledgements only after its records are
//! durable. Opening replays the frames; a frame cut short or damaged at the very end is a
//! write torn by a crash (never acknowledged, since the sync did not return) and is cut
//! off; damage anywhere before the end is refused as corruption, because a record there
//! was once durable. Each snapshot rewrites the file as the snapshot, the hard state and
//! the entries after it (written beside it, synced, then renamed over it), so the file
//! stays as bounded as the log.
//!
//! It writes through the WAL's [`Storage`] trait, so the simulator's faulty disk can stand
//! in for the real file system.

use std::path::{Path, PathBuf};

use super::log::{ControlLog, ControlRecord, StoredEntry};
use crate::error::{Result, TidalError};
use crate::wal::{SharedStorage, StorageFile};

const FRAME_HEAD: usize = 8;
/// The largest record accepted when reading back: far above any the voter writes (its
/// messages are capped at 1 MiB of entries, its snapshot is the control plane's command
/// log), and low enough that a damaged length cannot make the reader allocate wildly.
const MAX_RECORD: usize = 256 << 20;

pub const CONTROL_LOG_FILE: &str = "raft.log";

/// The open file, and the log its records describe.
pub struct ControlStore {
    fs: SharedStorage,
    dir: PathBuf,
    file: Box<dyn StorageFile>,
    log: ControlLog,
    /// Every record since the last rewrite, as the next open would replay them.
    records: Vec<ControlRecord>,
}

impl std::fmt::Debug for ControlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlStore")
            .field("dir", &self.dir)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl ControlStore {
    /// Opens (or creates) the store in `dir` for a group whose first voters are `voters`.
    pub fn open(fs: SharedStorage, dir: &Path, voters: &[u64], learners: &[u64]) -> Result<Self> {
        fs.create_dir_all(dir).map_err(|e| io(e, "creating", dir))?;
        let path = dir.join(CONTROL_LOG_FILE);
        let bytes = match fs.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e, "reading", &path)),
        };
        let (records, valid_len) = read_frames(&bytes, &path)?;
        if valid_len < bytes.len() {
            tracing::warn!(path = %path.display(), kept = valid_len, found = bytes.len(), "cutting a torn tail off the control log");
            fs.truncate(&path, valid_len as u64)
                .map_err(|e| io(e, "truncating", &path))?;
        }
        let log = ControlLog::recover(voters, learners, &records)?;
        let file = match fs.open_append(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = fs.create_new(&path).map_err(|e| io(e, "creating", &path))?;
                fs.sync_dir(dir).map_err(|e| io(e, "syncing", dir))?;
                f
            }
            Err(e) => return Err(io(e, "opening", &path)),
        };
        Ok(ControlStore {
            fs,
            dir: dir.to_path_buf(),
            file,
            log,
            records,
        })
    }

    /// The records to start a voter from.
    pub fn records(&self) -> &[ControlRecord] {
        &self.records
    }

    /// Appends `records` and syncs them. A snapshot among them rewrites the file.
    pub fn append(&mut self, records: &[ControlRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        for r in records {
            self.log.apply_record(r)?;
        }
        if records
            .iter()
            .any(|r| matches!(r, ControlRecord::Snapshot(_)))
        {
            return self.rewrite();
        }
        let mut bytes = Vec::new();
        for r in records {
            encode_frame(r, &mut bytes)?;
        }
        let path = self.dir.join(CONTROL_LOG_FILE);
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync())
            .map_err(|e| io(e, "appending to", &path))?;
        self.records.extend_from_slice(records);
        Ok(())
    }

    /// Replaces the file with the log's present state: snapshot, hard state, entries.
    fn rewrite(&mut self) -> Result<()> {
        let hs = self.log.hard_state();
        let mut records = vec![
            ControlRecord::Snapshot(self.log.stored_snapshot().clone()),
            ControlRecord::HardState {
                term: hs.term,
                vote: hs.vote,
                commit: hs.commit,
            },
        ];
        let entries: Vec<StoredEntry> = self
            .log
            .entries()
            .iter()
            .map(StoredEntry::from_entry)
            .collect();
        if !entries.is_empty() {
            records.push(ControlRecord::Entries(entries));
        }
        let mut bytes = Vec::new();
        for r in &records {
            encode_frame(r, &mut bytes)?;
        }
        let path = self.dir.join(CONTROL_LOG_FILE);
        let tmp = self.dir.join(format!("{CONTROL_LOG_FILE}.tmp"));
        let mut file = self.fs.create(&tmp).map_err(|e| io(e, "creating", &tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync())
            .map_err(|e| io(e, "writing", &tmp))?;
        self.fs
            .rename(&tmp, &path)
            .and_then(|()| self.fs.sync_dir(&self.dir))
            .map_err(|e| io(e, "renaming over", &path))?;
        self.file = self
            .fs
            .open_append(&path)
            .map_err(|e| io(e, "opening", &path))?;
        self.records = records;
        Ok(())
    }
}

fn encode_frame(record: &ControlRecord, out: &mut Vec<u8>) -> Result<()> {
    let payload = postcard::to_stdvec(record).map_err(|e| TidalError::InvalidArgument {
        name: "control record",
        reason: format!("it does not encode: {e}"),
    })?;
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The records of a file, and how many of its bytes hold whole, intact frames.
fn read_frames(bytes: &[u8], path: &Path) -> Result<(Vec<ControlRecord>, usize)> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + FRAME_HEAD) else {
            break; // a torn frame header at the end
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let end = at + FRAME_HEAD + len;
        // A crash can also leave the end of a file zero-filled (the length grew, the
        // data never landed): that too is a torn tail, not damage.
        if bytes[at..].iter().all(|&b| b == 0) {
            break;
        }
        let damaged = |detail: String| TidalError::Corruption {
            path: path.to_path_buf(),
            offset: at as u64,
            detail,
        };
        if len > MAX_RECORD {
            return Err(damaged(format!("a record claims {len} bytes")));
        }
        let Some(payload) = bytes.get(at + FRAME_HEAD..end) else {
            break; // a torn payload at the end
        };
        if crc32c::crc32c(payload) != crc {
            if end == bytes.len() {
                break; // the last frame, torn mid-write
            }
            return Err(damaged(
                "checksum mismatch before the end of the log".into(),
            ));
        }
        let record = postcard::from_bytes(payload)
            .map_err(|e| damaged(format!("a record does not decode: {e}")))?;
        records.push(record);
        at = end;
    }
    Ok((records, at))
}

fn io(source: std::io::Error, doing: &str, path: &Path) -> TidalError {
    TidalError::Io {
        context: format!("{doing} {}", path.display()),
        source,
    }
}
