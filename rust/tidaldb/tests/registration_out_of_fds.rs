//! A registration that fails on an I/O error (here EMFILE: the process is out of file
//! descriptors, which hosting many tenants, one open segment each, leads to) leaves either
//! no tenant or a whole one: never a log without a config, which the next open would
//! refuse as Corruption of the whole database.
//!
//! The test re-runs its own binary as the child under `ulimit -n`, so it has a binary of its
//! own: a child forked while another test reopens a database would hold that database's
//! lock until it execs. The child registers
//! and writes a few tenants, then takes every free descriptor but `spare` and registers
//! one more tenant; the parent runs it for each `spare` from 0 up, so that registration
//! runs out at each of its steps in turn.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::Command;

use common::{T0, ts};
use tidaldb::tenancy::TenantConfig;
use tidaldb::{Durability, EntityId, TenantId, TidalDb};

const CHILD_ENV: &str = "TIDALDB_TEST_EMFILE_DIR";
const SPARE_ENV: &str = "TIDALDB_TEST_EMFILE_SPARE";
const TEST_NAME: &str = "a_registration_failing_for_lack_of_fds_leaves_a_reopenable_dir";
/// Tenants registered and written before descriptors run short.
const BEFORE: u64 = 3;

fn open(dir: &Path) -> tidaldb::Result<TidalDb> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(common::hourly_view_schema())
        .durability(Durability::Immediate)
        .open()
}

/// Lines the child prints start with this, on a line of their own.
const CHILD: &str = "\nchild: ";

fn child(dir: &Path, spare: usize) {
    let db = open(dir).unwrap();
    for id in 1..=BEFORE {
        db.register_tenant(TenantConfig::new(TenantId(id), "t"))
            .unwrap();
        db.signal_for_tenant(TenantId(id), "view", EntityId(1), 1.0, Some(ts(T0)))
            .unwrap();
        println!("{CHILD}registered {id}");
    }
    let mut hog = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        hog.push(f);
    }
    hog.truncate(hog.len().saturating_sub(spare));
    let id = BEFORE + 1;
    match db.register_tenant(TenantConfig::new(TenantId(id), "t")) {
        Ok(()) => println!("{CHILD}registered {id}"),
        Err(e) => println!("{CHILD}failed {id}: {e}"),
    }
    drop(hog);
    println!("{CHILD}close: {:?}", db.close());
    println!("{CHILD}done");
}

#[test]
fn a_registration_failing_for_lack_of_fds_leaves_a_reopenable_dir() {
    if let (Ok(dir), Ok(spare)) = (std::env::var(CHILD_ENV), std::env::var(SPARE_ENV)) {
        child(Path::new(&dir), spare.parse().unwrap());
        return;
    }
    let mut refused = Vec::new();
    // Runs in which the registration ran out of descriptors and the child still finished:
    // the case this test is about. With more spare descriptors, registration succeeds.
    let mut emfile_during_registration = Vec::new();
    for spare in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n 64 && exec "$0" --exact "$1" --nocapture --test-threads=1"#)
            .arg(std::env::current_exe().unwrap())
            .arg(TEST_NAME)
            .env(CHILD_ENV, dir.path())
            .env(SPARE_ENV, spare.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let child_lines: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(CHILD.trim_start()))
            .collect();
        assert!(
            child_lines.contains(&"done"),
            "spare {spare}: child did not finish:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let failed = child_lines
            .iter()
            .find(|l| l.starts_with("failed "))
            .copied()
            .unwrap_or("");
        if is_emfile(failed) {
            emfile_during_registration.push(spare);
        }
        let registered = child_lines
            .iter()
            .filter(|l| l.starts_with("registered "))
            .count();
        match open(dir.path()) {
            Ok(db) => {
                let n = db.tenants().len();
                assert!(
                    n == registered || (n == registered + 1 && !failed.is_empty()),
                    "spare {spare}: {n} tenants, {registered} acknowledged"
                );
            }
            Err(e) => refused.push(format!(
                "spare {spare}: register said `{failed}`; reopen: {e}"
            )),
        }
    }
    assert!(
        !emfile_during_registration.is_empty(),
        "no run made a registration fail on EMFILE with the child finishing"
    );
    assert!(
        refused.is_empty(),
        "reopen refused:\n{}",
        refused.join("\n")
    );
}

/// Whether the child's report of its failed registration is EMFILE ("Too many open files",
/// errno 24).
fn is_emfile(failed: &str) -> bool {
    failed.contains("os error 24") || failed.contains("Too many open files")
}
