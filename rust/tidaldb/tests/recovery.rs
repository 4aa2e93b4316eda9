//! Recovery from the log. Here: one write call is all or nothing across a crash, however
//! many WAL batches it spans. `persistence_model`: random schedules of writes, snapshots
//! and reopens read like a twin that never stopped. `log_schema`: the log is refused under
//! another schema. WAL format, torn tails and snapshots are in `wal_recovery.rs`; a writer
//! killed mid-ingest in `killed_writer.rs`; a write that fails on disk in `io_failure.rs`
//! (each re-runs its binary as a child, so each has a binary of its own).
//!
//! A bulk call of 200,000 events is one commit group of two batches (a batch is sealed
//! past 8 MiB). The oracle is the set of acknowledged writes: the small writes before
//! the bulk call. Whatever happens to the bulk call's batches before it is acknowledged
//! (its second batch torn, missing, or half written), recovery keeps exactly those
//! acknowledged writes and none of the bulk call's events.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
#[path = "recovery/log_schema.rs"]
mod log_schema;
#[path = "recovery/persistence_model.rs"]
mod persistence_model;
use common::{T0, ts};
use tidaldb::wal::{list_segments, scan_segment};
use tidaldb::{DecaySpec, EntityId, EntityKind, Schema, ShardId, TidalDb, Timestamp};

const ACKED: u64 = 30;
const BULK: usize = 200_000;

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(3600))
        .add()
        .signal("count", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap()
}

fn open(dir: &Path) -> TidalDb {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .open()
        .unwrap()
}

fn segment(dir: &Path) -> PathBuf {
    let segs = list_segments(&dir.join("wal"), ShardId(0)).unwrap();
    assert_eq!(segs.len(), 1, "one segment");
    segs[0].1.clone()
}

/// `ACKED` acknowledged "count" writes, then one bulk "view" call of `BULK` events, then
/// `after` more acknowledged writes. Returns the segment and the offsets of the bulk
/// call's batches.
fn log_with_a_bulk_call(dir: &Path, after: u64) -> (PathBuf, Vec<u64>) {
    let db = open(dir);
    for i in 0..ACKED {
        db.signal("count", EntityId(i % 7), 1.0, Some(ts(T0)))
            .unwrap();
    }
    let ids: Vec<EntityId> = (0..BULK as u64).map(|i| EntityId(i % 1000)).collect();
    let times: Vec<Timestamp> = (0..BULK as i64).map(|i| ts(T0 + i * 1000)).collect();
    db.signal_batch("view", &ids, &vec![1.0; BULK], Some(&times))
        .unwrap();
    for i in 0..after {
        db.signal("count", EntityId(i % 7), 1.0, Some(ts(T0)))
            .unwrap();
    }
    drop(db);
    let seg = segment(dir);
    let bulk: Vec<(u64, usize)> = scan_segment(&seg, 1, true)
        .unwrap()
        .batches
        .iter()
        .filter(|b| b.header.first_seq > ACKED && b.header.first_seq <= ACKED + BULK as u64)
        .map(|b| (b.offset, b.events.len()))
        .collect();
    assert_eq!(bulk.len(), 2, "the bulk call spans two batches");
    assert_eq!(
        bulk.iter().map(|b| b.1).sum::<usize>(),
        BULK,
        "and holds all its events"
    );
    (seg, bulk.iter().map(|b| b.0).collect())
}

/// Reopens and checks that exactly the acknowledged writes survived, and that the log
/// ends where the bulk call began and takes new writes.
fn assert_only_the_acknowledged_writes_survive(dir: &Path, seg: &Path, bulk_at: u64, what: &str) {
    let at = ts(T0 + 10_000 * 1_000_000_000);
    let db = open(dir);
    assert_eq!(db.events_applied().unwrap(), ACKED, "{what}");
    let counted: f64 = (0..7)
        .map(|e| db.read_decay_score_at(EntityId(e), "count", at).unwrap())
        .sum();
    assert_eq!(counted, ACKED as f64, "{what}: every acknowledged write");
    for e in [0, 1, 999] {
        assert_eq!(
            db.read_decay_score_at(EntityId(e), "view", at).unwrap(),
            0.0,
            "{what}: nothing of the unacknowledged bulk call"
        );
    }
    assert_eq!(fs::metadata(seg).unwrap().len(), bulk_at, "{what}");
    db.signal("count", EntityId(0), 1.0, Some(ts(T0))).unwrap();
    drop(db);
    assert_eq!(open(dir).events_applied().unwrap(), ACKED + 1, "{what}");
}

