//! WAL round trip, torn tails, corruption, snapshots, and bad input that must write nothing.
//! The oracle is a second, ephemeral database fed the same writes (or the list of writes).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tidaldb::wal::{list_segments, scan_segment};

mod common;
use common::{T0, ts};
use tidaldb::{
    DecaySpec, Durability, EntityId, EntityKind, Schema, ShardId, TidalDb, TidalError, Timestamp,
    Window,
};

const SEC: i64 = 1_000_000_000;

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(3600))
        .windows(&[Window::OneHour, Window::TwentyFourHours])
        .velocity(true)
        .add()
        .signal("count", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap()
}

fn open(dir: &Path) -> Result<TidalDb, TidalError> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .open()
}

/// Writes `n` signals (one batch each under Immediate) and a hide; returns nothing, the
/// caller reads back through `fingerprint`.
fn write_workload(db: &TidalDb, n: u64) {
    for i in 0..n {
        let t = T0 + (i as i64 * 7919 % 5000) * SEC;
        db.signal("view", EntityId(i % 7), 1.0 + (i % 3) as f64, Some(ts(t)))
            .unwrap();
        db.signal("count", EntityId(i % 5), 1.0, Some(ts(t)))
            .unwrap();
    }
    db.hide_item(EntityId(100), EntityId(3), None).unwrap();
}

/// Every read the workload can affect, as exact bits.
fn fingerprint(db: &TidalDb) -> Vec<u64> {
    let at = ts(T0 + 6000 * SEC);
    let mut out = Vec::new();
    for e in 0..7 {
        out.push(
            db.read_decay_score_at(EntityId(e), "view", at)
                .unwrap()
                .to_bits(),
        );
        out.push(
            db.read_window_at(EntityId(e), "view", Window::TwentyFourHours, at)
                .unwrap()
                .count,
        );
        out.push(
            db.read_decay_score_at(EntityId(e), "count", at)
                .unwrap()
                .to_bits(),
        );
    }
    out.push(db.is_hidden(EntityId(100), EntityId(3)).unwrap() as u64);
    out.push(db.events_applied().unwrap());
    out
}

/// Bytes in the default tenant's segments: 0 before the first commit creates one.
fn logged_bytes(dir: &Path) -> u64 {
    list_segments(&dir.join("wal"), ShardId(0))
        .unwrap()
        .iter()
        .map(|(_, p)| fs::metadata(p).unwrap().len())
        .sum()
}

fn only_segment(dir: &Path) -> PathBuf {
    let segs = list_segments(&dir.join("wal"), ShardId(0)).unwrap();
    segs.last().unwrap().1.clone()
}

#[test]
fn round_trip_restores_every_read_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let oracle = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    let expected = {
        let db = open(dir.path()).unwrap();
        write_workload(&db, 200);
        write_workload(&oracle, 200);
        fingerprint(&db)
    };
    let reopened = open(dir.path()).unwrap();
    assert_eq!(reopened.recovery_report().events_replayed, 401);
    assert_eq!(fingerprint(&reopened), expected);
    assert_eq!(
        fingerprint(&reopened),
        fingerprint(&oracle),
        "disk and memory disagree"
    );
}

