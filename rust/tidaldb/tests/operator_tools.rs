//! The library half of `tidaldb inspect`, `verify` and `export`, run against data
//! directories written by `TidalDb`: inspect's counts match the writes made, verify finds
//! a flipped byte where it was flipped, an export re-ingested elsewhere rebuilds
//! bit-identical scores, and none of them changes a byte of the directory. Bad paths
//! give clear errors, never panics.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
#[path = "operator_tools/export.rs"]
mod export_round_trip;
use common::{T0, ts};
use tidaldb::runtime::tools::{
    DamageKind, ExportFormat, ExportWhat, OriginSeq, export, inspect, verify,
};
use tidaldb::tenancy::TenantConfig;
use tidaldb::{
    DecaySpec, EntityId, EntityKind, NodeId, Schema, TenantId, TidalDb, TidalError, Timestamp,
    Window,
};

const HOUR: i64 = 3_600_000_000_000;
const SIGNALS: [&str; 3] = ["view", "like", "fresh"];

/// An exponential, a permanent and a linear signal: every kind of decay.
fn schema() -> Schema {
    Schema::builder()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(3600),
            },
        )
        .windows(&[Window::OneHour])
        .add()
        .signal("like", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .signal(
            "fresh",
            EntityKind::Creator,
            DecaySpec::Linear {
                lifetime: Duration::from_secs(86_400),
            },
        )
        .add()
        .build()
        .unwrap()
}

fn open(dir: &Path, snapshot_every: u64) -> TidalDb {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .node_id(NodeId(3))
        .snapshot_every(snapshot_every)
        .open()
        .unwrap()
}

/// The time every score is compared at: after every write below.
fn at() -> Timestamp {
    ts(T0 + 30 * HOUR)
}

/// Writes `n` signals with varied weights and out-of-order timestamps, and a few hides
/// and unhides; returns how many events that made.
fn write_mixed(db: &TidalDb, n: u64, seed: u64) -> u64 {
    let mut rng = common::SplitMix(seed);
    let mut events = 0;
    for i in 0..n {
        let signal = SIGNALS[rng.below(3) as usize];
        let entity = EntityId(rng.below(12) + if i % 7 == 0 { u64::MAX - 20 } else { 0 });
        let weight = (rng.below(1000) as f64 + 1.0) / 7.0;
        let t = T0 + (rng.below(24 * 60) as i64) * 60_000_000_000;
        db.signal(signal, entity, weight, Some(ts(t))).unwrap();
        events += 1;
        if i % 9 == 4 {
            db.hide_item(EntityId(100 + i), EntityId(rng.below(12)), None)
                .unwrap();
            events += 1;
        }
        if i % 18 == 13 {
            db.unhide_item(EntityId(100 + i - 9), EntityId(1), None)
                .unwrap();
            events += 1;
        }
    }
    events
}

/// Every signal's score of every entity the writes can name, as of [`at`].
fn scores(db: &TidalDb) -> BTreeMap<(String, u64), f64> {
    let mut out = BTreeMap::new();
    for signal in SIGNALS {
        for e in (0..12).chain(u64::MAX - 20..=u64::MAX - 9) {
            let score = db.read_decay_score_at(EntityId(e), signal, at()).unwrap();
            if score != 0.0 {
                out.insert((signal.to_owned(), e), score);
            }
        }
    }
    out
}

/// Every file under `root` with its bytes: what the tools must leave as it was.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
                out.insert(path, b"dir".to_vec());
            } else {
                out.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn segments(wal: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    out.sort();
    out
}

fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

#[test]
fn inspect_reports_each_tenants_event_count_version_vector_snapshot_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 25);
    let mut written = write_mixed(&db, 30, 1);
    db.snapshot().unwrap();
    written += write_mixed(&db, 8, 2);
    let mut cfg = TenantConfig::new(TenantId(5), "acme");
    cfg.max_entities = Some(1000);
    db.register_tenant(cfg.clone()).unwrap();
    for i in 0..30 {
        db.signal_for_tenant(TenantId(5), "like", EntityId(i % 4), 1.0, Some(ts(T0)))
            .unwrap();
    }
    db.close().unwrap();

    let report = inspect(dir.path()).unwrap();
    let names: Vec<&str> = report.schema.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, SIGNALS);
    assert_eq!(report.schema[0].decay, "exponential, half-life 1h");
    assert_eq!(report.schema[0].windows, ["1h"]);
    assert_eq!(report.schema[2].decay, "linear, lifetime 1d");
    assert_eq!(report.tenants.len(), 2);

    let t0 = &report.tenants[0];
    assert_eq!((t0.tenant, t0.config.clone()), (0, None));
    assert_eq!(t0.events_applied, written);
    assert_eq!(
        t0.version_vector,
        [OriginSeq {
            origin: 3,
            seq: written
        }]
    );
    let snap = t0.snapshot.clone().expect("the explicit snapshot");
    assert!(snap.covers_through >= 25 && snap.covers_through < written);
    assert_eq!(t0.events_replayed, written - snap.covers_through);
    assert_eq!(t0.records_logged, written - snap.covers_through);
    let last = t0.segments.last().unwrap();
    assert_eq!(last.last_position, Some(written));
    assert!(t0.segments.iter().all(|s| s.bytes > 0));

    let t5 = &report.tenants[1];
    assert_eq!((t5.tenant, t5.config.clone()), (5, Some(cfg)));
    assert_eq!(t5.events_applied, 30);
    assert_eq!(t5.version_vector, [OriginSeq { origin: 3, seq: 30 }]);
    assert_eq!(t5.snapshot.as_ref().map(|s| s.covers_through), Some(25));
    assert_eq!(t5.events_replayed, 5);
    assert_eq!(
        t5.entities[1].entities, 4,
        "like was written for 4 entities"
    );

    let text = report.to_string();
    assert!(
        text.contains(&format!("events applied: {written}")),
        "{text}"
    );
    assert!(text.contains("node 3 -> seq 30"), "{text}");
    assert!(text.contains("\"acme\""), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["tenants"][1]["events_applied"], 30);
}

