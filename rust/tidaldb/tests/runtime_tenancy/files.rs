//! The files of tenants: labels never name paths, and `tenants/` holds only what
//! registration put there.

use super::*;

#[test]
fn labels_never_reach_the_filesystem_and_control_characters_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let db = open(&data);
    let labels = [
        "../../etc",
        "/abs",
        "x/../../y",
        "..",
        "tenants/../../z",
        "C:\\x",
    ];
    for (i, label) in labels.iter().enumerate() {
        let id = TenantId(i as u64 + 1);
        db.register_tenant(tenant(id.0, label)).unwrap();
        db.signal_for_tenant(id, "view", EntityId(1), 1.0, Some(ts(T0)))
            .unwrap();
    }
    for (i, label) in ["a\0b", "a\nb", "\u{1b}[31m", "tab\there"]
        .iter()
        .enumerate()
    {
        let id = TenantId(100 + i as u64);
        assert!(
            matches!(
                db.register_tenant(tenant(id.0, label)),
                Err(TidalError::InvalidTenantConfig { tenant, .. }) if tenant == id.0
            ),
            "{label:?} was accepted"
        );
        assert!(!data.join(format!("tenants/{}", id.0)).exists());
    }
    db.close().unwrap();
    let paths = walk(root.path());
    assert!(paths.len() > 10, "{paths:?}");
    for p in &paths {
        assert!(
            p.starts_with(&data),
            "{} is outside the data dir",
            p.display()
        );
    }
    let tenant_dirs: Vec<String> = listing(&data.join("tenants")).into_keys().collect();
    assert_eq!(tenant_dirs, ["1", "2", "3", "4", "5", "6"]);
}

/// Opens `dir` after `stray` was put under `tenants/`, expecting `Corruption` naming it.
fn assert_open_refuses(dir: &Path, stray: &Path) {
    let err = TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .open()
        .unwrap_err();
    match err {
        TidalError::Corruption { path, .. } if path.starts_with(stray) => {}
        other => panic!("{}: expected Corruption, got {other:?}", stray.display()),
    }
}

#[test]
fn stray_entries_under_tenants_are_corruption_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    {
        let db = open(&data);
        db.register_tenant(tenant(1, "real")).unwrap();
        db.signal_for_tenant(TenantId(1), "view", EntityId(1), 1.0, Some(ts(T0)))
            .unwrap();
    }
    let tenants = data.join("tenants");
    // Names that are not a canonical tenant id, even if they hold a valid tenant.
    for name in [
        "007",
        "0",
        "abc",
        "-1",
        "+5",
        " 5",
        "..5",
        "1..",
        "99999999999999999999",
    ] {
        let stray = tenants.join(name);
        fs::create_dir(&stray).unwrap();
        assert_open_refuses(&data, &stray);
        fs::remove_dir(&stray).unwrap();
    }
    // A file, and a symbolic link that would put a log outside the data dir.
    let file = tenants.join("5");
    fs::write(&file, b"x").unwrap();
    assert_open_refuses(&data, &file);
    fs::remove_file(&file).unwrap();
    #[cfg(unix)]
    {
        let link = tenants.join("9");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert_open_refuses(&data, &link);
        fs::remove_file(&link).unwrap();
        assert!(walk(&outside).is_empty());
    }
    // A config for another tenant, one that does not parse, and data without a config.
    let wrong = tenants.join("7");
    fs::create_dir(&wrong).unwrap();
    fs::write(
        wrong.join("tenant.json"),
        serde_json::to_vec(&tenant(8, "eight")).unwrap(),
    )
    .unwrap();
    assert_open_refuses(&data, &wrong);
    fs::write(wrong.join("tenant.json"), b"{\"tenant_id\": 7,").unwrap();
    assert_open_refuses(&data, &wrong);
    fs::remove_file(wrong.join("tenant.json")).unwrap();
    fs::create_dir(wrong.join("wal")).unwrap();
    assert_open_refuses(&data, &wrong);
    fs::remove_dir_all(&wrong).unwrap();
    // A registration interrupted before its config was renamed into place was never
    // acknowledged: it is cleared away, and the real tenant is intact.
    let interrupted = tenants.join("13");
    fs::create_dir(&interrupted).unwrap();
    fs::write(interrupted.join("tenant.json.tmp"), b"{").unwrap();
    let db = open(&data);
    assert!(!interrupted.exists());
    assert_eq!(db.tenants(), vec![tenant(1, "real")]);
    assert_eq!(
        db.total_signal_count_for_tenant(TenantId(1), "view")
            .unwrap(),
        1
    );
    db.register_tenant(tenant(13, "again")).unwrap();
}

#[test]
fn batched_tenant_writes_reach_disk_without_a_flush_call() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_batched(dir.path());
    db.register_tenant(tenant(8, "batched")).unwrap();
    let wal = dir.path().join("tenants/8/wal");
    let on_disk = || -> u64 { listing(&wal).values().sum() };
    let empty = on_disk();
    db.signal_for_tenant(TenantId(8), "view", EntityId(1), 1.0, Some(ts(T0)))
        .unwrap();
    // The flusher commits within 1.25 × max_delay (20 ms) of the write.
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_disk() == empty {
        assert!(Instant::now() < deadline, "the batch was never committed");
        std::thread::sleep(Duration::from_millis(5));
    }
}
