//! Applying bulk writes on several threads changes nothing but the speed: 1, 2 and 4
//! threads give bit-identical scores, window counts and top-k, equal to a ledger that
//! applied the events one at a time and (within rounding) to the analytical decay formula.
//! A database spreads a batch only while that has been timed faster, so which batches it
//! spread depends on the machine; the ledger-level test forces every batch to be spread.
//!
//! The workloads are random. A failure prints its seed; replay it with
//! `TIDALDB_SEED=<seed> cargo test -p tidaldb --test ingest_threads`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tidaldb::ledger::{Ledger, PARALLEL_MIN_EVENTS};
use tidaldb::schema::SignalIdx;
use tidaldb::{
    EntityId, Event, EventId, NodeId, Retrieve, Schema, TidalDb, TidalError, Timestamp, Window,
};

mod common;
use common::{SplitMix, T0, ts};

const HALF_LIFE: Duration = Duration::from_secs(600);
const MINUTE: i64 = 60_000_000_000;

fn schema() -> Schema {
    common::windowed_view_and_linear(HALF_LIFE, Duration::from_secs(1800))
}

/// The seed from `TIDALDB_SEED`, else a fresh one; printed if the test fails.
fn seed() -> common::SeedReport {
    common::seed("ingest_threads")
}

/// A random workload: `n` events over up to `entities` entities, a tenth of them hot,
/// with weights of several magnitudes and timestamps out of order within the 30 minutes
/// before `T0`.
struct Workload {
    ids: Vec<EntityId>,
    weights: Vec<f64>,
    times: Vec<Timestamp>,
}

fn workload(rng: &mut SplitMix, n: usize) -> Workload {
    let entities = 1 + rng.below(20_000);
    let hot = 1 + entities / 10;
    let mut w = Workload {
        ids: Vec::with_capacity(n),
        weights: Vec::with_capacity(n),
        times: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let id = if rng.below(2) == 0 {
            rng.below(hot)
        } else {
            rng.below(entities)
        };
        w.ids.push(EntityId(id));
        w.weights.push(match rng.below(4) {
            0 => 1.0,
            1 => 0.5,
            2 => (rng.below(1_000_000) as f64 + 1.0) / 1000.0,
            _ => 1.0 + rng.below(1000) as f64,
        });
        w.times.push(ts(T0 - rng.below(30 * MINUTE as u64) as i64));
    }
    w
}

fn open(threads: usize) -> TidalDb {
    common::ephemeral_db(schema(), threads)
}

/// Everything a reader can see of one database at `at`, in comparable form.
struct Observed {
    view_bits: Vec<u64>,
    lin_bits: Vec<u64>,
    windows: Vec<(u64, u64, u64)>,
    top: Vec<(EntityId, u64)>,
}

fn observe(db: &TidalDb, entities: &[EntityId], at: Timestamp) -> Observed {
    let scores = |signal: &str| {
        let mut out = vec![0.0; entities.len()];
        db.read_decay_scores_at(signal, entities, at, &mut out)
            .unwrap();
        out.into_iter().map(f64::to_bits).collect()
    };
    let count = |e: EntityId, w: Window| db.read_window_at(e, "view", w, at).unwrap().count;
    let q = Retrieve::builder()
        .candidates(entities.iter().copied())
        .rank_by(&[("view", 1.0), ("lin", 0.25)])
        .limit(50)
        .at(at)
        .build()
        .unwrap();
    Observed {
        view_bits: scores("view"),
        lin_bits: scores("lin"),
        windows: entities
            .iter()
            .map(|e| {
                (
                    count(*e, Window::OneHour),
                    count(*e, Window::TwentyFourHours),
                    count(*e, Window::AllTime),
                )
            })
            .collect(),
        top: db
            .retrieve(&q)
            .unwrap()
            .items
            .iter()
            .map(|s| (s.item, s.score.to_bits()))
            .collect(),
    }
}

