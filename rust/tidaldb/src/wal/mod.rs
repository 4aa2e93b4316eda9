//! The write-ahead log of applied events: batches behind a 64-byte header, in segments,
//! with group commit, recovery and snapshots.

mod codec;
mod header;
mod segment;
pub mod snapshot;

pub use codec::{Reader, decode_event, encode_event};
pub use header::{BatchHeader, FORMAT_VERSION, HEADER_LEN, HeaderError};
pub use segment::{list_segments, scan_segment, segment_name, sync_dir};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use segment::{SegmentWriter, truncate_to};

use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::Event;
use crate::ledger::Ledger;
use crate::schema::{RegionId, Schema, ShardId, Timestamp};

/// When an acknowledged write is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every write call is synced before it returns. Nothing acknowledged is ever lost.
    #[default]
    Immediate,
    /// Writes are synced in groups: once `max_batch` are pending, or the oldest has waited
    /// `max_delay`. A crash can lose the writes of the last `max_delay`; `flush()` syncs now.
    Batched {
        max_batch: usize,
        max_delay: Duration,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct WalConfig {
    pub shard: ShardId,
    pub region: RegionId,
    /// A segment is closed and a new one started once it passes this size.
    pub segment_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            shard: ShardId(0),
            region: RegionId(0),
            segment_bytes: 64 << 20,
        }
    }
}

/// A batch payload is sealed once it passes this size, so headers stay within `u32`.
const MAX_BATCH_PAYLOAD: usize = 8 << 20;

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The log position the snapshot covered, 0 without one.
    pub snapshot_lsn: u64,
    pub events_replayed: u64,
    /// Bytes of a torn last batch that were cut off.
    pub torn_bytes_truncated: u64,
}

