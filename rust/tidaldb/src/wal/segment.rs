//! Segment files: names, appending batches, and scanning them back.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::codec::{Reader, decode_event};
use super::header::{BatchHeader, HEADER_LEN, HeaderError, MAGIC};
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

    /// Appends `bytes`, or on failure cuts the file back to where it was, so that a failed
    /// batch leaves no partial bytes for a later append to land behind.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!(error = %cut, path = %self.path.display(), "could not cut back a failed append");
            }
            return Err(TidalError::Io {
                context: format!("appending to {}", self.path.display()),
                source: e,
            });
        }
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
    /// Byte offset of the batch header in its segment.
    pub offset: u64,
    pub header: BatchHeader,
    pub events: Vec<Event>,
}

/// The outcome of scanning one segment.
pub struct ScannedSegment {
    pub batches: Vec<ScannedBatch>,
    /// Bytes up to the end of the last whole batch.
    pub valid_len: u64,
    /// Bytes after it: a torn tail, only ever accepted in the last segment.
    pub torn_bytes: u64,
}

/// What is wrong with the bytes at some offset.
enum Damage {
    /// Fewer bytes than a header.
    Short,
    /// A valid header whose payload runs past the end of the file.
    PayloadPastEnd,
    /// The header does not parse or fails its checksum.
    Header(String),
    /// A valid header whose payload fails its checksum.
    Payload(String),
    /// Checksums pass but the records do not decode: never a torn write.
    Records { at: usize, detail: String },
}

/// True when some whole, valid batch after `from` belongs to a commit group that started
/// after seq `expected`. Groups are synced one after another, so such a batch proves that
/// the group holding `expected` was synced, and damage in it is not an interrupted append.
fn a_later_group_follows(bytes: &[u8], from: usize, expected: u64) -> bool {
    let mut at = from;
    while let Some(found) = bytes
        .get(at..)
        .and_then(|rest| rest.windows(4).position(|w| w == MAGIC))
    {
        let candidate = at + found;
        if let Ok(batch) = parse_batch(bytes, candidate)
            && batch.header.group_first > expected
        {
            return true;
        }
        at = candidate + 1;
    }
    false
}

fn parse_batch(bytes: &[u8], at: usize) -> Result<ScannedBatch, Damage> {
    let rest = &bytes[at..];
    let Some(raw) = rest.first_chunk::<HEADER_LEN>() else {
        return Err(Damage::Short);
    };
    let header = BatchHeader::decode(raw).map_err(|e| {
        Damage::Header(match e {
            HeaderError::BadMagic => "bad batch magic (expected \"TIDA\")".into(),
            HeaderError::BadHeaderChecksum => "batch header checksum mismatch".into(),
            HeaderError::UnknownVersion(v) => {
                format!(
                    "batch format version {v} is newer than this build understands; upgrade tidaldb"
                )
            }
        })
    })?;
    let end = HEADER_LEN + header.payload_len as usize;
    let payload = rest.get(HEADER_LEN..end).ok_or(Damage::PayloadPastEnd)?;
    let actual = header.compute_checksum(payload);
    if actual != header.checksum {
        return Err(Damage::Payload(format!(
            "batch checksum mismatch (stored {:#010x}, computed {actual:#010x})",
            header.checksum
        )));
    }
    let mut reader = Reader::new(payload);
    let mut events = Vec::with_capacity((header.event_count as usize).min(payload.len() / 32 + 1));
    while !reader.is_empty() {
        let record_at = at + HEADER_LEN + reader.pos;
        let event = decode_event(&mut reader).map_err(|detail| Damage::Records {
            at: record_at,
            detail,
        })?;
        events.push(event);
    }
    if events.len() != header.event_count as usize {
        return Err(Damage::Records {
            at,
            detail: format!(
                "batch declares {} events but holds {}",
                header.event_count,
                events.len()
            ),
        });
    }
    Ok(ScannedBatch {
        offset: at as u64,
        header,
        events,
    })
}

/// Reads every batch of a segment whose first record has seq `first_seq`.
///
/// In the last segment, damage is an interrupted append (a torn tail, which the caller
/// cuts off) when nothing after it was synced later: no valid batch of a later commit
/// group follows. That covers a short batch, a file extended with zeros, and pages of the
/// last, unsynced group written back out of order. Any other damage, and any damage in an
/// earlier segment, is corruption naming the file and offset; nothing is ever skipped.
pub fn scan_segment(path: &Path, first_seq: u64, is_last: bool) -> Result<ScannedSegment> {
    let bytes = fs::read(path).map_err(TidalError::io(format!("reading {}", path.display())))?;
    let mut batches = Vec::new();
    let mut at = 0usize;
    let mut expected = first_seq;
    while at < bytes.len() {
        let damage = match parse_batch(&bytes, at) {
            Ok(batch) => {
                at += HEADER_LEN + batch.header.payload_len as usize;
                expected += batch.events.len() as u64;
                batches.push(batch);
                continue;
            }
            Err(damage) => damage,
        };
        let torn = is_last
            && !matches!(damage, Damage::Records { .. })
            && !a_later_group_follows(&bytes, at + 1, expected);
        if torn {
            break;
        }
        let (offset, detail) = match damage {
            Damage::Short => (at, "an incomplete batch header".to_owned()),
            Damage::PayloadPastEnd => (
                at,
                "a batch whose payload runs past the end of the file".to_owned(),
            ),
            Damage::Header(d) | Damage::Payload(d) => (at, d),
            Damage::Records { at, detail } => (at, detail),
        };
        return Err(TidalError::Corruption {
            path: path.to_path_buf(),
            offset: offset as u64,
            detail: if is_last {
                format!("{detail}; a later commit group follows, so this is not a torn write")
            } else {
                detail
            },
        });
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
