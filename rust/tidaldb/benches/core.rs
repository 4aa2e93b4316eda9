//! Core benchmarks. Each figure is printed beside a baseline measured in the same run, as a
//! ratio, because machines are noisy. Run with `make bench` or `cargo bench -p tidaldb`.
//!
//! Criterion does the sampling; every benchmark also records its mean time per element so
//! that the summary table at the end can print the ratios.

#[path = "shared/schema.rs"]
mod shared_schema;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tidaldb::ledger::Ledger;
use tidaldb::node::{ClientOp, Input, Node, NodeConfig, Outputs, WriteConcern, WriteRequest};
use tidaldb::schema::SignalIdx;
use tidaldb::{DecaySpec, Durability, EntityId, EntityKind, Retrieve, Schema, TidalDb, Timestamp};

const ENTITIES: u64 = 100_000;
const BATCH: usize = 100_000;
const T0: i64 = 1_700_000_000_000_000_000;
const HALF_LIFE_NS: f64 = 7.0 * 86_400e9;

/// Per benchmark: total time and total elements over every sample criterion took.
static FIGURES: Mutex<Vec<(String, Duration, u64)>> = Mutex::new(Vec::new());

fn record(name: &str, elapsed: Duration, elements: u64) {
    if let Ok(mut f) = FIGURES.lock() {
        match f.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, t, e)) => {
                *t += elapsed;
                *e += elements;
            }
            None => f.push((name.to_owned(), elapsed, elements)),
        }
    }
}

/// Mean nanoseconds per element.
fn figure(name: &str) -> f64 {
    FIGURES
        .lock()
        .ok()
        .and_then(|f| {
            f.iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, t, e)| t.as_secs_f64() * 1e9 / (*e).max(1) as f64)
        })
        .unwrap_or(f64::NAN)
}

fn schema() -> Schema {
    shared_schema::view_signal()
        .add()
        .signal(
            "like",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(86_400),
            },
        )
        .add()
        .build()
        .unwrap()
}

/// Random entity ids (xorshift), with timestamps rising by one millisecond per event.
fn workload(n: usize, seed: u64) -> (Vec<EntityId>, Vec<f64>, Vec<Timestamp>) {
    let mut x = seed | 1;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids.push(EntityId(x % ENTITIES));
    }
    let weights = (0..n).map(|i| 1.0 + (i % 3) as f64).collect();
    let ts = (0..n)
        .map(|i| Timestamp::from_nanos(T0 + i as i64 * 1_000_000).unwrap())
        .collect();
    (ids, weights, ts)
}

/// Times `f(iteration)` per element of a batch, records it under `name`.
fn bench_batch(
    c: &mut Criterion,
    group: &str,
    name: &str,
    elements: usize,
    mut f: impl FnMut(u64),
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(elements as u64));
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                f(i);
            }
            let elapsed = start.elapsed();
            record(&format!("{group}/{name}"), elapsed, iters * elements as u64);
            elapsed
        })
    });
    g.finish();
}