#[test]
fn verify_is_clean_on_a_clean_directory_and_names_a_flipped_byte_in_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 0);
    // One write, one commit, one batch: every batch of the segment has the same length.
    for i in 0..20 {
        db.signal("view", EntityId(i), 1.0, Some(ts(T0))).unwrap();
    }
    db.close().unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.batches_checked, report.records_checked), (20, 20));
    assert!(report.to_string().contains("clean"), "{report}");

    let segment = segments(&dir.path().join("wal")).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len() as usize;
    assert_eq!(len % 20, 0);
    let batch = len / 20;
    for flipped in [len / 2, 7 * batch + 3, 11 * batch + batch - 1] {
        flip(&segment, flipped);
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.damage.len(), 1, "{report}");
        let d = &report.damage[0];
        assert_eq!((&d.file, d.kind), (&segment, DamageKind::Corruption));
        let offset = d.offset as usize;
        assert!(offset <= flipped && flipped - offset < batch, "{d}");
        assert!(report.has_corruption());
        let text = report.to_string();
        assert!(text.contains(&segment.display().to_string()), "{text}");
        assert!(text.contains(&format!("byte offset {offset}")), "{text}");
        flip(&segment, flipped);
    }
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn verify_names_a_flipped_byte_in_a_snapshot_and_tells_a_torn_tail_from_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 0);
    write_mixed(&db, 40, 3);
    db.snapshot().unwrap();
    db.signal("view", EntityId(1), 1.0, Some(ts(T0))).unwrap();
    db.signal("view", EntityId(2), 1.0, Some(ts(T0))).unwrap();
    db.close().unwrap();
    let wal = dir.path().join("wal");
    assert!(verify(dir.path()).unwrap().is_clean());

    let snapshot = fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .unwrap();
    let flipped = fs::metadata(&snapshot).unwrap().len() as usize / 2;
    flip(&snapshot, flipped);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.damage.len(), 1, "{report}");
    let d = &report.damage[0];
    assert_eq!((&d.file, d.kind), (&snapshot, DamageKind::Corruption));
    assert!(d.offset as usize <= flipped);
    flip(&snapshot, flipped);

    // Half a batch appended to the last segment: an append a crash cut short.
    let segment = segments(&wal).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let whole = bytes.len();
    bytes.extend_from_within(..whole / 2 - 10);
    fs::write(&segment, &bytes).unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.damage.len(), 1, "{report}");
    let d = &report.damage[0];
    assert_eq!((d.kind, d.offset), (DamageKind::TornTail, whole as u64));
    assert!(d.to_string().contains("torn tail at byte offset"), "{d}");
    assert!(!report.is_clean() && !report.has_corruption());
    assert!(report.to_string().contains("torn tail"), "{report}");
}