#[test]
fn a_torn_last_batch_is_truncated_at_every_cut_point() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path()).unwrap();
        write_workload(&db, 20);
    }
    let seg = only_segment(dir.path());
    let scanned = scan_segment(&seg, 1, true).unwrap();
    let whole = fs::read(&seg).unwrap();
    let last = scanned.batches.last().unwrap();
    let last_len = 64 + last.header.payload_len as usize;
    let last_start = whole.len() - last_len;
    let expected_events = 41 - last.events.len() as u64;

    for cut in last_start..whole.len() {
        let copy = tempfile::tempdir().unwrap();
        fs::create_dir_all(copy.path().join("wal")).unwrap();
        fs::copy(
            dir.path().join("schema.json"),
            copy.path().join("schema.json"),
        )
        .unwrap();
        let copied_seg = copy.path().join("wal").join(seg.file_name().unwrap());
        fs::write(&copied_seg, &whole[..cut]).unwrap();

        let db = open(copy.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(
            db.events_applied().unwrap(),
            expected_events,
            "cut at {cut}"
        );
        assert_eq!(
            db.recovery_report().torn_bytes_truncated,
            (cut - last_start) as u64,
            "cut at {cut}"
        );
        // the log continues cleanly after the truncation
        db.signal("count", EntityId(9), 1.0, None).unwrap();
        drop(db);
        let again = open(copy.path()).unwrap();
        assert_eq!(
            again.events_applied().unwrap(),
            expected_events + 1,
            "cut at {cut}"
        );
    }
}

#[test]
fn a_flipped_byte_in_the_middle_is_corruption_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path()).unwrap();
        write_workload(&db, 20);
    }
    let seg = only_segment(dir.path());
    let original = fs::read(&seg).unwrap();
    let batch_len = 64
        + scan_segment(&seg, 1, true).unwrap().batches[0]
            .header
            .payload_len as usize;
    // a payload byte of batch 10, the seq of batch 11, and the payload length of batch 5
    // (it must not pass for a torn tail and cut the log short): later commit groups
    // follow each, so each was synced and the damage is corruption
    for at in [10 * batch_len + 70, 11 * batch_len + 9, 5 * batch_len + 28] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x40;
        fs::write(&seg, &bytes).unwrap();
        match open(dir.path()) {
            Err(TidalError::Corruption { path, offset, .. }) => {
                assert_eq!(path, seg);
                assert_eq!(offset as usize, at / batch_len * batch_len, "flip at {at}");
            }
            other => panic!("flip at {at}: expected Corruption, got {other:?}"),
        }
    }
    // damage in the last commit group, with nothing synced after it, is what a crash
    // during that group's append leaves: the group is cut off, the rest survives
    let mut bytes = original.clone();
    let last = original.len() - 3;
    bytes[last] ^= 0x40;
    fs::write(&seg, &bytes).unwrap();
    let db = open(dir.path()).unwrap();
    assert_eq!(db.events_applied().unwrap(), 40);
    assert_eq!(
        db.recovery_report().torn_bytes_truncated as usize,
        original.len() - last / batch_len * batch_len
    );
}

#[test]
fn snapshots_bound_replay_and_a_missing_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let db = TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .segment_bytes(4096)
            .snapshot_every(0)
            .open()
            .unwrap();
        write_workload(&db, 300);
        assert_eq!(db.snapshot().unwrap(), 601);
        write_workload(&db, 50);
        fingerprint(&db)
    };
    let db = open(dir.path()).unwrap();
    assert_eq!(db.recovery_report().snapshot_lsn, 601);
    assert_eq!(db.recovery_report().events_replayed, 101);
    assert_eq!(fingerprint(&db), expected);
    drop(db);

    let segs = list_segments(&dir.path().join("wal"), ShardId(0)).unwrap();
    assert!(segs.len() >= 3, "small segments must have rolled: {segs:?}");
    fs::remove_file(&segs[1].1).unwrap();
    assert!(matches!(
        open(dir.path()),
        Err(TidalError::Corruption { .. })
    ));
}

#[test]
fn automatic_snapshots_happen_every_n_events() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .snapshot_every(100)
            .open()
            .unwrap();
        write_workload(&db, 120);
    }
    let db = open(dir.path()).unwrap();
    let report = db.recovery_report();
    assert!(report.snapshot_lsn >= 200, "{report:?}");
    assert!(report.events_replayed < 100, "{report:?}");
    assert_eq!(db.events_applied().unwrap(), 241);
}

