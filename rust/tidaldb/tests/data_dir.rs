//! What a data directory accepts: a path that can be one, entries that are not symbolic
//! links. A refused open writes nothing, and a clean open and close leave nothing behind
//! that the next open would take for the trace of a crash. `tenant_links`: links inside a
//! tenant's directory. A registration that fails on EMFILE is in
//! `registration_out_of_fds.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

mod common;
#[path = "data_dir/tenant_links.rs"]
mod tenant_links;
use common::{T0, ts};
use tidaldb::{EntityId, TidalDb, TidalError};

fn open(dir: &Path) -> Result<TidalDb, TidalError> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(common::hourly_view_schema())
        .open()
}

/// Every path under `root` with its kind and contents (a link's target), to show that a
/// refused open changed nothing.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link to {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".into()
            } else {
                format!("file {:?}", fs::read(&path).unwrap())
            };
            out.insert(path, what);
        }
    }
    out
}

fn assert_link_refused(result: Result<TidalDb, TidalError>, link: &Path) {
    match result {
        Err(TidalError::InvalidArgument { name, reason }) => {
            assert_eq!(name, "data_dir");
            assert!(
                reason.contains(&link.display().to_string()),
                "the error names the link: {reason}"
            );
        }
        other => panic!(
            "expected InvalidArgument for {}, got {other:?}",
            link.display()
        ),
    }
}

#[test]
fn a_linked_lock_file_is_refused_and_its_target_is_untouched() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("precious.txt");
    fs::write(&target, b"do not truncate").unwrap();
    let dir = root.path().join("db");
    fs::create_dir(&dir).unwrap();
    symlink(&target, dir.join("LOCK")).unwrap();
    let before = tree(root.path());
    assert_link_refused(open(&dir), &dir.join("LOCK"));
    assert_eq!(tree(root.path()), before, "nothing written");
    assert_eq!(fs::read(&target).unwrap(), b"do not truncate");
}

#[test]
fn a_linked_wal_schema_or_segment_is_refused_writing_nothing() {
    // a database with a log, to link its pieces elsewhere
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("db");
    {
        let db = open(&dir).unwrap();
        db.signal("view", EntityId(1), 1.0, Some(ts(T0))).unwrap();
    }
    let elsewhere = root.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();

    // the whole log directory
    fs::rename(dir.join("wal"), elsewhere.join("wal")).unwrap();
    symlink(elsewhere.join("wal"), dir.join("wal")).unwrap();
    let before = tree(root.path());
    assert_link_refused(open(&dir), &dir.join("wal"));
    assert_eq!(tree(root.path()), before);
    fs::remove_file(dir.join("wal")).unwrap();
    fs::rename(elsewhere.join("wal"), dir.join("wal")).unwrap();

    // one segment inside it
    let seg = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    let moved = elsewhere.join(seg.file_name().unwrap());
    fs::rename(&seg, &moved).unwrap();
    symlink(&moved, &seg).unwrap();
    let before = tree(root.path());
    assert_link_refused(open(&dir), &seg);
    assert_eq!(tree(root.path()), before);
    fs::remove_file(&seg).unwrap();
    fs::rename(&moved, &seg).unwrap();

    // the schema record
    fs::rename(dir.join("schema.json"), elsewhere.join("schema.json")).unwrap();
    symlink(elsewhere.join("schema.json"), dir.join("schema.json")).unwrap();
    let before = tree(root.path());
    assert_link_refused(open(&dir), &dir.join("schema.json"));
    assert_eq!(tree(root.path()), before);
    fs::remove_file(dir.join("schema.json")).unwrap();
    fs::rename(elsewhere.join("schema.json"), dir.join("schema.json")).unwrap();

    // restored, it opens with its write
    assert_eq!(open(&dir).unwrap().events_applied().unwrap(), 1);
}

#[test]
fn the_data_directory_itself_may_be_a_link() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("real")).unwrap();
    symlink(root.path().join("real"), root.path().join("db")).unwrap();
    {
        let db = open(&root.path().join("db")).unwrap();
        db.signal("view", EntityId(1), 1.0, Some(ts(T0))).unwrap();
    }
    assert!(root.path().join("real/wal").is_dir());
    let db = open(&root.path().join("db")).unwrap();
    assert_eq!(db.events_applied().unwrap(), 1);
}

#[test]
fn a_path_that_cannot_be_a_directory_is_refused_writing_nothing() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let before = tree(root.path());
    for (path, what) in [(PathBuf::new(), "empty"), (file, "a file")] {
        match open(&path) {
            Err(TidalError::InvalidArgument { name, .. }) => assert_eq!(name, "data_dir", "{what}"),
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        }
    }
    assert_eq!(tree(root.path()), before);
}

#[test]
fn an_open_and_close_without_writes_leaves_no_empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let db = open(dir.path()).unwrap();
        assert_eq!(
            db.recovery_report().empty_segments_removed,
            0,
            "round {round}: nothing for recovery to clean up"
        );
        drop(db);
        let files: Vec<PathBuf> = fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.is_empty(), "round {round}: {files:?}");
    }
    // the same after writes, and after a roll to a new segment
    {
        let db = TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(common::hourly_view_schema())
            .segment_bytes(1)
            .open()
            .unwrap();
        db.signal("view", EntityId(1), 1.0, Some(ts(T0))).unwrap();
    }
    let db = open(dir.path()).unwrap();
    assert_eq!(db.recovery_report().empty_segments_removed, 0);
    assert_eq!(db.events_applied().unwrap(), 1);
}
