//! Segment files: names, appending batches, and scanning them back.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::codec::{Reader, decode_event};
use super::header::{BatchHeader, HEADER_LEN, HeaderError};
use crate::error::{Result, TidalError};
use crate::event::Event;
use crate::schema::ShardId;

/// `shard-00000-00000000000000000001.wal`: the shard, then the first record's seq, zero
/// padded so that names sort in log order.
pub fn segment_name(shard: ShardId, first_seq: u64) -> String {
    format!("shard-{:05}-{first_seq:020}.wal", shard.0)
}

/// The segments of one shard in `dir`, in log order, as `(first_seq, path)`.
pub fn list_segments(dir: &Path, shard: ShardId) -> Result<Vec<(u64, PathBuf)>> {
    let prefix = format!("shard-{:05}-", shard.0);
    let mut out = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(TidalError::io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(TidalError::io(format!("listing {}", dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(seq) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".wal"))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Syncs a directory so that a created, renamed or removed entry survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(TidalError::io(format!(
            "syncing directory {}",
            dir.display()
        )))
}

/// The open tail segment.
#[derive(Debug)]
pub struct SegmentWriter {
    pub path: PathBuf,
    file: File,
    pub len: u64,
}

impl SegmentWriter {
    pub fn create(dir: &Path, shard: ShardId, first_seq: u64) -> Result<Self> {
        let path = dir.join(segment_name(shard, first_seq));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(TidalError::io(format!(
                "creating segment {}",
                path.display()
            )))?;
        sync_dir(dir)?;
        let len = file
            .metadata()
            .map_err(TidalError::io(format!("reading {}", path.display())))?
            .len();
        Ok(SegmentWriter { path, file, len })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(TidalError::io(format!(
            "appending to {}",
            self.path.display()
        )))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(TidalError::io(format!("syncing {}", self.path.display())))
    }
}

/// One whole batch read back from a segment.
pub struct ScannedBatch {
    pub header: BatchHeader,
    pub events: Vec<Event>,
}

/// The outcome of scanning one segment.
pub struct ScannedSegment {
    pub batches: Vec<ScannedBatch>,
    /// Bytes up to the end of the last whole batch.
    pub valid_len: u64,
    /// Bytes after it: a torn tail (only legal in the last segment).
    pub torn_bytes: u64,
}

/// Reads every batch of a segment. A short batch at the very end is a torn tail, and so is
/// a run of zero bytes (a file extended but never written). Anything else that fails to
/// parse or checksum is corruption, reported with the file and offset, never skipped.
pub fn scan_segment(path: &Path) -> Result<ScannedSegment> {
    let bytes = fs::read(path).map_err(TidalError::io(format!("reading {}", path.display())))?;
    let corruption = |offset: usize, detail: String| TidalError::Corruption {
        path: path.to_path_buf(),
        offset: offset as u64,
        detail,
    };
    let mut batches = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER_LEN {
            break;
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&rest[..HEADER_LEN]);
        let header = match BatchHeader::decode(&raw) {
            Ok(h) => h,
            Err(HeaderError::BadMagic) if rest.iter().all(|b| *b == 0) => break,
            Err(HeaderError::BadMagic) => {
                return Err(corruption(at, "bad batch magic (expected \"TIDA\")".into()));
            }
            Err(HeaderError::UnknownVersion(v)) => {
                return Err(corruption(
                    at,
                    format!(
                        "batch format version {v} is newer than this build understands; upgrade tidaldb"
                    ),
                ));
            }
        };
        let end = HEADER_LEN + header.payload_len as usize;
        if rest.len() < end {
            break;
        }
        let payload = &rest[HEADER_LEN..end];
        let actual = header.compute_checksum(payload);
        if actual != header.checksum {
            return Err(corruption(
                at,
                format!(
                    "batch checksum mismatch (stored {:#010x}, computed {actual:#010x})",
                    header.checksum
                ),
            ));
        }
        let mut reader = Reader::new(payload);
        let mut events = Vec::with_capacity(header.event_count as usize);
        while !reader.is_empty() {
            let record_at = at + HEADER_LEN + reader.pos;
            events.push(decode_event(&mut reader).map_err(|d| corruption(record_at, d))?);
        }
        if events.len() != header.event_count as usize {
            return Err(corruption(
                at,
                format!(
                    "batch declares {} events but holds {}",
                    header.event_count,
                    events.len()
                ),
            ));
        }
        batches.push(ScannedBatch { header, events });
        at += end;
    }
    Ok(ScannedSegment {
        batches,
        valid_len: at as u64,
        torn_bytes: (bytes.len() - at) as u64,
    })
}

/// Cuts a torn tail off the last segment, so that new batches follow the last whole one.
pub fn truncate_to(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(TidalError::io(format!(
            "opening {} to truncate",
            path.display()
        )))?;
    file.set_len(len)
        .and_then(|_| file.sync_all())
        .map_err(TidalError::io(format!("truncating {}", path.display())))
}
