//! The log knows the schema it was written under. Without `schema.json`, replaying it
//! under another schema with as many signals would relabel every event; it is refused
//! with `SchemaMismatch`, and the refused schema is not recorded.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common;
use common::{T0, ts};
use tidaldb::{DecaySpec, EntityId, EntityKind, Schema, TidalDb, TidalError};

/// "view" then "like": two item signals.
fn view_like() -> Schema {
    common::view_signal(Duration::from_secs(3600))
        .add()
        .signal("like", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap()
}

/// The same two signals, declared in the other order: index 0 now means "like".
fn like_view() -> Schema {
    Schema::builder()
        .signal("like", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(3600),
            },
        )
        .add()
        .build()
        .unwrap()
}

fn open(dir: &Path, schema: Schema) -> Result<TidalDb, TidalError> {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema)
        .open()
}

#[test]
fn without_schema_json_a_log_is_refused_under_another_schema() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path(), view_like()).unwrap();
        db.signal("view", EntityId(1), 1.0, Some(ts(T0))).unwrap();
        db.signal("like", EntityId(2), 1.0, Some(ts(T0))).unwrap();
    }
    fs::remove_file(dir.path().join("schema.json")).unwrap();

    match open(dir.path(), like_view()) {
        Err(TidalError::SchemaMismatch { path, .. }) => {
            assert!(
                path.starts_with(dir.path().join("wal")),
                "{}",
                path.display()
            )
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    assert!(
        !dir.path().join("schema.json").exists(),
        "the refused schema is not recorded"
    );

    // Under its own schema the log opens, every event under its own name, and the
    // schema is recorded again.
    let db = open(dir.path(), view_like()).unwrap();
    let at = ts(T0);
    assert_eq!(
        db.read_decay_score_at(EntityId(1), "view", at).unwrap(),
        1.0
    );
    assert_eq!(
        db.read_decay_score_at(EntityId(1), "like", at).unwrap(),
        0.0
    );
    assert_eq!(
        db.read_decay_score_at(EntityId(2), "like", at).unwrap(),
        1.0
    );
    assert_eq!(
        db.read_decay_score_at(EntityId(2), "view", at).unwrap(),
        0.0
    );
    drop(db);
    assert!(dir.path().join("schema.json").exists());
    assert!(matches!(
        open(dir.path(), like_view()),
        Err(TidalError::SchemaMismatch { .. })
    ));
}
