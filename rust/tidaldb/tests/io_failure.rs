//! A write that fails on disk (the file-size limit is hit: EFBIG) is reported as failed,
//! leaves no partial bytes behind, makes the database refuse further writes, and is not
//! written later by `close`. Reopening without the limit finds exactly the acknowledged
//! events. The oracle is the child's own list of acknowledgements.
//!
//! The test re-runs its own binary as the child under `sh -c 'ulimit -f ..; trap "" XFSZ'`,
//! so the kernel refuses appends past the limit instead of killing the process.

use std::path::Path;
use std::process::Command;

use tidaldb::{DecaySpec, Durability, EntityId, EntityKind, Schema, TidalDb, TidalError};

const CHILD_ENV: &str = "TIDALDB_EFBIG_CHILD_DIR";
const TEST_NAME: &str = "a_failed_append_is_not_acknowledged_and_never_written_later";

fn schema() -> Schema {
    Schema::builder()
        .signal("count", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap()
}

fn open(dir: &Path) -> Result<TidalDb, TidalError> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .durability(Durability::Immediate)
        .open()
}

fn child(dir: &Path) {
    let db = open(dir).unwrap();
    let mut k = 0u64;
    let err = loop {
        match db.signal("count", EntityId(k), 1.0, None) {
            Ok(_) => println!("ack {k}"),
            Err(e) => break e,
        }
        k += 1;
    };
    println!("first error: {err}");
    assert!(matches!(err, TidalError::Io { .. }), "{err}");
    let next = db.signal("count", EntityId(k + 1), 1.0, None).unwrap_err();
    assert!(matches!(next, TidalError::Unavailable(_)), "{next}");
    db.close().unwrap();
    println!("child done");
}

#[test]
fn a_failed_append_is_not_acknowledged_and_never_written_later() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // 16 blocks of 512 bytes: room for about 60 batches of one event each
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -f 16 && trap '' XFSZ && exec "$0" --exact "$1" --nocapture --test-threads=1"#)
        .arg(&exe)
        .arg(TEST_NAME)
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child done"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acked: Vec<u64> = stdout
        .lines()
        .filter_map(|l| {
            l.rsplit_once("ack ")
                .and_then(|(_, k)| k.trim().parse().ok())
        })
        .collect();
    assert!(
        acked.len() > 10,
        "the limit was hit too early: {}",
        acked.len()
    );

    let db = open(dir.path()).expect("a failed append must not leave the log unreadable");
    assert_eq!(db.events_applied().unwrap(), acked.len() as u64);
    for k in &acked {
        assert_eq!(
            db.read_decay_score(EntityId(*k), "count").unwrap(),
            1.0,
            "entity {k}"
        );
    }
    let failed = acked.len() as u64;
    assert_eq!(
        db.read_decay_score(EntityId(failed), "count").unwrap(),
        0.0,
        "the failed write must not appear"
    );
    assert_eq!(
        db.recovery_report().torn_bytes_truncated,
        0,
        "the failed append was cut back at once"
    );
}
