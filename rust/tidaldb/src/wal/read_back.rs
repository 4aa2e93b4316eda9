//! Reading logged events back for peers, and keeping the segments they still need.
//!
//! A replica keeps only a bounded tail of its events in memory. A peer that lacks older
//! ones is sent them from here: [`Wal::read_origin_range`] reads one origin's events back
//! in bounded chunks. For that to work, a snapshot must not delete a segment holding an
//! event some peer has not acknowledged: [`Wal::snapshot_retaining`] deletes only the
//! segments whose every event the peers all have.

use super::segment::{list_segments_on, scan_segment_on, sync_dir_on};
use super::{Wal, snapshot};
use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::{Event, VersionVector};
use crate::ledger::Ledger;
use crate::schema::NodeId;

impl Wal {
    /// The committed events of `origin` with seq in `after+1 ..= upto`, consecutive from
    /// `after + 1` and at most `max` of them, as far as the log still holds them (events
    /// a replica received in a snapshot were never logged). Scans the segments in order,
    /// holding one segment in memory at a time.
    pub fn read_origin_range(
        &self,
        origin: NodeId,
        after: u64,
        upto: u64,
        max: usize,
    ) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        let mut next = after + 1;
        let segments = list_segments_on(&*self.fs, &self.dir, self.cfg.shard)?;
        let last = segments.len().saturating_sub(1);
        for (i, (first, path)) in segments.iter().enumerate() {
            if next > upto || out.len() >= max {
                break;
            }
            let scanned = scan_segment_on(&*self.fs, path, *first, i == last)?;
            let events = scanned.batches.iter().flat_map(|b| &b.events);
            for e in events.filter(|e| e.id.origin == origin) {
                if e.id.seq < next {
                    continue;
                }
                if e.id.seq != next || next > upto || out.len() >= max {
                    return Ok(out);
                }
                out.push(*e);
                next += 1;
            }
        }
        Ok(out)
    }

    /// [`snapshot`](Wal::snapshot), except that a segment is deleted only when every
    /// event in it is at or below `needed` (per origin: what every peer has
    /// acknowledged), and only with all the segments before it, so the log stays one
    /// contiguous run. `None` means no peer needs anything. Returns the snapshot's
    /// position.
    pub fn snapshot_retaining(
        &mut self,
        ledger: &Ledger,
        clock: HlcTimestamp,
        needed: Option<&VersionVector>,
    ) -> Result<u64> {
        self.commit()?;
        if self.writer.len > 0 {
            self.roll()?;
        }
        let lsn = self.next_lsn - 1;
        snapshot::write(&*self.fs, &self.dir, self.cfg.shard, lsn, ledger, clock)?;
        for (first, path) in list_segments_on(&*self.fs, &self.dir, self.cfg.shard)? {
            if first > lsn {
                break;
            }
            if let Some(needed) = needed {
                let scanned = scan_segment_on(&*self.fs, &path, first, false)?;
                let mut events = scanned.batches.iter().flat_map(|b| &b.events);
                if events.any(|e| e.id.seq > needed.get(e.id.origin)) {
                    tracing::debug!(path = %path.display(), "segment kept: a peer still lacks events in it");
                    break;
                }
            }
            self.fs
                .remove(&path)
                .map_err(TidalError::io(format!("removing {}", path.display())))?;
        }
        for (old, path) in snapshot::list_snapshots(&*self.fs, &self.dir, self.cfg.shard)? {
            if old < lsn {
                self.fs
                    .remove(&path)
                    .map_err(TidalError::io(format!("removing {}", path.display())))?;
            }
        }
        sync_dir_on(&*self.fs, &self.dir)?;
        Ok(lsn)
    }
}
