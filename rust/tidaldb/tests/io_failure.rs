//! A write that fails on disk (the file-size limit is hit: EFBIG) is reported as failed,
//! leaves no partial bytes behind, makes the database refuse further writes, is not
//! written later, and is reported again by `close`. Reopening without the limit finds a
//! readable log holding exactly the writes that were synced. The oracle is the child's
//! own report of what it was told.
//!
//! The test re-runs its own binary as the child under `sh -c 'ulimit -f ..; trap "" XFSZ'`,
//! so the kernel refuses appends past the limit instead of killing the process.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tidaldb::{DecaySpec, Durability, EntityId, EntityKind, Schema, TidalDb, TidalError};

const CHILD_ENV: &str = "TIDALDB_EFBIG_CHILD_DIR";
const MODE_ENV: &str = "TIDALDB_EFBIG_MODE";
const TEST_NAME: &str = "a_failed_append_is_not_acknowledged_and_never_written_later";

fn schema() -> Schema {
    Schema::builder()
        .signal("count", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap()
}

fn open(dir: &Path, durability: Durability) -> Result<TidalDb, TidalError> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .durability(durability)
        .open()
}

fn batched(max_delay: Duration) -> Durability {
    Durability::Batched {
        max_batch: usize::MAX,
        max_delay,
    }
}

/// Prints `synced N` for every N events known to be on disk, then drives a failure.
fn child(dir: &Path, mode: &str) {
    match mode {
        // one synced write per call until the disk refuses
        "immediate" => {
            let db = open(dir, Durability::Immediate).unwrap();
            let mut k = 0u64;
            let err = loop {
                match db.signal("count", EntityId(k), 1.0, None) {
                    Ok(_) => println!("synced {}", k + 1),
                    Err(e) => break e,
                }
                k += 1;
            };
            assert!(matches!(err, TidalError::Io { .. }), "{err}");
            refuses_everything_after(&db);
        }
        // batched writes that fit, then a batch that does not, flushed by `snapshot`
        "snapshot" => {
            let db = open(dir, batched(Duration::from_secs(3600))).unwrap();
            sync_20_then_buffer_400(&db);
            let err = db.snapshot().unwrap_err();
            assert!(matches!(err, TidalError::Io { .. }), "{err}");
            refuses_everything_after(&db);
        }
        // the flusher thread hits the limit; nobody is waiting for it
        "flusher" => {
            let db = open(dir, batched(Duration::from_millis(5))).unwrap();
            sync_20_then_buffer_400(&db);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while db.signal("count", EntityId(9999), 1.0, None).is_ok() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the flusher never failed"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            refuses_everything_after(&db);
        }
        other => panic!("unknown mode {other}"),
    }
    println!("child done");
}

/// 20 events that fit under the limit, synced; then 400 that do not, only buffered.
fn sync_20_then_buffer_400(db: &TidalDb) {
    db.signal_batch("count", &ids(0, 20), &[1.0; 20], None)
        .unwrap();
    db.flush().unwrap();
    println!("synced 20");
    db.signal_batch("count", &ids(20, 400), &[1.0; 400], None)
        .unwrap();
}

fn ids(from: u64, n: u64) -> Vec<EntityId> {
    (from..from + n).map(EntityId).collect()
}

fn refuses_everything_after(db: &TidalDb) {
    let next = db
        .signal("count", EntityId(1 << 40), 1.0, None)
        .unwrap_err();
    assert!(matches!(next, TidalError::Unavailable(_)), "{next}");
    assert!(matches!(db.flush(), Err(TidalError::Unavailable(_))));
    let closed = db.close().unwrap_err();
    assert!(
        matches!(closed, TidalError::Unavailable(_)),
        "close must report the failure: {closed}"
    );
}

#[test]
fn a_failed_append_is_not_acknowledged_and_never_written_later() {
    if let (Ok(dir), Ok(mode)) = (std::env::var(CHILD_ENV), std::env::var(MODE_ENV)) {
        child(Path::new(&dir), &mode);
        return;
    }
    for mode in ["immediate", "snapshot", "flusher"] {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        // 16 blocks of 512 bytes: room for about 60 one-event batches, not 400 events
        let out = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -f 16 && trap '' XFSZ && exec "$0" --exact "$1" --nocapture --test-threads=1"#)
            .arg(&exe)
            .arg(TEST_NAME)
            .env(CHILD_ENV, dir.path())
            .env(MODE_ENV, mode)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("child done"),
            "{mode}: child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let synced = stdout
            .lines()
            .filter_map(|l| {
                l.rsplit_once("synced ")
                    .and_then(|(_, n)| n.trim().parse::<u64>().ok())
            })
            .max()
            .unwrap_or(0);
        assert!(
            synced >= 20,
            "{mode}: the limit was hit too early ({synced})"
        );

        let db = open(dir.path(), Durability::Immediate)
            .unwrap_or_else(|e| panic!("{mode}: a failed append left the log unreadable: {e}"));
        assert_eq!(db.events_applied().unwrap(), synced, "{mode}");
        for k in 0..synced {
            assert_eq!(
                db.read_decay_score(EntityId(k), "count").unwrap(),
                1.0,
                "{mode}: entity {k}"
            );
        }
        assert_eq!(
            db.read_decay_score(EntityId(synced), "count").unwrap(),
            0.0,
            "{mode}"
        );
        assert_eq!(
            db.recovery_report().torn_bytes_truncated,
            0,
            "{mode}: the failed append was cut back"
        );
        db.signal("count", EntityId(1 << 41), 1.0, None)
            .expect("the reopened log takes writes");
    }
}
