//! Opening a log: restore the newest snapshot, replay every later batch, cut a torn or
//! unfinished last commit group, and refuse a log written under another schema.

use std::path::Path;
use std::sync::Arc;

use super::segment::{list_segments_on, scan_segment_on, sync_dir_on, truncate_to};
use super::storage::Storage;
use super::{WalConfig, snapshot};
use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::Event;
use crate::ledger::Ledger;
use crate::schema::Schema;

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The log position the snapshot covered, 0 without one.
    pub snapshot_lsn: u64,
    pub events_replayed: u64,
    /// Bytes of a torn or unfinished last commit group that were cut off.
    pub torn_bytes_truncated: u64,
    /// Empty segment files left by a crash before a segment's first write, removed.
    pub empty_segments_removed: u64,
}

/// The recovered state, and where the log continues.
pub struct Recovered {
    pub ledger: Ledger,
    pub clock: HlcTimestamp,
    pub report: RecoveryReport,
    pub next_lsn: u64,
    /// The first seq of the segment to keep appending to, if one holds records.
    pub tail_segment: Option<u64>,
}

pub fn recover(
    fs: &dyn Storage,
    dir: &Path,
    cfg: &WalConfig,
    schema: &Arc<Schema>,
    schema_fingerprint: u32,
    mut on_batch: impl FnMut(&mut Ledger, &[Event]) -> Result<()>,
) -> Result<Recovered> {
    let mut report = RecoveryReport::default();
    let (mut ledger, mut clock) = match snapshot::list_snapshots(fs, dir, cfg.shard)?.last() {
        Some((lsn, path)) => {
            let restored = snapshot::read(fs, path, *lsn, schema)?;
            report.snapshot_lsn = restored.lsn;
            (restored.ledger, restored.clock)
        }
        None => (Ledger::new(schema.clone()), HlcTimestamp::default()),
    };

    let mut segments = list_segments_on(fs, dir, cfg.shard)?;
    // A segment's file is created by its first write, so an empty one is the trace of a
    // crash in between; it holds nothing, so it goes.
    let mut kept = Vec::with_capacity(segments.len());
    for (first, path) in segments.drain(..) {
        let empty = fs.len(&path).map(|len| len == 0).unwrap_or(false);
        if empty {
            tracing::warn!(path = %path.display(), "removing an empty segment left by a crash before its first write");
            fs.remove(&path)
                .map_err(TidalError::io(format!("removing {}", path.display())))?;
            report.empty_segments_removed += 1;
        } else {
            kept.push((first, path));
        }
    }

    let mut expected = match kept.first() {
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
    let mut tail_segment = None;
    for (i, (first, path)) in kept.iter().enumerate() {
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
        let scanned = scan_segment_on(fs, path, *first, i + 1 == kept.len())?;
        for batch in &scanned.batches {
            if batch.header.first_seq != expected {
                return Err(gap(expected, batch.header.first_seq, batch.offset));
            }
            if let Some(found) = batch.header.schema()
                && found != schema_fingerprint
            {
                return Err(TidalError::SchemaMismatch {
                    path: path.clone(),
                    detail: format!(
                        "the batch at offset {} was written under the schema with \
                         fingerprint {found:#010x}, the given one has {schema_fingerprint:#010x}",
                        batch.offset
                    ),
                });
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
                "cutting off the unsynced end of the log (a crash during an append)"
            );
            if scanned.valid_len == 0 {
                // Nothing whole is left: remove the file rather than leave an empty one.
                fs.remove(path)
                    .map_err(TidalError::io(format!("removing {}", path.display())))?;
                sync_dir_on(fs, dir)?;
            } else {
                truncate_to(fs, path, scanned.valid_len)?;
            }
            report.torn_bytes_truncated = scanned.torn_bytes;
        }
        if scanned.valid_len > 0 {
            tail_segment = Some(*first);
        }
    }
    Ok(Recovered {
        ledger,
        clock,
        report,
        next_lsn: expected,
        tail_segment,
    })
}
