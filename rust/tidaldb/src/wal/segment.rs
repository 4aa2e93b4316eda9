//! Segment files: names, appending batches, and scanning them back.

use std::path::{Path, PathBuf};

use super::codec::{Reader, decode_event};
use super::header::{BatchHeader, HEADER_LEN, HeaderError, MAGIC};
use super::storage::{RealFs, SharedStorage, Storage, StorageFile};
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
    list_segments_on(&RealFs, dir, shard)
}

/// [`list_segments`] on `fs`.
pub(super) fn list_segments_on(
    fs: &dyn Storage,
    dir: &Path,
    shard: ShardId,
) -> Result<Vec<(u64, PathBuf)>> {
    let prefix = format!("shard-{:05}-", shard.0);
    let mut out = Vec::new();
    let entries = fs
        .list_dir(dir)
        .map_err(TidalError::io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let Some(seq) = entry
            .name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".wal"))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path));
    }
    out.sort();
    Ok(out)
}

/// Syncs a directory so that a created, renamed or removed entry survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    sync_dir_on(&RealFs, dir)
}

/// [`sync_dir`] on `fs`.
pub fn sync_dir_on(fs: &dyn Storage, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(TidalError::io(format!(
        "syncing directory {}",
        dir.display()
    )))
}

/// The tail segment. Its file is created by the first write, not before, so that opening
/// and closing a database without writing leaves no empty segment behind: an empty segment
/// then only ever means a crash between creating the file and writing to it.
#[derive(Debug)]
pub struct SegmentWriter {
    pub path: PathBuf,
    dir: PathBuf,
    fs: SharedStorage,
    file: Option<Box<dyn StorageFile>>,
    pub len: u64,
}