#[test]
fn the_tools_change_nothing_in_the_directory_not_even_a_torn_tail_or_a_stale_lock() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 10);
    write_mixed(&db, 25, 7);
    db.register_tenant(TenantConfig::new(TenantId(2), "b"))
        .unwrap();
    db.signal_for_tenant(TenantId(2), "view", EntityId(1), 1.0, Some(ts(T0)))
        .unwrap();
    // Killed, not closed: the lock file stays behind.
    std::mem::forget(db);
    let segment = segments(&dir.path().join("wal")).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    bytes.extend_from_slice(b"TIDA and the rest of a batch never written");
    fs::write(&segment, &bytes).unwrap();
    // An empty segment, as a crash between creating a segment and writing it leaves.
    let empty = dir.path().join("wal/shard-00000-00000000000000099999.wal");
    fs::write(&empty, b"").unwrap();
    let before = tree(dir.path());
    assert!(before.contains_key(&dir.path().join("LOCK")));

    let inspection = inspect(dir.path()).unwrap();
    assert!(inspection.tenants[0].torn_bytes > 0);
    let report = verify(dir.path()).unwrap();
    assert!(!report.has_corruption(), "{report}");
    assert_eq!(report.damage[0].kind, DamageKind::TornTail);
    assert!(report.files_checked.contains(&empty));
    for format in [ExportFormat::Csv, ExportFormat::Parquet] {
        let what = ExportWhat::Events {
            tenant: Some(TenantId(2)),
            allow_partial: false,
        };
        assert_eq!(
            export(dir.path(), what, format, &mut Vec::new()).unwrap(),
            1
        );
        let what = ExportWhat::Scores {
            tenant: None,
            at: at(),
        };
        export(dir.path(), what, format, &mut Vec::new()).unwrap();
    }
    assert_eq!(tree(dir.path()), before, "the directory changed");
}

#[test]
fn a_missing_path_or_a_directory_that_is_no_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let stray = dir.path().join("stray");
    fs::create_dir(&stray).unwrap();
    fs::write(stray.join("notes.txt"), b"hello").unwrap();
    let file = stray.join("notes.txt");
    let what = ExportWhat::Scores {
        tenant: None,
        at: at(),
    };
    let all = |p: &Path| -> Vec<TidalError> {
        vec![
            inspect(p).unwrap_err(),
            verify(p).unwrap_err(),
            export(p, what, ExportFormat::Csv, &mut Vec::new()).unwrap_err(),
        ]
    };
    for err in all(&missing) {
        assert!(matches!(err, TidalError::NotFound(_)), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
    for p in [&stray, &file] {
        for err in all(p) {
            assert!(
                matches!(
                    err,
                    TidalError::InvalidArgument {
                        name: "data_dir",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(
                err.to_string().contains("not a tidaldb data directory"),
                "{err}"
            );
        }
    }
    assert_eq!(tree(&stray).len(), 1, "nothing was created");
}

#[test]
fn garbage_in_every_file_gives_damage_or_errors_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 0);
    write_mixed(&db, 10, 8);
    db.snapshot().unwrap();
    write_mixed(&db, 10, 9);
    db.register_tenant(TenantConfig::new(TenantId(3), "c"))
        .unwrap();
    db.close().unwrap();
    let files: Vec<PathBuf> = tree(dir.path())
        .into_iter()
        .filter(|(_, bytes)| bytes != b"dir")
        .map(|(p, _)| p)
        .collect();
    let mut rng = common::SplitMix(10);
    for file in &files {
        let original = fs::read(file).unwrap();
        for round in 0..6 {
            let mut bytes = original.clone();
            match round {
                0 => bytes.truncate(bytes.len() / 3),
                1 => bytes.clear(),
                _ => {
                    for _ in 0..round {
                        let at = rng.below(bytes.len().max(1) as u64) as usize;
                        if let Some(b) = bytes.get_mut(at) {
                            *b = rng.next() as u8;
                        }
                    }
                }
            }
            fs::write(file, &bytes).unwrap();
            let _ = inspect(dir.path());
            let _ = verify(dir.path()).unwrap();
            for format in [ExportFormat::Csv, ExportFormat::Parquet] {
                let what = ExportWhat::Events {
                    tenant: None,
                    allow_partial: true,
                };
                let _ = export(dir.path(), what, format, &mut Vec::new());
            }
        }
        fs::write(file, &original).unwrap();
    }
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn verify_reports_a_damaged_tenant_config_and_hardstate_and_still_checks_that_tenants_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 0);
    db.register_tenant(TenantConfig::new(TenantId(4), "d"))
        .unwrap();
    for i in 0..5 {
        db.signal_for_tenant(TenantId(4), "view", EntityId(i), 1.0, Some(ts(T0)))
            .unwrap();
    }
    db.close().unwrap();
    let config = dir.path().join("tenants/4/tenant.json");
    fs::write(&config, b"{\"tenant_id\": 4,").unwrap();
    let hard_state = dir.path().join("tenants/4/wal/HARDSTATE");
    fs::write(&hard_state, b"TDHS\x01garbage").unwrap();

    let report = verify(dir.path()).unwrap();
    let damaged: Vec<&Path> = report.damage.iter().map(|d| d.file.as_path()).collect();
    assert_eq!(
        damaged,
        [config.as_path(), hard_state.as_path()],
        "{report}"
    );
    assert!(
        report
            .damage
            .iter()
            .all(|d| d.kind == DamageKind::Corruption)
    );
    assert_eq!(
        report.records_checked, 5,
        "the tenant's log is still checked"
    );
    assert!(report.files_checked.contains(&config));
    // Inspect and export need the config, and say which file is wrong.
    let err = inspect(dir.path()).unwrap_err();
    assert!(err.to_string().contains("tenant.json"), "{err}");
}
