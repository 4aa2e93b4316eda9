//! Hides and unhides carry the time they happened, and the later one in event time wins,
//! whatever order they are written in. The oracle is a list of the writes: the verdict
//! for a pair is that of its write with the greatest (time, write order).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod common;
use common::{SplitMix, T0, ts};
use tidaldb::{EntityId, ErrorKind, Schema, TidalDb};

const SEC: i64 = 1_000_000_000;

/// (user, item) -> ((event time, write order) of the winning write, whether it hid).
type Model = BTreeMap<(u64, u64), ((i64, usize), bool)>;

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(3600))
        .add()
        .build()
        .expect("valid schema")
}

fn open(dir: Option<&Path>) -> TidalDb {
    let builder = TidalDb::builder().with_schema(schema());
    match dir {
        Some(dir) => builder.with_data_dir(dir).open(),
        None => builder.ephemeral().open(),
    }
    .expect("open")
}

#[test]
fn a_backfilled_hide_does_not_override_a_later_unhide() {
    let db = open(None);
    let (user, item) = (EntityId(1), EntityId(7));
    db.unhide_item(user, item, Some(ts(T0 + 100 * SEC)))
        .unwrap();
    db.hide_item(user, item, Some(ts(T0))).unwrap();
    assert!(
        !db.is_hidden(user, item).unwrap(),
        "the unhide happened later"
    );
    db.hide_item(user, item, Some(ts(T0 + 200 * SEC))).unwrap();
    assert!(
        db.is_hidden(user, item).unwrap(),
        "a hide after the unhide wins"
    );
    // At the same event time the write that came later wins.
    db.unhide_item(user, item, Some(ts(T0 + 200 * SEC)))
        .unwrap();
    assert!(!db.is_hidden(user, item).unwrap());
}

#[test]
fn a_hide_dated_too_far_ahead_is_refused_and_writes_nothing() {
    let db = open(None);
    let before = db.events_applied().unwrap();
    let ahead = tidaldb::Timestamp::now().saturating_add(Duration::from_secs(86_400 * 365));
    let err = db
        .hide_item(EntityId(1), EntityId(2), Some(ahead))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(!db.is_hidden(EntityId(1), EntityId(2)).unwrap());
    assert_eq!(db.events_applied().unwrap(), before);
}

/// Random hides and unhides with random times, checked against the model after each
/// write, then again after the log is replayed and after a snapshot is restored.
#[test]
fn hides_follow_event_time_through_replay_and_snapshots() {
    let seed = std::env::var("TIDALDB_HIDE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x51DE_5EED);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix(seed);
    let mut model = Model::new();
    let check = |db: &TidalDb, model: &Model, when: &str| {
        for (&(user, item), &(_, hidden)) in model {
            assert_eq!(
                db.is_hidden(EntityId(user), EntityId(item)).unwrap(),
                hidden,
                "pair ({user}, {item}) {when}; replay with TIDALDB_HIDE_SEED={seed}"
            );
        }
    };
    {
        let db = open(Some(dir.path()));
        for order in 0..400 {
            let (user, item) = (rng.below(3), rng.below(5));
            let at = T0 + rng.below(20) as i64 * SEC;
            let hide = rng.below(2) == 0;
            if hide {
                db.hide_item(EntityId(user), EntityId(item), Some(ts(at)))
            } else {
                db.unhide_item(EntityId(user), EntityId(item), Some(ts(at)))
            }
            .unwrap();
            let entry = model.entry((user, item)).or_insert(((i64::MIN, 0), false));
            if (at, order) > entry.0 {
                *entry = ((at, order), hide);
            }
            if order == 200 {
                db.snapshot().unwrap();
            }
        }
        check(&db, &model, "while written");
        db.close().unwrap();
    }
    let db = open(Some(dir.path()));
    check(&db, &model, "after a snapshot and a replay of the log");
}
