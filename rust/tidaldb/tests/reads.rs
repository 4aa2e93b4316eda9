//! Reads through the public `TidalDb` API against independent oracles: retrieval against a
//! brute-force sort, velocity against its definition, linear decay and its horizon, hides
//! against last-writer semantics, and the closed state.

use std::collections::HashSet;
use std::time::Duration;

mod common;
use common::{T0, ts};

use tidaldb::{
    DecaySpec, EntityId, EntityKind, Retrieve, Schema, TidalDb, TidalError, Timestamp, Window,
};

const HOUR: i64 = 3_600_000_000_000;

fn db() -> TidalDb {
    common::view_like_trial_db()
}

#[test]
fn retrieve_matches_a_brute_force_ranking_and_never_returns_hidden_items() {
    let db = db();
    let user = EntityId(9);
    let mut hidden = HashSet::new();
    for i in 0..500u64 {
        let t = ts(T0 + (i as i64 * 7919 % 1000) * 60_000_000_000);
        db.signal("view", EntityId(i % 97), 1.0 + (i % 5) as f64, Some(t))
            .unwrap();
        db.signal("like", EntityId(i % 89), 0.5, Some(t)).unwrap();
        if i % 11 == 0 {
            db.hide_item(user, EntityId(i % 97), None).unwrap();
            hidden.insert(i % 97);
        }
        if i % 33 == 0 {
            db.unhide_item(user, EntityId(i % 97), None).unwrap();
            hidden.remove(&(i % 97));
        }
    }
    let at = ts(T0 + 30 * HOUR);
    let candidates: Vec<EntityId> = (0..120u64).chain(0..10).map(EntityId).collect();
    for limit in [0, 1, 5, 50, 500] {
        let q = Retrieve::builder()
            .for_user(user)
            .candidates(candidates.iter().copied())
            .rank_by(&[("view", 1.0), ("like", 3.0)])
            .limit(limit)
            .at(at)
            .build()
            .unwrap();
        let got = db.retrieve(&q).unwrap();

        let mut oracle: Vec<(f64, u64)> = (0..120u64)
            .filter(|i| !hidden.contains(i))
            .map(|i| {
                let v = db.read_decay_score_at(EntityId(i), "view", at).unwrap();
                let l = db.read_decay_score_at(EntityId(i), "like", at).unwrap();
                (v + 3.0 * l, i)
            })
            .collect();
        oracle.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        oracle.truncate(limit);
        let got_pairs: Vec<(f64, u64)> = got.items.iter().map(|s| (s.score, s.item.0)).collect();
        assert_eq!(got_pairs, oracle, "limit {limit}");

        let s = &got.stats;
        assert_eq!(s.candidates_considered, 120, "duplicates are removed");
        assert_eq!(
            s.hidden_filtered,
            (0..120).filter(|i| hidden.contains(i)).count()
        );
        assert_eq!(s.candidates_after_filter, 120 - s.hidden_filtered);
        assert_eq!(s.returned, got.items.len());
        assert!(!s.degraded && s.shards_unreachable.is_empty() && s.shards_reached.len() == 1);
    }
}

#[test]
fn retrieve_refuses_bad_requests() {
    let db = db();
    let no_terms = Retrieve::builder().candidates([EntityId(1)]).build();
    assert!(matches!(no_terms, Err(TidalError::InvalidArgument { .. })));
    let nan = Retrieve::builder().rank_by(&[("view", f64::NAN)]).build();
    assert!(matches!(nan, Err(TidalError::InvalidArgument { .. })));
    let unknown = Retrieve::builder()
        .rank_by(&[("nope", 1.0)])
        .build()
        .unwrap();
    assert!(matches!(
        db.retrieve(&unknown),
        Err(TidalError::UnknownSignal { .. })
    ));
}

#[test]
fn velocity_is_weight_per_hour_over_the_shortest_window() {
    let db = db();
    for minute in 0..30i64 {
        db.signal(
            "view",
            EntityId(1),
            2.0,
            Some(ts(T0 + minute * 60_000_000_000)),
        )
        .unwrap();
    }
    let at = ts(T0 + 29 * 60_000_000_000);
    assert_eq!(db.read_velocity_at(EntityId(1), "view", at).unwrap(), 60.0);
    assert!(matches!(
        db.read_velocity_at(EntityId(1), "like", at),
        Err(TidalError::InvalidArgument { .. })
    ));
    assert!(matches!(
        db.read_window_at(EntityId(1), "like", Window::OneHour, at),
        Err(TidalError::UnknownWindow { .. })
    ));
    // "all" exists on every signal with windows, and counts every applied event whatever
    // the time of the read; a signal without windows keeps no counts at all.
    assert!(matches!(
        db.read_window_at(EntityId(1), "like", Window::AllTime, at),
        Err(TidalError::UnknownWindow { .. })
    ));
    for read_at in [ts(T0), at, ts(T0 + 100 * HOUR)] {
        let all = db
            .read_window_at(EntityId(1), "view", Window::AllTime, read_at)
            .unwrap();
        assert_eq!((all.count, all.weight_sum), (30, 60.0));
    }
}

