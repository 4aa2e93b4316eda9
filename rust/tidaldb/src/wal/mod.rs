//! The write-ahead log of applied events: batches behind a 64-byte header, in segments,
//! with group commit, recovery and snapshots.

mod codec;
mod frame;
mod hard_state_file;
mod header;
mod links;
pub(crate) mod offline;
mod read_back;
mod recovery;
mod segment;
pub mod snapshot;
mod snapshot_v1;
pub mod storage;
mod sync_stats;
mod untimed_hides;
pub(crate) mod walk;

pub use codec::{Reader, decode_event, encode_event};
pub use frame::{decode_frame, encode_frame};
pub use hard_state_file::{hard_state_corrupt, hard_state_path, read_hard_state, write_hard_state};
pub use header::{BatchHeader, FORMAT_VERSION, HEADER_LEN, HeaderError, LogMark, WIRE_VERSION};
pub use links::{refuse_link, refuse_links_in_log_dir};
pub use recovery::RecoveryReport;
pub use segment::{list_segments, scan_segment, segment_name, sync_dir, sync_dir_on};
pub use storage::{Entry, RealFs, SharedStorage, Storage, StorageFile};
pub use sync_stats::{FSYNC_BUCKETS, FsyncReading, fsync_latency};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use links::refuse_links_in_log_dir_on;
use segment::{SegmentWriter, list_segments_on};

use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::{Event, VersionVector};
use crate::ledger::Ledger;
use crate::schema::{RegionId, Schema, ShardId, Timestamp};

/// When an acknowledged write is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every write call is synced before it returns. Nothing acknowledged is ever lost.
    #[default]
    Immediate,
    /// Writes are synced in groups: once `max_batch` are pending, or the oldest has waited
    /// `max_delay`. A crash loses the writes not yet synced: normally those of the last
    /// `max_delay`, but longer if the process was stalled (starved of CPU, or busy with a
    /// long call), since no thread can sync while the process does not run. Whatever the
    /// scheduling, an accepted write call that ends after an earlier write's `max_delay`
    /// has passed syncs it before returning. `flush()` syncs now.
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

/// The fingerprint of `schema` stamped into every batch: crc32c of its encoding. An event
/// names its signal by index, so replaying a log under another schema would relabel it;
/// recovery refuses a batch whose fingerprint is not the open schema's.
pub fn schema_fingerprint(schema: &Schema) -> Result<u32> {
    let bytes = postcard::to_stdvec(schema)
        .map_err(|e| TidalError::InvalidSchema(format!("the schema does not encode: {e}")))?;
    Ok(crc32c::crc32c(&bytes))
}

/// A full batch of the commit group being filled, waiting for its header.
#[derive(Debug)]
struct FullBatch {
    first_lsn: u64,
    events: u32,
    payload: Vec<u8>,
}

/// The open log of one (tenant, shard).
#[derive(Debug)]
pub struct Wal {
    fs: SharedStorage,
    dir: PathBuf,
    cfg: WalConfig,
    writer: SegmentWriter,
    next_lsn: u64,
    /// Records of the batch being filled.
    pending: Vec<u8>,
    pending_events: u32,
    pending_first_lsn: u64,
    /// Earlier full batches of the same commit group. Their headers are written at commit,
    /// when it is known which batch ends the group.
    full: Vec<FullBatch>,
    full_events: usize,
    /// Stamped into every batch, checked by recovery.
    schema_fingerprint: u32,
    /// Set by a failed write or sync: memory is then ahead of the file, so nothing more
    /// may be appended behind the gap. Reopening recovers.
    failed: Option<String>,
    /// The first seq of the segment appended to now (events land in it at the next commit:
    /// segments roll only after a commit).
    segment_first: u64,
    /// The highest seq of each origin in each segment this log started itself, by first
    /// seq, so that a snapshot can tell which segments peers still need without decoding
    /// them. Segments it found at open are scanned when asked (see `read_back`).
    segment_tops: BTreeMap<u64, VersionVector>,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, restoring the newest snapshot and replaying
    /// every later event into the returned ledger, one batch at a time.
    pub fn open(
        dir: &Path,
        cfg: WalConfig,
        schema: &Arc<Schema>,
        on_batch: impl FnMut(&mut Ledger, &[Event]) -> Result<()>,
    ) -> Result<(Wal, Ledger, HlcTimestamp, RecoveryReport)> {
        Wal::open_on(RealFs::shared(), dir, cfg, schema, on_batch)
    }

