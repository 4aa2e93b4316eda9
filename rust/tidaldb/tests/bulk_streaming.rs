//! A bulk write far larger than the chunk it is applied in still behaves as one write:
//! validated whole (nothing lands when any op is bad), bit-identical to the same events
//! written in small calls, and whole after a reopen.

use std::time::Duration;

use tidaldb::runtime::BULK_CHUNK;
use tidaldb::{EntityId, Schema, TidalDb, TidalError, Timestamp};

mod common;

const HOUR: Duration = Duration::from_secs(3600);

fn schema() -> Schema {
    common::view_signal(HOUR).add().build().unwrap()
}

const N: usize = 3 * BULK_CHUNK + 123;
const T0: i64 = 1_700_000_000_000_000_000;

fn batch() -> (Vec<EntityId>, Vec<f64>, Vec<Timestamp>) {
    let ids = (0..N).map(|i| EntityId((i * 7919 % 1000) as u64)).collect();
    let weights = (0..N).map(|i| 0.5 + (i % 5) as f64).collect();
    let ts = (0..N)
        .map(|i| Timestamp::from_nanos(T0 + i as i64 * 1_000_000).unwrap())
        .collect();
    (ids, weights, ts)
}

fn scores(db: &TidalDb) -> Vec<u64> {
    let ids: Vec<EntityId> = (0..1000).map(EntityId).collect();
    let mut out = vec![0.0; ids.len()];
    let at = Timestamp::from_nanos(T0 + 3_600_000_000_000).unwrap();
    db.read_decay_scores_at("view", &ids, at, &mut out).unwrap();
    out.into_iter().map(f64::to_bits).collect()
}

#[test]
fn one_bad_op_anywhere_in_a_large_batch_writes_nothing() {
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    let (ids, mut weights, ts) = batch();
    // In the last chunk: every earlier chunk would have been applied had it not been
    // validated first.
    weights[N - 2] = f64::NAN;
    let err = db
        .signal_batch("view", &ids, &weights, Some(&ts))
        .unwrap_err();
    assert!(matches!(err, TidalError::InvalidWeight { .. }), "{err}");
    assert_eq!(db.events_applied().unwrap(), 0);
}

#[test]
fn a_large_batch_equals_the_same_events_in_small_calls_bit_for_bit() {
    let (ids, weights, ts) = batch();
    let open = || {
        TidalDb::builder()
            .ephemeral()
            .with_schema(schema())
            .open()
            .unwrap()
    };
    let one = open();
    assert_eq!(
        one.signal_batch("view", &ids, &weights, Some(&ts)).unwrap(),
        N
    );
    let many = open();
    for start in (0..N).step_by(1000) {
        let end = N.min(start + 1000);
        many.signal_batch(
            "view",
            &ids[start..end],
            &weights[start..end],
            Some(&ts[start..end]),
        )
        .unwrap();
    }
    assert_eq!(one.events_applied().unwrap(), N as u64);
    assert_eq!(scores(&one), scores(&many));
}

#[test]
fn a_large_batch_survives_a_reopen_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, weights, ts) = batch();
    let open = || common::open_in(dir.path(), schema());
    let db = open();
    db.signal_batch("view", &ids, &weights, Some(&ts)).unwrap();
    let before = scores(&db);
    db.close().unwrap();
    let reopened = open();
    assert_eq!(reopened.events_applied().unwrap(), N as u64);
    assert_eq!(scores(&reopened), before);
}