#[test]
fn linear_decay_reads_and_refuses_reads_before_its_horizon() {
    let db = db();
    db.signal("trial", EntityId(3), 10.0, Some(ts(T0))).unwrap();
    assert_eq!(
        db.read_decay_score_at(EntityId(3), "trial", ts(T0 + 5 * HOUR))
            .unwrap(),
        5.0
    );
    assert_eq!(
        db.read_decay_score_at(EntityId(3), "trial", ts(T0 + 11 * HOUR))
            .unwrap(),
        0.0
    );
    // an event 20h later drops the first from memory: reads back at +5h are now refused
    db.signal("trial", EntityId(3), 1.0, Some(ts(T0 + 20 * HOUR)))
        .unwrap();
    assert!(matches!(
        db.read_decay_score_at(EntityId(3), "trial", ts(T0 + 5 * HOUR)),
        Err(TidalError::BeforeRetainedHistory { .. })
    ));
    assert_eq!(
        db.read_decay_score_at(EntityId(3), "trial", ts(T0 + 20 * HOUR))
            .unwrap(),
        1.0
    );
}

#[test]
fn the_latest_of_hide_and_unhide_wins() {
    let db = db();
    let (u, i) = (EntityId(1), EntityId(2));
    assert!(!db.is_hidden(u, i).unwrap());
    db.hide_item(u, i, None).unwrap();
    assert!(db.is_hidden(u, i).unwrap());
    db.unhide_item(u, i, None).unwrap();
    assert!(!db.is_hidden(u, i).unwrap());
    db.hide_item(u, i, None).unwrap();
    assert!(db.is_hidden(u, i).unwrap());
    assert!(!db.is_hidden(EntityId(5), i).unwrap(), "hides are per user");
}

#[test]
fn a_closed_database_refuses_everything_and_releases_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::builder()
        .signal("c", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap();
    let open = || {
        TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema.clone())
            .open()
    };
    let db = open().unwrap();
    let clone = db.clone();
    db.signal("c", EntityId(1), 1.0, None).unwrap();
    db.close().unwrap();
    assert!(matches!(
        clone.signal("c", EntityId(1), 1.0, None),
        Err(TidalError::Unavailable(_))
    ));
    assert!(matches!(
        clone.read_decay_score(EntityId(1), "c"),
        Err(TidalError::Unavailable(_))
    ));
    let reopened = open().expect("close must release the directory lock at once");
    assert_eq!(reopened.read_decay_score(EntityId(1), "c").unwrap(), 1.0);
}

#[test]
fn timestamps_too_far_ahead_of_the_clock_are_refused_and_write_nothing() {
    let db = db();
    let now = Timestamp::now().as_nanos();
    let minute = 60_000_000_000;
    db.signal("view", EntityId(1), 1.0, Some(ts(now + minute)))
        .unwrap();
    let err = db
        .signal("view", EntityId(1), 1.0, Some(ts(now + 10 * minute)))
        .unwrap_err();
    assert!(matches!(err, TidalError::TimestampInFuture { .. }), "{err}");
    let batch = db.signal_batch(
        "view",
        &[EntityId(2), EntityId(3)],
        &[1.0, 1.0],
        Some(&[ts(now), ts(now + 10 * minute)]),
    );
    assert!(matches!(batch, Err(TidalError::TimestampInFuture { .. })));
    assert_eq!(db.events_applied().unwrap(), 1);

    let lenient = TidalDb::builder()
        .ephemeral()
        .with_schema(db.schema().as_ref().clone())
        .max_future_skew(Duration::from_secs(3600))
        .open()
        .unwrap();
    lenient
        .signal("view", EntityId(1), 1.0, Some(ts(now + 10 * minute)))
        .unwrap();
}

#[test]
fn a_read_whose_value_would_overflow_is_refused_not_infinite() {
    let schema = Schema::builder()
        .signal(
            "fast",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(60),
            },
        )
        .add()
        .build()
        .unwrap();
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema)
        .open()
        .unwrap();
    db.signal("fast", EntityId(1), 1.0, Some(ts(T0))).unwrap();
    // a day before the event is 1440 half-lives: 2^1440 overflows an f64
    let err = db
        .read_decay_score_at(EntityId(1), "fast", ts(T0 - 24 * HOUR))
        .unwrap_err();
    assert!(matches!(err, TidalError::ReadOverflow { .. }), "{err}");
    let q = Retrieve::builder()
        .candidates([EntityId(1)])
        .rank_by(&[("fast", 1.0)])
        .at(ts(T0 - 24 * HOUR))
        .build()
        .unwrap();
    assert!(matches!(
        db.retrieve(&q),
        Err(TidalError::ReadOverflow { .. })
    ));
    // an hour before is 2^60 times the weight: large, finite, and what the formula says
    let hour_before = db
        .read_decay_score_at(EntityId(1), "fast", ts(T0 - HOUR))
        .unwrap();
    assert_eq!(hour_before, 2f64.powi(60));
}
