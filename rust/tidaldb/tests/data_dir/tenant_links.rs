//! Symbolic links inside a tenant's directory: a link at `tenants/{id}/wal` or
//! `tenants/{id}/tenant.json` is not followed (the tenant's log would be written, or its
//! config read, outside the data directory); either is `Corruption` naming the path.
#![allow(dead_code)]

use crate::common;

use std::fs;
use std::path::Path;

use common::{T0, ts};
use tidaldb::tenancy::TenantConfig;
use tidaldb::{Durability, EntityId, TenantId, TidalDb, TidalError};

fn open_with(dir: &Path, d: Durability, snap: u64) -> tidaldb::Result<TidalDb> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(common::hourly_view_schema())
        .durability(d)
        .snapshot_every(snap)
        .open()
}

fn open(dir: &Path) -> TidalDb {
    open_with(dir, Durability::Immediate, 50).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if ft.is_dir() {
            copy_dir(&e.path(), &dst);
        } else if ft.is_file() {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn count(db: &TidalDb, t: u64) -> u64 {
    db.total_signal_count_for_tenant(TenantId(t), "view")
        .unwrap()
}

#[test]
fn tenant_wal_symlink_is_not_followed_outside_the_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let outside = root.path().join("outside");
    {
        let db = open(&data);
        db.register_tenant(TenantConfig::new(TenantId(5), "five"))
            .unwrap();
        db.close().unwrap();
    }
    let wal = data.join("tenants/5/wal");
    fs::rename(&wal, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &wal).unwrap();
    match open_with(&data, Durability::Immediate, 50) {
        Err(TidalError::Corruption { path, .. }) if path.starts_with(&wal) => {}
        Err(e) => panic!("refused, but not with Corruption naming the link: {e:?}"),
        Ok(db) => {
            db.signal_for_tenant(TenantId(5), "view", EntityId(1), 1.0, Some(ts(T0)))
                .unwrap();
            db.close().unwrap();
            panic!(
                "opened through the link; the tenant's log is now written outside the \
                 data dir: {:?}",
                fs::read_dir(&outside)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn tenant_json_symlink_is_not_followed_outside_the_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let outside = root.path().join("outside.json");
    {
        let db = open(&data);
        db.register_tenant(TenantConfig::new(TenantId(5), "five"))
            .unwrap();
        db.close().unwrap();
    }
    let json = data.join("tenants/5/tenant.json");
    fs::rename(&json, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &json).unwrap();
    match open_with(&data, Durability::Immediate, 50) {
        Err(TidalError::Corruption { path, .. }) if path.starts_with(&json) => {}
        Err(e) => panic!("refused, but not with Corruption naming the link: {e:?}"),
        Ok(_) => panic!("read the tenant's config through a link outside the data dir"),
    }
}
