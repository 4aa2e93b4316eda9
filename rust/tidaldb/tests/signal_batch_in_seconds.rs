//! `TidalDb::signal_batch_secs` takes a bulk write's times as Unix seconds (as numpy holds
//! them). An in-memory database reads them in place, row by row; a logged one converts
//! them first. Either way the write must be the one `signal_batch` makes with the
//! timestamps `Timestamp::from_secs_f64` gives, bit for bit, and a time out of range
//! anywhere must refuse the whole write.
//!
//! The workload is random; a failure prints its seed. Replay it with
//! `TIDALDB_SEED=<seed> cargo test -p tidaldb --test signal_batch_in_seconds`.

use std::time::Duration;

use tidaldb::{EntityId, Schema, TidalDb, TidalError, Timestamp};

mod common;
use common::SplitMix;

const ENTITIES: u64 = 2_000;

fn schema() -> Schema {
    common::windowed_view_and_linear(Duration::from_secs(600), Duration::from_secs(3600))
}

fn logged(dir: &std::path::Path) -> TidalDb {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .open()
        .unwrap()
}

/// Every score of both signals, as bits, a minute after the latest write.
fn observe(db: &TidalDb, at: Timestamp) -> Vec<u64> {
    let ids: Vec<EntityId> = (0..ENTITIES).map(EntityId).collect();
    let mut seen = vec![db.events_applied().unwrap()];
    for signal in ["view", "lin"] {
        let mut out = vec![0.0; ids.len()];
        db.read_decay_scores_at(signal, &ids, at, &mut out).unwrap();
        seen.extend(out.iter().map(|s| s.to_bits()));
    }
    seen
}

#[test]
fn times_in_seconds_write_what_their_timestamps_write() {
    let seed = common::seed("signal_batch_in_seconds");
    let mut rng = SplitMix(seed.0);
    let dir = tempfile::tempdir().unwrap();
    let (dir_secs, dir_stamps) = (dir.path().join("secs"), dir.path().join("stamps"));
    let with_secs = [
        common::ephemeral_db(schema(), 1),
        common::ephemeral_db(schema(), 2),
        logged(&dir_secs),
    ];
    let with_stamps = [common::ephemeral_db(schema(), 1), logged(&dir_stamps)];
    let base = 1.7e9;
    for round in 0..6 {
        let n = [5, 4096, 20_000, 70_000][rng.below(4) as usize];
        let signal = ["view", "lin"][round % 2];
        let ids: Vec<EntityId> = (0..n).map(|_| EntityId(rng.below(ENTITIES))).collect();
        let weights: Vec<f64> = (0..n).map(|_| 1.0 + rng.below(4) as f64 / 4.0).collect();
        // Fractions of a second that round both ways, and repeated seconds.
        let secs: Vec<f64> = (0..n)
            .map(|_| {
                base + round as f64 * 60.0
                    + rng.below(600) as f64
                    + rng.below(1000) as f64 * 1.5e-10
            })
            .collect();
        let stamps: Vec<Timestamp> = secs
            .iter()
            .map(|&s| Timestamp::from_secs_f64(s).unwrap())
            .collect();
        for db in &with_secs {
            assert_eq!(
                db.signal_batch_secs(signal, &ids, &weights, Some(&secs))
                    .unwrap(),
                n,
            );
        }
        for db in &with_stamps {
            db.signal_batch(signal, &ids, &weights, Some(&stamps))
                .unwrap();
        }
    }
    let at = Timestamp::from_secs_f64(base + 7.0 * 60.0 + 600.0).unwrap();
    let want = observe(&with_stamps[0], at);
    assert_eq!(observe(&with_stamps[1], at), want);
    for db in &with_secs {
        assert_eq!(observe(db, at), want);
    }
}

#[test]
fn a_time_out_of_range_refuses_the_whole_write() {
    let dir = tempfile::tempdir().unwrap();
    for db in [common::ephemeral_db(schema(), 1), logged(dir.path())] {
        let ids: Vec<EntityId> = (0..9_000).map(|i| EntityId(i % 100)).collect();
        let weights = vec![1.0; ids.len()];
        for bad in [f64::NAN, -1.0, f64::INFINITY, 1e12] {
            let mut secs = vec![1.7e9; ids.len()];
            secs[8_500] = bad;
            let refused = db.signal_batch_secs("view", &ids, &weights, Some(&secs));
            assert!(
                matches!(refused, Err(TidalError::TimestampOutOfRange { .. })),
                "{bad}: {refused:?}"
            );
            assert_eq!(db.events_applied().unwrap(), 0, "{bad}");
        }
        let short = db.signal_batch_secs("view", &ids, &weights, Some(&[1.7e9; 3]));
        assert!(
            matches!(short, Err(TidalError::InvalidArgument { .. })),
            "{short:?}"
        );
    }
}