    /// [`open`](Wal::open) on the storage `fs`, which the log then keeps using.
    pub fn open_on(
        fs: SharedStorage,
        dir: &Path,
        cfg: WalConfig,
        schema: &Arc<Schema>,
        on_batch: impl FnMut(&mut Ledger, &[Event]) -> Result<()>,
    ) -> Result<(Wal, Ledger, HlcTimestamp, RecoveryReport)> {
        let schema_fingerprint = schema_fingerprint(schema)?;
        refuse_links_in_log_dir_on(&*fs, dir)?;
        fs.create_dir_all(dir)
            .map_err(TidalError::io(format!("creating {}", dir.display())))?;
        let r = recovery::recover(&*fs, dir, &cfg, schema, schema_fingerprint, on_batch)?;
        let tail = r.tail_segment.unwrap_or(r.next_lsn);
        let writer = SegmentWriter::open(&fs, dir, cfg.shard, tail)?;
        let mut segment_tops = BTreeMap::new();
        if writer.len == 0 {
            // A fresh segment: everything in it will be appended by this log.
            segment_tops.insert(tail, VersionVector::default());
        }
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            cfg,
            writer,
            next_lsn: r.next_lsn,
            pending: Vec::new(),
            pending_events: 0,
            pending_first_lsn: r.next_lsn,
            full: Vec::new(),
            full_events: 0,
            schema_fingerprint,
            failed: None,
            segment_first: tail,
            segment_tops,
        };
        Ok((wal, r.ledger, r.clock, r.report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The storage the log lives on.
    pub fn storage(&self) -> &SharedStorage {
        &self.fs
    }

    /// Buffers one event for the next commit.
    #[inline]
    pub fn append(&mut self, event: &Event) {
        if self.pending_events == 0 {
            self.pending_first_lsn = self.next_lsn;
        }
        encode_event(event, &mut self.pending);
        if let Some(top) = self.segment_tops.get_mut(&self.segment_first) {
            top.advance(event.id.origin, event.id.seq);
        }
        self.pending_events += 1;
        self.next_lsn += 1;
        if self.pending.len() >= MAX_BATCH_PAYLOAD {
            self.close_batch();
        }
    }

    /// Events appended but not yet committed.
    pub fn uncommitted(&self) -> usize {
        self.pending_events as usize + self.full_events
    }

    /// Sets the filled batch aside; its header is written at commit.
    fn close_batch(&mut self) {
        if self.pending_events == 0 {
            return;
        }
        self.full.push(FullBatch {
            first_lsn: self.pending_first_lsn,
            events: self.pending_events,
            payload: std::mem::take(&mut self.pending),
        });
        self.full_events += self.pending_events as usize;
        self.pending_events = 0;
    }

    /// The commit group as bytes: every batch behind its header, the last one flagged as
    /// ending the group, so that recovery can tell a whole group from a cut one.
    fn seal_group(&mut self) -> Vec<u8> {
        self.close_batch();
        let batches = std::mem::take(&mut self.full);
        self.full_events = 0;
        let size = batches.iter().map(|b| HEADER_LEN + b.payload.len()).sum();
        let mut bytes = Vec::with_capacity(size);
        let now = Timestamp::now().as_nanos() as u64;
        let group_first = batches.first().map_or(0, |b| b.first_lsn);
        for (i, batch) in batches.iter().enumerate() {
            let mark = LogMark {
                group_first,
                ends_group: i + 1 == batches.len(),
                schema: self.schema_fingerprint,
            };
            let place = (self.cfg.shard, self.cfg.region);
            let header = BatchHeader::seal_logged(
                batch.first_lsn,
                batch.events,
                mark,
                &batch.payload,
                now,
                place,
            );
            bytes.extend_from_slice(&header.encode());
            bytes.extend_from_slice(&batch.payload);
        }
        // Keep the first buffer's capacity for the next group: it is the largest one.
        if let Some(first) = batches.into_iter().next() {
            self.pending = first.payload;
            self.pending.clear();
        }
        bytes
    }

    /// Writes the commit group (every pending batch) with one write and one sync. After a
    /// failure the batches are dropped, never retried (the caller was told they failed),
    /// and every later commit fails too, so that nothing lands behind the gap.
    pub fn commit(&mut self) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(TidalError::Unavailable(format!(
                "an earlier WAL write failed ({why}); reopen the database to recover from its log"
            )));
        }
        if self.uncommitted() == 0 {
            return Ok(());
        }
        let batches = self.seal_group();
        if let Err(e) = self.writer.write(&batches).and_then(|_| self.writer.sync()) {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        if self.writer.len >= self.cfg.segment_bytes
            && let Err(e) = self.roll()
        {
            // The batches are durable; the segment just grows until a later roll works.
            tracing::warn!(error = %e, "could not start a new segment; will retry");
        }
        Ok(())
    }

    /// Starts a new segment at the next seq; its file appears with the first write.
    fn roll(&mut self) -> Result<()> {
        self.writer = SegmentWriter::open(&self.fs, &self.dir, self.cfg.shard, self.next_lsn)?;
        debug_assert_eq!(self.writer.len, 0, "a rolled segment starts empty");
        self.segment_first = self.next_lsn;
        self.segment_tops
            .insert(self.segment_first, VersionVector::default());
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
        snapshot::write(&*self.fs, &self.dir, self.cfg.shard, lsn, ledger, clock)?;
        for (first, path) in list_segments_on(&*self.fs, &self.dir, self.cfg.shard)? {
            if first <= lsn {
                self.remove(&path)?;
                self.segment_tops.remove(&first);
            }
        }
        for (old, path) in snapshot::list_snapshots(&*self.fs, &self.dir, self.cfg.shard)? {
            if old < lsn {
                self.remove(&path)?;
            }
        }
        sync_dir_on(&*self.fs, &self.dir)?;
        Ok(lsn)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.fs
            .remove(path)
            .map_err(TidalError::io(format!("removing {}", path.display())))
    }

    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }
}