#[test]
fn batched_durability_commits_on_flush_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let batched = Durability::Batched {
        max_batch: 1_000_000,
        max_delay: Duration::from_secs(3600),
    };
    {
        let db = TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .durability(batched)
            .open()
            .unwrap();
        write_workload(&db, 10);
        assert_eq!(logged_bytes(dir.path()), 0, "nothing synced yet");
        db.flush().unwrap();
        assert!(logged_bytes(dir.path()) > 0);
        write_workload(&db, 10);
    }
    assert_eq!(open(dir.path()).unwrap().events_applied().unwrap(), 42);
}

#[test]
fn batched_durability_commits_after_max_delay_without_further_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = TidalDb::builder()
        .with_data_dir(dir.path())
        .with_schema(schema())
        .durability(Durability::Batched {
            max_batch: 1_000_000,
            max_delay: Duration::from_millis(5),
        })
        .open()
        .unwrap();
    db.signal("count", EntityId(1), 1.0, None).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while logged_bytes(dir.path()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flusher never committed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).unwrap();
    db.signal("view", EntityId(1), 1.0, None).unwrap();
    let seg = only_segment(dir.path());
    let before = (
        db.events_applied().unwrap(),
        fs::metadata(&seg).unwrap().len(),
    );

    for w in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e7] {
        let err = db.signal("view", EntityId(1), w, None).unwrap_err();
        assert!(
            matches!(err, TidalError::InvalidWeight { .. }),
            "{w}: {err}"
        );
    }
    assert!(matches!(
        db.signal("nope", EntityId(1), 1.0, None),
        Err(TidalError::UnknownSignal { .. })
    ));
    for ns in [-1, Timestamp::MAX_NANOS + 1, i64::MIN] {
        assert!(matches!(
            Timestamp::from_nanos(ns),
            Err(TidalError::TimestampOutOfRange { .. })
        ));
    }
    for secs in [f64::NAN, -1.0, 1e300] {
        assert!(matches!(
            Timestamp::from_secs_f64(secs),
            Err(TidalError::TimestampOutOfRange { .. })
        ));
    }
    // a batch with one bad weight in the middle writes none of it
    let err = db
        .signal_batch(
            "view",
            &[EntityId(1), EntityId(2), EntityId(3)],
            &[1.0, f64::NAN, 1.0],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, TidalError::InvalidWeight { .. }));
    let err = db
        .signal_batch("view", &[EntityId(1)], &[1.0, 2.0], None)
        .unwrap_err();
    assert!(matches!(err, TidalError::InvalidArgument { .. }));

    assert_eq!(
        (
            db.events_applied().unwrap(),
            fs::metadata(&seg).unwrap().len()
        ),
        before
    );
}

#[test]
fn reopening_with_another_schema_or_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).unwrap();
    assert!(matches!(open(dir.path()), Err(TidalError::Unavailable(_))));
    drop(db);
    let other = Schema::builder()
        .signal("view", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap();
    let err = TidalDb::builder()
        .with_data_dir(dir.path())
        .with_schema(other)
        .open()
        .unwrap_err();
    assert!(matches!(err, TidalError::SchemaMismatch { .. }), "{err}");
}

/// Writes 20 single-event commit groups, then one group of `big` events under `Batched`
/// (past 8 MiB it spans two batches), then `after` more single-event groups. Returns the
/// segment and where the big group starts.
fn log_with_a_big_group(dir: &Path, big: usize, after: u64) -> (PathBuf, usize) {
    {
        let db = open(dir).unwrap();
        write_workload(&db, 10);
    }
    let start = fs::metadata(only_segment(dir)).unwrap().len() as usize;
    {
        let db = TidalDb::builder()
            .with_data_dir(dir)
            .with_schema(schema())
            .durability(Durability::Batched {
                max_batch: usize::MAX,
                max_delay: Duration::from_secs(3600),
            })
            .open()
            .unwrap();
        let ids: Vec<EntityId> = (0..big as u64).map(|i| EntityId(i % 1000)).collect();
        let times: Vec<Timestamp> = (0..big as i64).map(|i| ts(T0 + i * 1000)).collect();
        db.signal_batch("view", &ids, &vec![1.0; big], Some(&times))
            .unwrap();
        db.flush().unwrap();
        for i in 0..after {
            db.signal("count", EntityId(i), 1.0, Some(ts(T0))).unwrap();
            db.flush().unwrap();
        }
    }
    (only_segment(dir), start)
}