#[test]
fn one_two_and_four_threads_give_bit_identical_reads_that_match_the_formula() {
    let seed = seed();
    let mut rng = SplitMix(seed.0);
    // Calls well past one parallel chunk, and a short one that stays on one thread.
    let sizes = [3 * PARALLEL_MIN_EVENTS + rng.below(40_000) as usize, 1000];
    let batches: Vec<Workload> = sizes.iter().map(|n| workload(&mut rng, *n)).collect();
    let dbs: Vec<TidalDb> = [1, 2, 4].into_iter().map(open).collect();
    for db in &dbs {
        for b in &batches {
            for signal in ["view", "lin"] {
                db.signal_batch(signal, &b.ids, &b.weights, Some(&b.times))
                    .unwrap();
            }
        }
    }
    let mut expected: HashMap<EntityId, (f64, u64)> = HashMap::new();
    let at = ts(T0 + MINUTE);
    let half_life = HALF_LIFE.as_nanos() as f64;
    for b in &batches {
        for ((id, w), t) in b.ids.iter().zip(&b.weights).zip(&b.times) {
            let e = expected.entry(*id).or_default();
            e.0 += w * 2f64.powf(-((at.as_nanos() - t.as_nanos()) as f64) / half_life);
            e.1 += 1;
        }
    }
    let mut entities: Vec<EntityId> = expected.keys().copied().collect();
    entities.sort();
    let serial = observe(&dbs[0], &entities, at);
    for (db, threads) in dbs.iter().zip([1, 2, 4]).skip(1) {
        let got = observe(db, &entities, at);
        // Field by field, so that a failure names what differs without printing it all.
        let same = [
            ("view scores", got.view_bits == serial.view_bits),
            ("lin scores", got.lin_bits == serial.lin_bits),
            ("window counts", got.windows == serial.windows),
            ("top-50", got.top == serial.top),
        ];
        for (what, equal) in same {
            assert!(
                equal,
                "{what}: {threads} threads against 1 (seed {})",
                seed.0
            );
        }
    }
    for (i, e) in entities.iter().enumerate() {
        let (score, count) = expected[e];
        let got = f64::from_bits(serial.view_bits[i]);
        assert!(
            (got - score).abs() <= 1e-9 * score.abs(),
            "entity {}: score {got}, formula {score} (seed {})",
            e.0,
            seed.0
        );
        // Every event is within the last 31 minutes, so every window holds all of them.
        assert_eq!(serial.windows[i], (count, count, count), "entity {}", e.0);
    }
    assert_eq!(serial.top.len(), 50.min(entities.len()));
}

/// Two origins' events, each origin's in seq order, both signals interleaved.
fn events(rng: &mut SplitMix) -> Vec<Vec<Event>> {
    (0..2u16)
        .map(|origin| {
            let n = 2 * PARALLEL_MIN_EVENTS + rng.below(20_000) as usize;
            let w = workload(rng, n);
            (0..w.ids.len())
                .map(|i| {
                    let signal = u16::from(rng.below(3) == 0);
                    let id = EventId {
                        origin: NodeId(origin),
                        seq: i as u64 + 1,
                    };
                    common::signal_event(id, SignalIdx(signal), w.ids[i], w.weights[i], w.times[i])
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_partitioned_apply_equals_applying_one_event_at_a_time() {
    let seed = seed();
    let mut rng = SplitMix(seed.0 ^ 0x5eed);
    let origins = events(&mut rng);
    let schema = Arc::new(schema());
    let mut one_by_one = Ledger::new(schema.clone());
    for e in origins.iter().flatten() {
        one_by_one.apply(e).unwrap();
    }
    // Batches of random sizes, from under the parallel threshold to several times it.
    let mut cuts = Vec::new();
    for run in &origins {
        let mut start = 0;
        while start < run.len() {
            let len = 1 + rng.below(3 * PARALLEL_MIN_EVENTS as u64) as usize;
            cuts.push((run, start, run.len().min(start + len)));
            start += len;
        }
    }
    for threads in [1, 2, 4, 7] {
        let mut ledger = Ledger::new(schema.clone());
        ledger.set_apply_threads(threads);
        ledger.spread_always();
        for (run, start, end) in &cuts {
            ledger.apply_batch(&run[*start..*end]).unwrap();
        }
        assert_eq!(
            ledger.version_vector(),
            one_by_one.version_vector(),
            "seed {}",
            seed.0
        );
        assert_eq!(
            ledger.state_digest(),
            one_by_one.state_digest(),
            "{threads} threads against one event at a time (seed {})",
            seed.0
        );
        // Slots are numbered alike too, so a snapshot writes the same bytes.
        for (a, b) in ledger
            .signal_ledgers()
            .iter()
            .zip(one_by_one.signal_ledgers())
        {
            assert!(a.entities() == b.entities(), "slot order (seed {})", seed.0);
        }
    }
}

#[test]
fn a_bad_op_in_the_last_chunk_writes_nothing_on_any_thread_count() {
    let seed = seed();
    let mut rng = SplitMix(seed.0);
    let mut w = workload(&mut rng, 5 * PARALLEL_MIN_EVENTS);
    let last = w.ids.len() - 1;
    w.weights[last] = f64::INFINITY;
    for threads in [1, 4] {
        let db = open(threads);
        let err = db
            .signal_batch("view", &w.ids, &w.weights, Some(&w.times))
            .unwrap_err();
        assert!(matches!(err, TidalError::InvalidWeight { .. }), "{err}");
        assert_eq!(db.events_applied().unwrap(), 0, "{threads} threads");
    }
}

#[test]
fn zero_ingest_threads_is_refused_at_open() {
    let err = TidalDb::builder()
        .ephemeral()
        .ingest_threads(0)
        .with_schema(schema())
        .open()
        .unwrap_err();
    assert!(
        matches!(
            err,
            TidalError::InvalidArgument {
                name: "ingest_threads",
                ..
            }
        ),
        "{err}"
    );
}