/// The open log of one (tenant, shard).
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    cfg: WalConfig,
    writer: SegmentWriter,
    next_lsn: u64,
    /// Records of the batch being filled.
    pending: Vec<u8>,
    pending_events: u32,
    pending_first_lsn: u64,
    /// Whole batches (header + payload) sealed but not yet written, and their events.
    sealed: Vec<u8>,
    sealed_events: usize,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, restoring the newest snapshot and replaying
    /// every later event into the returned ledger, one batch at a time.
    pub fn open(
        dir: &Path,
        cfg: WalConfig,
        schema: &Arc<Schema>,
        mut on_batch: impl FnMut(&mut Ledger, &[Event]) -> Result<()>,
    ) -> Result<(Wal, Ledger, HlcTimestamp, RecoveryReport)> {
        fs::create_dir_all(dir).map_err(TidalError::io(format!("creating {}", dir.display())))?;
        let mut report = RecoveryReport::default();
        let snapshots = snapshot::list_snapshots(dir, cfg.shard)?;
        let (mut ledger, mut clock) = match snapshots.last() {
            Some((lsn, path)) => {
                let restored = snapshot::read(path, *lsn, schema)?;
                report.snapshot_lsn = restored.lsn;
                (restored.ledger, restored.clock)
            }
            None => (Ledger::new(schema.clone()), HlcTimestamp::default()),
        };

        let segments = list_segments(dir, cfg.shard)?;
        let mut expected = match segments.first() {
            Some((first, path)) if *first > report.snapshot_lsn + 1 => {
                return Err(TidalError::Corruption {
                    path: path.clone(),
                    offset: 0,
                    detail: format!(
                        "the log starts at seq {first} but the snapshot covers only through {}; \
                         a segment is missing",
                        report.snapshot_lsn
                    ),
                });
            }
            Some((first, _)) => *first,
            None => report.snapshot_lsn + 1,
        };
        for (i, (first, path)) in segments.iter().enumerate() {
            let last_segment = i + 1 == segments.len();
            let scanned = scan_segment(path, last_segment)?;
            let corruption = |offset: u64, detail: String| TidalError::Corruption {
                path: path.clone(),
                offset,
                detail,
            };
            let gap = |expected: u64, found: u64, offset: u64| {
                corruption(
                    offset,
                    format!("expected log seq {expected}, found {found}: records are missing"),
                )
            };
            if *first != expected {
                return Err(gap(expected, *first, 0));
            }
            for batch in &scanned.batches {
                if batch.header.first_seq != expected {
                    return Err(gap(expected, batch.header.first_seq, batch.offset));
                }
                // Records at or below the snapshot's position are already in the ledger.
                let skip = (report.snapshot_lsn + 1).saturating_sub(expected) as usize;
                let fresh = &batch.events[skip.min(batch.events.len())..];
                if !fresh.is_empty() {
                    // The checksum passed, so a record the ledger refuses was written wrong.
                    on_batch(&mut ledger, fresh).map_err(|e| {
                        corruption(batch.offset, format!("a logged record is invalid: {e}"))
                    })?;
                    for e in fresh {
                        clock = clock.max(e.hlc);
                    }
                    report.events_replayed += fresh.len() as u64;
                }
                expected += batch.events.len() as u64;
            }
            if scanned.torn_bytes > 0 {
                tracing::warn!(
                    path = %path.display(),
                    offset = scanned.valid_len,
                    bytes = scanned.torn_bytes,
                    "truncating a torn batch at the end of the log (a crash during append)"
                );
                truncate_to(path, scanned.valid_len)?;
                report.torn_bytes_truncated = scanned.torn_bytes;
            }
        }
        let writer = match segments.last() {
            Some((first, _)) => SegmentWriter::create(dir, cfg.shard, *first)?,
            None => SegmentWriter::create(dir, cfg.shard, expected)?,
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            cfg,
            writer,
            next_lsn: expected,
            pending: Vec::new(),
            pending_events: 0,
            pending_first_lsn: expected,
            sealed: Vec::new(),
            sealed_events: 0,
        };
        Ok((wal, ledger, clock, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Buffers one event for the next commit.
    #[inline]
    pub fn append(&mut self, event: &Event) {
        if self.pending_events == 0 {
            self.pending_first_lsn = self.next_lsn;
        }
        encode_event(event, &mut self.pending);
        self.pending_events += 1;
        self.next_lsn += 1;
        if self.pending.len() >= MAX_BATCH_PAYLOAD {
            self.seal();
        }
    }

    /// Events appended but not yet committed.
    pub fn uncommitted(&self) -> usize {
        self.pending_events as usize + self.sealed_events
    }

    fn seal(&mut self) {
        if self.pending_events == 0 {
            return;
        }
        let header = BatchHeader::seal(
            self.pending_first_lsn,
            self.pending_events,
            &self.pending,
            Timestamp::now().as_nanos() as u64,
            self.cfg.shard,
            self.cfg.region,
        );
        self.sealed.extend_from_slice(&header.encode());
        self.sealed.extend_from_slice(&self.pending);
        self.sealed_events += self.pending_events as usize;
        self.pending.clear();
        self.pending_events = 0;
    }

    /// Writes every pending batch with one write and one sync: group commit. The batches
    /// are handed over either way: after an error they are not retried, because the caller
    /// was told they failed (the driver then refuses further writes).
    pub fn commit(&mut self) -> Result<()> {
        self.seal();
        if self.sealed.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.sealed);
        self.sealed_events = 0;
        self.writer.write(&batches)?;
        self.writer.sync()?;
        if self.writer.len >= self.cfg.segment_bytes {
            self.roll()?;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        self.writer = SegmentWriter::create(&self.dir, self.cfg.shard, self.next_lsn)?;
        Ok(())
    }

    /// Snapshots `ledger` (which must reflect every appended event), then removes the
    /// segments and snapshots it makes redundant. Replay after a restart starts here.
    pub fn snapshot(&mut self, ledger: &Ledger, clock: HlcTimestamp) -> Result<u64> {
        self.commit()?;
        if self.writer.len > 0 {
            self.roll()?;
        }
        let lsn = self.next_lsn - 1;
        snapshot::write(&self.dir, self.cfg.shard, lsn, ledger, clock)?;
        for (first, path) in list_segments(&self.dir, self.cfg.shard)? {
            if first <= lsn {
                fs::remove_file(&path)
                    .map_err(TidalError::io(format!("removing {}", path.display())))?;
            }
        }
        for (old, path) in snapshot::list_snapshots(&self.dir, self.cfg.shard)? {
            if old < lsn {
                fs::remove_file(&path)
                    .map_err(TidalError::io(format!("removing {}", path.display())))?;
            }
        }
        sync_dir(&self.dir)?;
        Ok(lsn)
    }

    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }
}