#[test]
fn a_bulk_call_whose_second_batch_is_torn_or_missing_is_cut_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, bulk) = log_with_a_bulk_call(dir.path(), 0);
    let whole = fs::read(&seg).unwrap();
    let (first, second) = (bulk[0] as usize, bulk[1] as usize);

    // every batch present: the bulk call is applied in full
    assert_eq!(
        open(dir.path()).events_applied().unwrap(),
        ACKED + BULK as u64
    );

    let cases: [(&str, Vec<u8>); 4] = [
        ("the last batch is missing", whole[..second].to_vec()),
        (
            "the last batch's header is cut",
            whole[..second + 40].to_vec(),
        ),
        (
            "the last batch is cut mid-payload",
            whole[..second + 4096].to_vec(),
        ),
        ("the last batch's pages never reached the disk (zeros)", {
            let mut b = whole.clone();
            b[second + 64 + 512..].fill(0);
            b
        }),
    ];
    for (what, bytes) in cases {
        let copy = tempfile::tempdir().unwrap();
        fs::create_dir_all(copy.path().join("wal")).unwrap();
        fs::copy(
            dir.path().join("schema.json"),
            copy.path().join("schema.json"),
        )
        .unwrap();
        let copied = copy.path().join("wal").join(seg.file_name().unwrap());
        fs::write(&copied, &bytes).unwrap();
        assert_only_the_acknowledged_writes_survive(copy.path(), &copied, first as u64, what);
    }
}

#[test]
fn a_bulk_call_alone_in_its_segment_is_cut_with_the_file() {
    // The bulk call begins a fresh segment: cut whole, the segment holds nothing, and it
    // is removed rather than left empty.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .segment_bytes(1)
            .open()
            .unwrap();
        db.signal("count", EntityId(0), 1.0, Some(ts(T0))).unwrap();
        let ids: Vec<EntityId> = (0..BULK as u64).map(EntityId).collect();
        db.signal_batch("view", &ids, &vec![1.0; BULK], None)
            .unwrap();
    }
    let segs = list_segments(&dir.path().join("wal"), ShardId(0)).unwrap();
    assert_eq!(segs.len(), 2, "the bulk call has a segment of its own");
    let bulk_seg = &segs[1].1;
    let batches = scan_segment(bulk_seg, segs[1].0, true).unwrap().batches;
    assert_eq!(batches.len(), 2);
    let bytes = fs::read(bulk_seg).unwrap();
    fs::write(bulk_seg, &bytes[..batches[1].offset as usize]).unwrap();

    let db = open(dir.path());
    assert_eq!(db.events_applied().unwrap(), 1);
    assert!(!bulk_seg.exists(), "the emptied segment is removed");
    db.signal("count", EntityId(0), 1.0, Some(ts(T0))).unwrap();
    drop(db);
    assert_eq!(open(dir.path()).events_applied().unwrap(), 2);
}

#[test]
fn damage_in_a_bulk_calls_second_batch_is_corruption_once_a_later_group_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, bulk) = log_with_a_bulk_call(dir.path(), 1);
    let mut bytes = fs::read(&seg).unwrap();
    let second = bulk[1] as usize;
    bytes[second + 64 + 100..second + 64 + 200].fill(0);
    fs::write(&seg, &bytes).unwrap();
    match TidalDb::builder()
        .with_data_dir(dir.path())
        .with_schema(schema())
        .open()
    {
        Err(tidaldb::TidalError::Corruption { offset, .. }) => {
            assert_eq!(offset as usize, second)
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
}
