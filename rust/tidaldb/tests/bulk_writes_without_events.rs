//! An in-memory database applies a bulk write straight from its columns, building no
//! events (`node/unlogged.rs`); a database with a log builds and logs every event. Both
//! must end in the same state: for the same random writes (bulk calls of every size
//! around the chunk sizes, on one and on several threads, single writes and hides in
//! between), every score, window reading, version vector and top-k is bit-identical,
//! before and after the logged database is reopened from its log.
//!
//! A failure prints its seed; replay it with
//! `TIDALDB_SEED=<seed> cargo test -p tidaldb --test bulk_writes_without_events`.

use std::time::Duration;

use tidaldb::runtime::BULK_CHUNK;
use tidaldb::wal::Durability;
use tidaldb::{EntityId, Retrieve, Schema, TidalDb, TidalError, Timestamp, Window};

mod common;
use common::{SplitMix, T0, ts};

const ENTITIES: u64 = 3_000;
const MINUTE: i64 = 60_000_000_000;
const USER: EntityId = EntityId(1 << 40);

fn schema() -> Schema {
    common::windowed_view_and_linear(Duration::from_secs(600), Duration::from_secs(3600))
}

/// An in-memory database; on more than one thread it spreads every large chunk (this
/// test's process never times whether spreading pays), so both ways of applying run.
fn in_memory(threads: usize) -> TidalDb {
    tidaldb::ledger::spread_every_batch();
    common::ephemeral_db(schema(), threads)
}

fn logged(dir: &std::path::Path) -> TidalDb {
    TidalDb::builder()
        .with_data_dir(dir)
        .durability(Durability::Batched {
            max_batch: 1 << 20,
            max_delay: Duration::from_secs(60),
        })
        .with_schema(schema())
        .open()
        .unwrap()
}

/// Everything a reader can see, as bits.
fn observe(db: &TidalDb) -> Vec<u64> {
    let ids: Vec<EntityId> = (0..ENTITIES).map(EntityId).collect();
    let at = ts(T0 + MINUTE);
    let mut seen = vec![db.events_applied().unwrap()];
    for signal in ["view", "lin"] {
        let mut out = vec![0.0; ids.len()];
        db.read_decay_scores_at(signal, &ids, at, &mut out).unwrap();
        seen.extend(out.iter().map(|s| s.to_bits()));
    }
    for &id in ids.iter().step_by(7) {
        for window in [Window::OneHour, Window::TwentyFourHours] {
            let r = db.read_window_at(id, "view", window, at).unwrap();
            seen.extend([r.count, r.weight_sum.to_bits()]);
        }
    }
    let q = Retrieve::builder()
        .for_user(USER)
        .candidates(ids.iter().copied())
        .rank_by(&[("view", 1.0), ("lin", 0.5)])
        .limit(50)
        .at(at)
        .build()
        .unwrap();
    for item in db.retrieve(&q).unwrap().items {
        seen.extend([item.item.0, item.score.to_bits()]);
    }
    seen
}

#[test]
fn a_bulk_write_without_events_ends_where_the_logged_events_do() {
    let seed = common::seed("bulk_writes_without_events");
    let mut rng = SplitMix(seed.0);
    let dir = tempfile::tempdir().unwrap();
    let dbs = [in_memory(1), in_memory(3), logged(dir.path())];
    let sizes = [
        1,
        17,
        BULK_CHUNK - 1,
        BULK_CHUNK,
        BULK_CHUNK + 1,
        3 * BULK_CHUNK + 5,
        20_000,
        70_000,
    ];
    for round in 0..12 {
        let n = sizes[rng.below(sizes.len() as u64) as usize];
        let signal = ["view", "lin"][round % 2];
        let ids: Vec<EntityId> = (0..n).map(|_| EntityId(rng.below(ENTITIES))).collect();
        let weights: Vec<f64> = (0..n).map(|_| 0.25 * (1 + rng.below(12)) as f64).collect();
        let times: Vec<Timestamp> = (0..n)
            .map(|_| ts(T0 - rng.below(90 * MINUTE as u64) as i64))
            .collect();
        let (item, t) = (
            EntityId(rng.below(ENTITIES)),
            ts(T0 - rng.below(MINUTE as u64) as i64),
        );
        for db in &dbs {
            assert_eq!(
                db.signal_batch(signal, &ids, &weights, Some(&times))
                    .unwrap(),
                n
            );
            db.signal("view", item, 2.0, Some(t)).unwrap();
            if round % 3 == 0 {
                db.hide_item(USER, item, Some(t)).unwrap();
            }
        }
    }
    let want = observe(&dbs[2]);
    assert_eq!(observe(&dbs[0]), want, "one thread");
    assert_eq!(observe(&dbs[1]), want, "three threads");
    assert_eq!(
        dbs[0].version_vector().unwrap(),
        dbs[2].version_vector().unwrap()
    );
    let [one, three, written] = dbs;
    written.close().unwrap();
    assert_eq!(
        observe(&logged(dir.path())),
        observe(&one),
        "reopened from the log"
    );
    drop(three);
}