impl SegmentWriter {
    /// The segment whose first record has seq `first_seq`: opened for appending if it
    /// exists (the tail recovery kept), otherwise created by the first write.
    pub fn open(fs: &SharedStorage, dir: &Path, shard: ShardId, first_seq: u64) -> Result<Self> {
        let path = dir.join(segment_name(shard, first_seq));
        let (file, len) = match fs.open_append(&path) {
            Ok(file) => {
                let len = file
                    .len()
                    .map_err(TidalError::io(format!("reading {}", path.display())))?;
                (Some(file), len)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
            Err(e) => {
                return Err(TidalError::Io {
                    context: format!("opening segment {}", path.display()),
                    source: e,
                });
            }
        };
        Ok(SegmentWriter {
            path,
            dir: dir.to_path_buf(),
            fs: fs.clone(),
            file,
            len,
        })
    }

    /// The file, created (never following a link: it must not exist yet) and its
    /// directory entry synced on first use.
    fn file(&mut self) -> Result<&mut Box<dyn StorageFile>> {
        if self.file.is_none() {
            let file = self
                .fs
                .create_new(&self.path)
                .map_err(TidalError::io(format!(
                    "creating segment {}",
                    self.path.display()
                )))?;
            sync_dir_on(&*self.fs, &self.dir)?;
            self.file = Some(file);
        }
        self.file.as_mut().ok_or_else(|| {
            TidalError::Unavailable(format!("segment {} is not open", self.path.display()))
        })
    }

    /// Appends `bytes`, or on failure cuts the file back to where it was, so that a failed
    /// batch leaves no partial bytes for a later append to land behind.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let len = self.len;
        let path = self.path.clone();
        let file = self.file()?;
        if let Err(e) = file.write_all(bytes) {
            if let Err(cut) = file.set_len(len) {
                tracing::error!(error = %cut, path = %path.display(), "could not cut back a failed append");
            }
            return Err(TidalError::Io {
                context: format!("appending to {}", path.display()),
                source: e,
            });
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Syncs what was written; nothing to do before the first write.
    pub fn sync(&mut self) -> Result<()> {
        match &mut self.file {
            Some(file) => file
                .sync()
                .map_err(TidalError::io(format!("syncing {}", self.path.display()))),
            None => Ok(()),
        }
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
pub(super) enum Damage {
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

impl Damage {
    /// Records that fail to decode under valid checksums were written wrong: unlike the
    /// other kinds, they can never be an interrupted append.
    pub(super) fn can_be_torn(&self) -> bool {
        !matches!(self, Damage::Records { .. })
    }

    /// The byte offset to report and what is wrong, for damage found in the batch at `at`.
    pub(super) fn describe(self, at: usize) -> (usize, String) {
        match self {
            Damage::Short => (at, "an incomplete batch header".to_owned()),
            Damage::PayloadPastEnd => (
                at,
                "a batch whose payload runs past the end of the file".to_owned(),
            ),
            Damage::Header(d) | Damage::Payload(d) => (at, d),
            Damage::Records { at, detail } => (at, detail),
        }
    }
}

/// True when some whole, valid batch after `from` belongs to a commit group that started
/// after seq `expected`. Groups are synced one after another, so such a batch proves that
/// the group holding `expected` was synced, and damage in it is not an interrupted append.
pub(super) fn a_later_group_follows(bytes: &[u8], from: usize, expected: u64) -> bool {
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

pub(super) fn parse_batch(bytes: &[u8], at: usize) -> Result<ScannedBatch, Damage> {
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
    scan_segment_on(&RealFs, path, first_seq, is_last)
}

/// [`scan_segment`] on `fs`.
pub(super) fn scan_segment_on(
    fs: &dyn Storage,
    path: &Path,
    first_seq: u64,
    is_last: bool,
) -> Result<ScannedSegment> {
    let bytes = fs
        .read(path)
        .map_err(TidalError::io(format!("reading {}", path.display())))?;
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
        let torn =
            is_last && damage.can_be_torn() && !a_later_group_follows(&bytes, at + 1, expected);
        if torn {
            break;
        }
        let (offset, detail) = damage.describe(at);
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
    let valid_len = cut_unfinished_group(path, &mut batches, at as u64, is_last)?;
    Ok(ScannedSegment {
        batches,
        valid_len,
        torn_bytes: bytes.len() as u64 - valid_len,
    })
}

/// Removes the batches of a commit group whose last batch is not on disk, and returns
/// where the segment's whole groups end.
///
/// A group is written with one write and one sync, and acknowledged only after both, so
/// a group without its last batch was never acknowledged: it is cut whole, whether its
/// later batches are torn or missing, and nothing of it is replayed. Only the last
/// segment can hold such a group (a segment is rolled only after a commit); anywhere
/// else it is corruption.
fn cut_unfinished_group(
    path: &Path,
    batches: &mut Vec<ScannedBatch>,
    whole_len: u64,
    is_last: bool,
) -> Result<u64> {
    let Some(last) = batches.last() else {
        return Ok(whole_len);
    };
    if last.header.ends_group() {
        return Ok(whole_len);
    }
    let group = last.header.group_first;
    if !is_last {
        return Err(TidalError::Corruption {
            path: path.to_path_buf(),
            offset: last.offset,
            detail: format!(
                "the commit group starting at seq {group} ends without its last batch, \
                 yet a later segment follows"
            ),
        });
    }
    let mut cut_at = whole_len;
    while let Some(batch) = batches.pop_if(|b| b.header.group_first == group) {
        cut_at = batch.offset;
        if batch.header.first_seq == group {
            break;
        }
    }
    // Only one group, the last, can be unfinished: one before it was followed by a sync.
    if let Some(before) = batches.last().filter(|b| !b.header.ends_group()) {
        return Err(TidalError::Corruption {
            path: path.to_path_buf(),
            offset: before.offset,
            detail: format!(
                "the commit group starting at seq {} ends without its last batch, \
                 yet a later group follows",
                before.header.group_first
            ),
        });
    }
    Ok(cut_at)
}

/// Cuts a torn tail off the last segment, so that new batches follow the last whole one.
pub fn truncate_to(fs: &dyn Storage, path: &Path, len: u64) -> Result<()> {
    fs.truncate(path, len)
        .map_err(TidalError::io(format!("truncating {}", path.display())))
}
