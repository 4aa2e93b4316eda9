//! The write-ahead log of applied events: batches behind a 64-byte header, in segments,
//! with group commit, recovery and snapshots.

mod codec;
mod frame;
mod header;
mod read_back;
mod recovery;
mod segment;
pub mod snapshot;
mod snapshot_v1;

pub use codec::{Reader, decode_event, encode_event};
pub use frame::{decode_frame, encode_frame};
pub use header::{BatchHeader, FORMAT_VERSION, HEADER_LEN, HeaderError};
pub use recovery::RecoveryReport;
pub use segment::{list_segments, scan_segment, segment_name, sync_dir};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use segment::SegmentWriter;

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
    /// The first seq of the commit group being sealed, stamped into each of its batches.
    group_first: Option<u64>,
    /// Set by a failed write or sync: memory is then ahead of the file, so nothing more
    /// may be appended behind the gap. Reopening recovers.
    failed: Option<String>,
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
        fs::create_dir_all(dir).map_err(TidalError::io(format!("creating {}", dir.display())))?;
        let r = recovery::recover(dir, &cfg, schema, on_batch)?;
        let writer = SegmentWriter::create(dir, cfg.shard, r.tail_segment.unwrap_or(r.next_lsn))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            cfg,
            writer,
            next_lsn: r.next_lsn,
            pending: Vec::new(),
            pending_events: 0,
            pending_first_lsn: r.next_lsn,
            sealed: Vec::new(),
            sealed_events: 0,
            group_first: None,
            failed: None,
        };
        Ok((wal, r.ledger, r.clock, r.report))
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
        let group_first = *self.group_first.get_or_insert(self.pending_first_lsn);
        let header = BatchHeader::seal(
            self.pending_first_lsn,
            self.pending_events,
            group_first,
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

    /// Writes every pending batch with one write and one sync: group commit. After a
    /// failure the batches are dropped, never retried (the caller was told they failed),
    /// and every later commit fails too, so that nothing lands behind the gap.
    pub fn commit(&mut self) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(TidalError::Unavailable(format!(
                "an earlier WAL write failed ({why}); reopen the database to recover from its log"
            )));
        }
        self.seal();
        self.group_first = None;
        if self.sealed.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.sealed);
        self.sealed_events = 0;
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
