//! Random schedules of writes, snapshots and reopens: a database that restarts from its
//! files must answer every read exactly like a twin that never left memory. The twin is an
//! ephemeral database fed the same writes; reads cover exponential, linear and permanent
//! scores, windows and hides, compared bit for bit.
//!
//! Each schedule comes from a seed. A failure prints it; replay one schedule with
//! `TIDALDB_SEED=<seed> cargo test -p tidaldb --test recovery persistence_model`, and run more with
//! `TIDALDB_SEEDS=1000`.

use std::time::Duration;

use tidaldb::{DecaySpec, Durability, EntityId, EntityKind, Schema, TidalDb, Window};

use crate::common;
use common::{SplitMix, T0, ts};

const MINUTE: i64 = 60_000_000_000;

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(3600))
        .windows(&[Window::OneHour, Window::TwentyFourHours])
        .add()
        .signal(
            "trial",
            EntityKind::Item,
            DecaySpec::Linear {
                lifetime: Duration::from_secs(6 * 3600),
            },
        )
        .windows(&[Window::OneHour])
        .add()
        .signal("follow", EntityKind::Creator, DecaySpec::Permanent)
        .add()
        .build()
        .unwrap()
}

/// Every read the schedule can affect, as exact bits (an error reads as a marker).
fn fingerprint(db: &TidalDb, at: i64) -> Vec<u64> {
    let mut out = Vec::new();
    for e in 0..8 {
        let entity = EntityId(e);
        for signal in ["view", "trial", "follow"] {
            out.push(
                db.read_decay_score_at(entity, signal, ts(at))
                    .map_or(u64::MAX, f64::to_bits),
            );
        }
        for window in [Window::OneHour, Window::TwentyFourHours, Window::AllTime] {
            out.push(
                db.read_window_at(entity, "view", window, ts(at))
                    .map_or(u64::MAX, |r| r.count),
            );
        }
        out.push(db.is_hidden(EntityId(100), entity).unwrap() as u64);
    }
    out.push(db.events_applied().unwrap());
    out
}

fn run(seed: u64) {
    let mut rng = SplitMix(seed);
    let dir = tempfile::tempdir().unwrap();
    let durability = if rng.below(2) == 0 {
        Durability::Immediate
    } else {
        Durability::Batched {
            max_batch: 1 + rng.below(50) as usize,
            max_delay: Duration::from_secs(3600),
        }
    };
    let open = |snapshot_every: u64| {
        TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .durability(durability)
            .snapshot_every(snapshot_every)
            .segment_bytes(2048)
            .open()
            .unwrap()
    };
    let twin = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    let mut db = open(1 + rng.below(200));
    let mut clock = T0;
    for step in 0..300 {
        clock += (rng.below(30) as i64) * MINUTE / 2;
        // mostly in order, sometimes up to two hours late
        let t = clock
            - if rng.below(5) == 0 {
                (rng.below(120) as i64) * MINUTE
            } else {
                0
            };
        let entity = EntityId(rng.below(8));
        let weight = (1 + rng.below(20)) as f64 / 4.0;
        let signal = ["view", "trial", "follow"][rng.below(3) as usize];
        match rng.below(20) {
            0 => {
                db.hide_item(EntityId(100), entity, None).unwrap();
                twin.hide_item(EntityId(100), entity, None).unwrap();
            }
            1 => {
                db.unhide_item(EntityId(100), entity, None).unwrap();
                twin.unhide_item(EntityId(100), entity, None).unwrap();
            }
            2 => {
                db.snapshot().unwrap();
            }
            3 => {
                // a clean restart, sometimes with another snapshot cadence
                db.close().unwrap();
                db = open(1 + rng.below(200));
                assert_eq!(
                    fingerprint(&db, clock),
                    fingerprint(&twin, clock),
                    "seed {seed}: after reopen at step {step}"
                );
            }
            _ => {
                db.signal(signal, entity, weight, Some(ts(t))).unwrap();
                twin.signal(signal, entity, weight, Some(ts(t))).unwrap();
            }
        }
    }
    db.close().unwrap();
    let db = open(0);
    for at in [clock, clock + 30 * MINUTE, clock + 48 * 60 * MINUTE] {
        assert_eq!(
            fingerprint(&db, at),
            fingerprint(&twin, at),
            "seed {seed}: final reopen, read at {at}"
        );
    }
}

#[test]
fn a_restarted_database_answers_exactly_like_one_that_never_stopped() {
    if let Ok(seed) = std::env::var("TIDALDB_SEED") {
        run(seed.parse().expect("TIDALDB_SEED is a u64"));
        return;
    }
    let seeds: u64 = std::env::var("TIDALDB_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    for seed in 0..seeds {
        let outcome = std::panic::catch_unwind(|| run(seed));
        if outcome.is_err() {
            panic!(
                "seed {seed} failed; replay it with TIDALDB_SEED={seed} cargo test -p tidaldb --test recovery persistence_model"
            );
        }
    }
}
