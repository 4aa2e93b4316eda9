//! The Rust baseline of `bench/bench_cluster.py`: ingest into a `SimulatedCluster` built
//! like `tidaldb.Cluster(schema)` with default arguments, through the same core calls the
//! Python bindings make, so that the Python figures can be divided by it.
//!
//! ```text
//! cargo run --release -p tidaldb --example sim_ingest -- \
//!     --events 1000000 --entities 100000 --seed 1 --batch 100000 --single 100000 --repeats 3
//! ```
//!
//! - bulk: `events` signals of `view`, `batch` at a time, each batch one
//!   `SimulatedCluster::write_batch(Scope::LEADER, "view", ids, weights, None)` (what
//!   `Cluster.write_many` calls);
//! - single: the first `single` of those entities, one `write_scoped` of one
//!   `ClientOp::Signal` (weight 1.0) per call (what `Cluster.write` calls).
//!
//! Each is the best of `repeats` runs on a fresh cluster, after one untimed warm-up run:
//! the first run in a fresh process page-faults in the memory that later runs reuse
//! (about 1.5x slower), and the Python process it is compared with is warm. Building and
//! dropping the cluster are not timed. The workload is a function of `seed` that `bench_cluster.py`
//! computes too (splitmix64 of `seed + i`); the printed `id_sum` and `weight_sum` let it
//! check that both sides wrote the same events. Prints one JSON object on stdout.

use std::error::Error;
use std::time::{Duration, Instant};

use serde_json::json;
use tidaldb::node::ClientOp;
use tidaldb::schema::EntityId;
use tidaldb::sim::{ClusterConfig, Scope, SimulatedCluster};
use tidaldb::{DecaySpec, EntityKind, Schema, Window};

/// The weights the workload draws from, as `bench_cluster.py` does.
const WEIGHTS: [f64; 3] = [0.5, 1.0, 2.0];

struct Args {
    events: usize,
    entities: u64,
    seed: u64,
    batch: usize,
    single: usize,
    repeats: usize,
}

impl Args {
    fn parse() -> Result<Args, Box<dyn Error>> {
        let mut args = Args {
            events: 1_000_000,
            entities: 100_000,
            seed: 1,
            batch: 100_000,
            single: 100_000,
            repeats: 3,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--events" => args.events = value.parse()?,
                "--entities" => args.entities = value.parse()?,
                "--seed" => args.seed = value.parse()?,
                "--batch" => args.batch = value.parse()?,
                "--single" => args.single = value.parse()?,
                "--repeats" => args.repeats = value.parse()?,
                other => return Err(format!("unknown flag {other}").into()),
            }
        }
        if args.entities == 0 || args.batch == 0 || args.repeats == 0 {
            return Err("--entities, --batch and --repeats must be at least 1".into());
        }
        Ok(args)
    }
}

/// splitmix64: a hash of the event's index that numpy computes identically.
fn splitmix64(x: u64) -> u64 {
    tidaldb::sim::SimRng::new(x).next_u64()
}

/// The same cluster as `tidaldb.Cluster(Schema().signal("view", half_life="1h",
/// windows=["1h", "24h"]))`: three regions, one shard each, led from region 0, seed 0,
/// links 20 ms ± 5 ms, `Local` concern, immediate durability.
fn cluster() -> Result<SimulatedCluster, Box<dyn Error>> {
    let schema = Schema::builder()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(3600),
            },
        )
        .windows(&[Window::OneHour, Window::TwentyFourHours])
        .add()
        .build()?;
    Ok(SimulatedCluster::build(ClusterConfig::new(schema))?)
}

/// The fastest of `repeats` runs of `run` on a fresh cluster, in seconds, after one
/// untimed warm-up run.
fn best_of(
    repeats: usize,
    run: impl Fn(&SimulatedCluster) -> tidaldb::Result<()>,
) -> Result<f64, Box<dyn Error>> {
    let mut best = f64::INFINITY;
    for round in 0..=repeats {
        let c = cluster()?;
        let start = Instant::now();
        run(&c)?;
        let secs = start.elapsed().as_secs_f64();
        if round > 0 {
            best = best.min(secs);
        }
        drop(c);
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse()?;
    let (ids, weights): (Vec<EntityId>, Vec<f64>) = (0..args.events as u64)
        .map(|i| {
            let h = splitmix64(args.seed.wrapping_add(i));
            (
                EntityId(h % args.entities),
                WEIGHTS[((h >> 32) % 3) as usize],
            )
        })
        .unzip();

    let bulk = best_of(args.repeats, |c| {
        for (ids, weights) in ids.chunks(args.batch).zip(weights.chunks(args.batch)) {
            c.write_batch(Scope::LEADER, "view", ids, weights, None)?;
        }
        Ok(())
    })?;

    let single_ids = &ids[..args.single.min(ids.len())];
    let single = best_of(args.repeats, |c| {
        for &entity in single_ids {
            // The bindings resolve the signal's name on every call too.
            let op = ClientOp::Signal {
                signal: c.config().schema.resolve("view")?,
                entity,
                weight: 1.0,
                ts: None,
            };
            c.write_scoped(Scope::LEADER, entity, &[op], None)?;
        }
        Ok(())
    })?;

    let ns_per = |secs: f64, n: usize| secs * 1e9 / n.max(1) as f64;
    let out = json!({
        "events": args.events,
        "batch": args.batch,
        "seconds": bulk,
        "per_event_ns": ns_per(bulk, args.events),
        "single": {
            "events": single_ids.len(),
            "seconds": single,
            "per_event_ns": ns_per(single, single_ids.len()),
        },
        "repeats": args.repeats,
        "id_sum": ids.iter().fold(0u64, |s, e| s.wrapping_add(e.0)),
        "weight_sum": weights.iter().sum::<f64>(),
    });
    println!("{out}");
    Ok(())
}
