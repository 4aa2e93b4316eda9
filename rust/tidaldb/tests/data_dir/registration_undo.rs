//! A registration that fails on an I/O error (here EMFILE: the process is out of file
//! descriptors, which hosting many tenants, one open segment each, leads to) leaves either
//! no tenant or a whole one: never a log without a config, which the next open would
//! refuse as Corruption of the whole database.
//!
//! The test re-runs its own binary as the child under `ulimit -n`.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{T0, ts};
use tidaldb::tenancy::TenantConfig;
use tidaldb::{Durability, EntityId, TenantId, TidalDb};

const CHILD_ENV: &str = "TIDALDB_TEST_EMFILE_DIR";
const TEST_NAME: &str =
    "registration_undo::a_registration_failing_for_lack_of_fds_leaves_a_reopenable_dir";

fn open(dir: &Path) -> tidaldb::Result<TidalDb> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(common::hourly_view_schema())
        .durability(Durability::Immediate)
        .open()
}

fn child(dir: &Path) {
    let db = open(dir).unwrap();
    for id in 1.. {
        match db.register_tenant(TenantConfig::new(TenantId(id), "t")) {
            Ok(()) => {
                db.signal_for_tenant(TenantId(id), "view", EntityId(1), 1.0, Some(ts(T0)))
                    .unwrap();
                println!("registered {id}");
            }
            Err(e) => {
                println!("failed {id}: {e}");
                break;
            }
        }
    }
    println!("close: {:?}", db.close());
    println!("child done");
}

#[test]
fn a_registration_failing_for_lack_of_fds_leaves_a_reopenable_dir() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let mut refused = Vec::new();
    // Limits under which a child ran out of descriptors while registering a tenant and
    // still finished: the case this test is about. Other limits are too low to open at
    // all, or too high to run out before the child gives up; neither proves anything.
    let mut emfile_during_registration = Vec::new();
    for limit in 40..56 {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#"ulimit -n {limit} && exec "$0" --exact "$1" --nocapture --test-threads=1"#
            ))
            .arg(std::env::current_exe().unwrap())
            .arg(TEST_NAME)
            .env(CHILD_ENV, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.contains("child done") {
            eprintln!("limit {limit}: child did not finish:\n{stdout}");
            continue;
        }
        let failed = stdout
            .lines()
            .find(|l| l.contains("failed "))
            .unwrap_or("")
            .to_string();
        if is_emfile(&failed) {
            emfile_during_registration.push(limit);
        }
        let registered = stdout.lines().filter(|l| l.contains("registered ")).count();
        match open(dir.path()) {
            Ok(db) => {
                let n = db.tenants().len();
                assert!(
                    n == registered || n == registered + 1,
                    "limit {limit}: {n} tenants, {registered} acknowledged"
                );
            }
            Err(e) => refused.push(format!(
                "ulimit -n {limit}: register said `{failed}`; reopen: {e}"
            )),
        }
    }
    assert!(
        !emfile_during_registration.is_empty(),
        "no limit in 40..56 made a registration fail on EMFILE with the child finishing"
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