fn ingest(c: &mut Criterion) {
    let (ids, weights, ts) = workload(BATCH, 42);

    let mut baseline: HashMap<u64, (f64, i64)> = HashMap::with_capacity(ENTITIES as usize);
    bench_batch(c, "ingest", "hashmap_baseline", BATCH, |round| {
        let shift = round as i64 * BATCH as i64 * 1_000_000;
        for i in 0..BATCH {
            let t = ts[i].as_nanos() + shift;
            let e = baseline.entry(ids[i].0).or_insert((0.0, t));
            let factor = libm::exp2(-((t - e.1) as f64) / HALF_LIFE_NS);
            e.0 = e.0 * factor + weights[i];
            e.1 = t;
        }
        black_box(&baseline);
    });

    let schema = std::sync::Arc::new(schema());
    for (name, signal) in [
        ("node_view_with_windows", SignalIdx(0)),
        ("node_like_no_windows", SignalIdx(1)),
    ] {
        let mut node = Node::new(
            NodeConfig::default(),
            Ledger::new(schema.clone()),
            Default::default(),
        );
        // Time only moves forward across rounds and samples, one millisecond per event, and
        // the node's clock is the event's time, as it would be for live traffic.
        let mut clock = T0;
        let mut out = Outputs::default();
        bench_batch(c, "ingest", name, BATCH, |_| {
            for i in 0..BATCH {
                clock += 1_000_000;
                let now = Timestamp::from_nanos(clock).unwrap();
                let op = ClientOp::Signal {
                    signal,
                    entity: ids[i],
                    weight: weights[i],
                    ts: Some(now),
                };
                out.clear();
                let request = WriteRequest {
                    id: i as u64,
                    ops: &[op],
                    concern: WriteConcern::Local,
                    tag: None,
                };
                node.handle(now, Input::Write(request), &mut out);
                black_box(&out.replies);
            }
        });
    }

    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema.as_ref().clone())
        .open()
        .unwrap();
    bench_batch(c, "ingest", "tidaldb_signal_batch", BATCH, |_| {
        db.signal_batch("view", &ids, &weights, Some(&ts)).unwrap();
    });
    bench_batch(c, "ingest", "tidaldb_signal_single", BATCH, |_| {
        for i in 0..BATCH {
            db.signal("view", ids[i], weights[i], Some(ts[i])).unwrap();
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let durable = TidalDb::builder()
        .with_data_dir(dir.path())
        .with_schema(schema.as_ref().clone())
        .durability(Durability::Batched {
            max_batch: 65_536,
            max_delay: Duration::from_millis(10),
        })
        .snapshot_every(0)
        .open()
        .unwrap();
    bench_batch(c, "ingest", "durable_batched_signal_batch", BATCH, |_| {
        durable
            .signal_batch("view", &ids, &weights, Some(&ts))
            .unwrap();
    });
}

fn reads(c: &mut Criterion) {
    let (ids, weights, ts) = workload(1_000_000, 7);
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    db.signal_batch("view", &ids, &weights, Some(&ts)).unwrap();
    let at = Timestamp::from_nanos(T0 + 2_000_000_000_000).unwrap();
    let mut baseline: HashMap<u64, (f64, i64)> = HashMap::new();
    for i in 0..ids.len() {
        baseline.insert(ids[i].0, (weights[i], ts[i].as_nanos()));
    }
    const READS: usize = 10_000;
    bench_batch(c, "read", "hashmap_baseline", READS, |_| {
        for id in &ids[..READS] {
            let (s, t) = baseline[&id.0];
            black_box(s * libm::exp2(-((at.as_nanos() - t) as f64) / HALF_LIFE_NS));
        }
    });
    bench_batch(c, "read", "read_decay_score", READS, |_| {
        for id in &ids[..READS] {
            black_box(db.read_decay_score_at(*id, "view", at).unwrap());
        }
    });

    let candidates: Vec<EntityId> = (0..10_000).map(|i| EntityId(i * 7 % ENTITIES)).collect();
    for item in candidates.iter().step_by(10) {
        db.hide_item(EntityId(1), *item, None).unwrap();
    }
    db.signal_batch(
        "like",
        &ids[..200_000],
        &weights[..200_000],
        Some(&ts[..200_000]),
    )
    .unwrap();
    let q = Retrieve::builder()
        .for_user(EntityId(1))
        .candidates(candidates.iter().copied())
        .rank_by(&[("view", 1.0), ("like", 3.0)])
        .limit(50)
        .at(at)
        .build()
        .unwrap();
    assert_eq!(db.retrieve(&q).unwrap().stats.hidden_filtered, 1_000);
    bench_batch(c, "retrieve", "full_sort_baseline", 1, |_| {
        let mut scored: Vec<(f64, u64)> = candidates
            .iter()
            .filter_map(|id| baseline.get(&id.0).map(|(s, _)| (*s, id.0)))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        black_box(&scored[..50.min(scored.len())]);
    });
    bench_batch(c, "retrieve", "top50_of_10k_1k_hidden", 1, |_| {
        black_box(db.retrieve(&q).unwrap());
    });
}

fn recovery(c: &mut Criterion) {
    let (ids, weights, ts) = workload(1_000_000, 9);
    let dir = tempfile::tempdir().unwrap();
    {
        let db = TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .durability(Durability::Batched {
                max_batch: 1 << 20,
                max_delay: Duration::from_secs(1),
            })
            .snapshot_every(0)
            .open()
            .unwrap();
        db.signal_batch("view", &ids, &weights, Some(&ts)).unwrap();
    }
    let wal_dir = dir.path().join("wal");
    bench_batch(c, "recovery", "read_files_baseline", 1, |_| {
        for entry in std::fs::read_dir(&wal_dir).unwrap() {
            black_box(std::fs::read(entry.unwrap().path()).unwrap());
        }
    });
    bench_batch(c, "recovery", "reopen_1m_events", 1, |_| {
        // snapshot_every(0): closing must not snapshot, or the next reopen replays nothing
        let db = TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .snapshot_every(0)
            .open()
            .unwrap();
        assert_eq!(db.recovery_report().events_replayed, 1_000_000);
    });
}

fn summary() {
    let rate = |ns: f64| 1e3 / ns;
    println!("\n=== tidaldb core benchmarks (ratios against baselines from this run) ===");
    let base = figure("ingest/hashmap_baseline");
    println!(
        "ingest baseline, HashMap<u64,(f64,i64)> decay update: {:.1} ns/signal ({:.1} M/s)",
        base,
        rate(base)
    );
    for name in [
        "node_view_with_windows",
        "node_like_no_windows",
        "tidaldb_signal_batch",
        "tidaldb_signal_single",
        "durable_batched_signal_batch",
    ] {
        let ns = figure(&format!("ingest/{name}"));
        println!(
            "  ingest {name:<30} {ns:>7.1} ns/signal {:>7.2} M signals/s   {:.2} x baseline throughput",
            rate(ns),
            base / ns
        );
    }
    let (rb, r) = (
        figure("read/hashmap_baseline"),
        figure("read/read_decay_score"),
    );
    println!(
        "read_decay_score: {r:.1} ns (baseline HashMap get + exp2 {rb:.1} ns, ratio {:.2})",
        r / rb
    );
    let (qb, q) = (
        figure("retrieve/full_sort_baseline"),
        figure("retrieve/top50_of_10k_1k_hidden"),
    );
    println!(
        "retrieve top-50 of 10K, 1K hidden: {:.3} ms (baseline lookup + full sort {:.3} ms, ratio {:.2})",
        q / 1e6,
        qb / 1e6,
        q / qb
    );
    let (fb, f) = (
        figure("recovery/read_files_baseline"),
        figure("recovery/reopen_1m_events"),
    );
    println!(
        "recovery of 1M events: {:.3} s (baseline reading the segment files {:.3} s, ratio {:.1})",
        f / 1e9,
        fb / 1e9,
        f / fb
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c);
    reads(&mut c);
    recovery(&mut c);
    c.final_summary();
    summary();
}
