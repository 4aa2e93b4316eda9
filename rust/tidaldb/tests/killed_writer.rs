//! A writer process is killed (SIGKILL) mid-ingest with `Durability::Immediate`; after
//! reopening, every event it acknowledged is present. The oracle is the child's own list
//! of acknowledgements, read from its stdout.
//!
//! The test re-runs its own binary as the child: when `TIDALDB_CRASH_CHILD_DIR` is set, the
//! test body is the writer instead of the checker.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use tidaldb::{DecaySpec, Durability, EntityId, EntityKind, Schema, TidalDb};

const CHILD_ENV: &str = "TIDALDB_CRASH_CHILD_DIR";
const TEST_NAME: &str = "killed_writer_loses_no_acknowledged_event";

fn schema() -> Schema {
    Schema::builder()
        .signal("count", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap()
}

fn open(dir: &Path) -> TidalDb {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .durability(Durability::Immediate)
        .open()
        .unwrap()
}

/// Writes entity k = first, first+1, ... once each, printing `ack k` after each returns.
fn child(dir: &Path, first: u64) {
    let db = open(dir);
    for k in first.. {
        db.signal("count", EntityId(k), 1.0, None).unwrap();
        println!("ack {k}");
    }
}

/// libtest prints the test's name without a newline before the test's own output, so the
/// first ack shares its line: look for the marker anywhere.
fn parse_ack(line: &str) -> Option<u64> {
    line.rsplit_once("ack ")
        .and_then(|(_, k)| k.trim().parse().ok())
}

#[test]
fn killed_writer_loses_no_acknowledged_event() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let first = std::env::var("TIDALDB_CRASH_FIRST")
            .unwrap()
            .parse()
            .unwrap();
        child(Path::new(&dir), first);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let mut next_entity = 0u64;
    // Several rounds against the same directory: each recovery must also survive the
    // torn tail the previous kill left behind.
    for (round, kill_after) in [150usize, 1, 400, 77].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("TIDALDB_CRASH_FIRST", next_entity.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut this_round = 0;
        for line in lines.by_ref() {
            if let Some(k) = parse_ack(&line.unwrap()) {
                acked.push(k);
                this_round += 1;
                if this_round == kill_after {
                    child.kill().unwrap();
                    break;
                }
            }
        }
        // Acks the child printed before the signal landed are acknowledgements too.
        for line in lines {
            if let Some(k) = parse_ack(&line.unwrap()) {
                acked.push(k);
            }
        }
        child.wait().unwrap();
        assert!(
            this_round >= kill_after,
            "round {round}: the child died early"
        );

        let db = open(dir.path());
        for k in &acked {
            assert_eq!(
                db.read_decay_score(EntityId(*k), "count").unwrap(),
                1.0,
                "round {round}: acknowledged event for entity {k} is missing or doubled"
            );
        }
        // At most one unacknowledged event survives: the one in flight at the kill, since
        // the child acknowledges each write before it starts the next.
        let applied = db.events_applied().unwrap();
        assert!(
            applied == acked.len() as u64 || applied == acked.len() as u64 + 1,
            "round {round}: {applied} events applied, {} acknowledged",
            acked.len()
        );
        next_entity = applied;
        if applied > acked.len() as u64 {
            acked.push(applied - 1);
        }
    }
}