#[test]
fn the_unsynced_last_group_may_be_torn_anywhere_but_a_synced_group_may_not() {
    // a file extended with zeros that never received its data
    let dir = tempfile::tempdir().unwrap();
    let (seg, start) = log_with_a_big_group(dir.path(), 100, 0);
    let mut bytes = fs::read(&seg).unwrap();
    let sector = (start + 64).div_ceil(512) * 512;
    bytes[sector..].fill(0);
    bytes.extend_from_slice(&[0u8; 4096]);
    fs::write(&seg, &bytes).unwrap();
    let db = open(dir.path()).unwrap();
    assert_eq!(
        db.events_applied().unwrap(),
        21,
        "the torn group of 100 is cut off"
    );
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, start);
    drop(db);

    // zeros appended after the last whole batch
    let dir = tempfile::tempdir().unwrap();
    let (seg, _) = log_with_a_big_group(dir.path(), 100, 0);
    let whole = fs::metadata(&seg).unwrap().len();
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0u8; 100]);
    fs::write(&seg, &bytes).unwrap();
    assert_eq!(open(dir.path()).unwrap().events_applied().unwrap(), 121);
    assert_eq!(fs::metadata(&seg).unwrap().len(), whole);

    // pages of the last group written back out of order: a hole in its first batch while
    // its second batch landed whole; the group was never synced, so all of it goes
    let dir = tempfile::tempdir().unwrap();
    let (seg, start) = log_with_a_big_group(dir.path(), 200_000, 0);
    let batches = scan_segment(&seg, 1, true).unwrap().batches;
    assert_eq!(batches.len(), 23, "the big group spans two batches");
    let mut bytes = fs::read(&seg).unwrap();
    bytes[start + 4096..start + 8192].fill(0);
    fs::write(&seg, &bytes).unwrap();
    let db = open(dir.path()).unwrap();
    assert_eq!(db.events_applied().unwrap(), 21);
    drop(db);

    // the same hole when a later group was synced after it: that is corruption
    let dir = tempfile::tempdir().unwrap();
    let (seg, start) = log_with_a_big_group(dir.path(), 100, 1);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[start + 200..start + 300].fill(0);
    fs::write(&seg, &bytes).unwrap();
    match open(dir.path()) {
        Err(TidalError::Corruption { offset, .. }) => assert_eq!(offset as usize, start),
        other => panic!("expected Corruption, got {other:?}"),
    }
}

#[test]
fn a_damaged_or_misnamed_snapshot_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path()).unwrap();
        write_workload(&db, 30);
        db.snapshot().unwrap();
    }
    let wal = dir.path().join("wal");
    let snap = fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .unwrap();
    let original = fs::read(&snap).unwrap();
    // the covered seq, the payload length, and a payload byte
    for at in [8, 16, original.len() / 2] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        fs::write(&snap, &bytes).unwrap();
        let err = open(dir.path()).unwrap_err();
        assert!(
            matches!(err, TidalError::Corruption { .. }),
            "flip at {at}: {err}"
        );
    }
    fs::write(&snap, &original).unwrap();
    assert_eq!(open(dir.path()).unwrap().events_applied().unwrap(), 61);

    // a snapshot whose name claims another position than its header
    let renamed = wal.join("snapshot-00000-00000000000000000050.snap");
    fs::rename(&snap, &renamed).unwrap();
    assert!(matches!(
        open(dir.path()),
        Err(TidalError::Corruption { .. })
    ));
}