#[test]
fn a_bulk_write_without_times_is_dated_when_it_is_made() {
    let db = in_memory(1);
    let before = Timestamp::now();
    db.signal_batch("view", &[EntityId(1), EntityId(2)], &[1.0, 1.0], None)
        .unwrap();
    let after = Timestamp::now();
    let at = ts(after.as_nanos() + 10 * MINUTE);
    let h = Duration::from_secs(600);
    let (earliest, latest) = (
        common::decay_sum([(before, 1.0)], at, h),
        common::decay_sum([(after, 1.0)], at, h),
    );
    for id in [EntityId(1), EntityId(2)] {
        let got = db.read_decay_score_at(id, "view", at).unwrap();
        assert!(
            earliest * (1.0 - 1e-12) <= got && got <= latest * (1.0 + 1e-12),
            "{got}"
        );
    }
}

#[test]
fn a_refused_bulk_write_without_events_writes_nothing() {
    let db = in_memory(2);
    let n = 3 * BULK_CHUNK;
    let ids: Vec<EntityId> = (0..n as u64).map(EntityId).collect();
    let times = vec![ts(T0); n];
    let mut weights = vec![1.0; n];
    weights[n - 1] = f64::INFINITY;
    let refused = db.signal_batch("view", &ids, &weights, Some(&times));
    assert!(
        matches!(refused, Err(TidalError::InvalidWeight { .. })),
        "{refused:?}"
    );
    let mut future = times.clone();
    future[n - 1] = ts(Timestamp::now().as_nanos() + 3_600_000_000_000);
    let refused = db.signal_batch("view", &ids, &vec![1.0; n], Some(&future));
    assert!(
        matches!(refused, Err(TidalError::TimestampInFuture { .. })),
        "{refused:?}"
    );
    assert_eq!(db.events_applied().unwrap(), 0);
}

/// A write large enough to be checked in pieces on several threads refuses exactly what
/// one thread's check refuses, with the same error naming the same row, wherever the bad
/// row falls, and writes nothing.
#[test]
fn a_large_write_checked_in_pieces_refuses_as_one_thread_does() {
    let (spread, serial) = (in_memory(2), in_memory(1));
    let n = 300_001;
    let ids: Vec<EntityId> = (0..n as u64).map(EntityId).collect();
    let secs = vec![T0 as f64 / 1e9; n];
    let future = (Timestamp::now().as_nanos() + 3_600_000_000_000) as f64 / 1e9;
    for bad_row in [0, n / 2 + 3, n - 1] {
        let mut weights = vec![1.0; n];
        weights[bad_row] = f64::NAN;
        let mut bad_times = secs.clone();
        bad_times[bad_row] = -1.0;
        let mut late = secs.clone();
        late[bad_row] = future;
        let cases = [
            (&weights, &secs),
            (&vec![1.0; n], &bad_times),
            (&vec![1.0; n], &late),
        ];
        for (case, (weights, times)) in cases.into_iter().enumerate() {
            let refused = |db: &TidalDb| {
                db.signal_batch_secs("view", &ids, weights, Some(times))
                    .expect_err("a bad row refuses the write")
            };
            let (got, want) = (refused(&spread), refused(&serial));
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "bad row {bad_row}: {got} against {want}"
            );
            // How far ahead a future time is depends on when each write read the clock.
            if !matches!(got, TidalError::TimestampInFuture { .. }) {
                assert_eq!(
                    got.to_string(),
                    want.to_string(),
                    "case {case}, row {bad_row}"
                );
            }
        }
    }
    assert_eq!(spread.events_applied().unwrap(), 0);
    // The refused writes' entities got slots beside the check and lost them again: the
    // same write accepted now ends where it does on one thread.
    let weights = vec![1.0; n];
    for db in [&spread, &serial] {
        assert_eq!(
            db.signal_batch_secs("view", &ids, &weights, Some(&secs))
                .unwrap(),
            n
        );
    }
    assert_eq!(observe(&spread), observe(&serial));
}
