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
                let lacking = match self.segment_tops.get(&first) {
                    Some(top) => top.iter().any(|(origin, seq)| seq > needed.get(origin)),
                    None => {
                        // Found at open: its contents are known only by reading it.
                        let scanned = scan_segment_on(&*self.fs, &path, first, false)?;
                        let mut events = scanned.batches.iter().flat_map(|b| &b.events);
                        events.any(|e| e.id.seq > needed.get(e.id.origin))
                    }
                };
                if lacking {
                    tracing::debug!(path = %path.display(), "segment kept: a peer still lacks events in it");
                    break;
                }
            }
            self.fs
                .remove(&path)
                .map_err(TidalError::io(format!("removing {}", path.display())))?;
            self.segment_tops.remove(&first);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::event::{EventBody, EventId, TenantId};
    use crate::schema::{DecaySpec, EntityId, EntityKind, Schema, SignalIdx, Timestamp};
    use crate::wal::WalConfig;

    fn event(origin: u16, seq: u64) -> Event {
        Event {
            id: EventId {
                origin: NodeId(origin),
                seq,
            },
            hlc: HlcTimestamp {
                wall_ns: seq,
                logical: 0,
                node_id: origin,
            },
            tenant: TenantId(0),
            body: EventBody::Signal {
                claims_entity: false,
                signal: SignalIdx(0),
                entity: EntityId(seq),
                weight: 1.0,
                ts: Timestamp::from_nanos(1_700_000_000_000_000_000).unwrap(),
            },
            client: None,
        }
    }

    fn open(dir: &std::path::Path) -> (Wal, Ledger) {
        let schema = Arc::new(
            Schema::builder()
                .signal("count", EntityKind::Item, DecaySpec::Permanent)
                .add()
                .build()
                .unwrap(),
        );
        let cfg = WalConfig {
            segment_bytes: 512,
            ..WalConfig::default()
        };
        let (wal, ledger, _, _) =
            Wal::open(dir, cfg, &schema, |l, events| l.apply_batch(events)).unwrap();
        (wal, ledger)
    }

    /// Segments left after a snapshot that keeps what a peer at `needed` lacks.
    fn kept_after_snapshot(reopen: bool, needed: &VersionVector) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, mut ledger) = open(dir.path());
        // Two origins interleaved, committed in small groups so that segments roll.
        for k in 1..=60 {
            let batch = [event(1, k), event(2, k)];
            ledger.apply_batch(&batch).unwrap();
            batch.iter().for_each(|e| wal.append(e));
            if k % 3 == 0 {
                wal.commit().unwrap();
            }
        }
        wal.commit().unwrap();
        if reopen {
            drop(wal);
            (wal, ledger) = open(dir.path());
        }
        wal.snapshot_retaining(&ledger, HlcTimestamp::default(), Some(needed))
            .unwrap();
        list_segments_on(&*wal.fs, dir.path(), wal.cfg.shard)
            .unwrap()
            .into_iter()
            .map(|(first, _)| first)
            .collect()
    }

    #[test]
    fn the_segments_a_peer_still_needs_are_kept_whether_known_or_scanned() {
        let mut needed = VersionVector::default();
        needed.advance(NodeId(1), 60);
        needed.advance(NodeId(2), 25);
        // Segments this log wrote are judged from what it recorded while appending;
        // segments it found at open, by reading them. Both must decide alike.
        let known = kept_after_snapshot(false, &needed);
        let scanned = kept_after_snapshot(true, &needed);
        assert_eq!(known, scanned);
        assert!(
            !known.is_empty(),
            "origin 2's seqs above 25 are still needed"
        );
        // Every event from seq 26 of origin 2 on is still on disk: the first kept segment
        // starts at or before its position (origins alternate, so at 2 * 26 - 1 = 51).
        assert!(known[0] <= 51, "kept from {known:?}");
        needed.advance(NodeId(2), 60);
        assert_eq!(kept_after_snapshot(false, &needed), Vec::<u64>::new());
    }
}
