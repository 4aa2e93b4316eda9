//! The in-process baseline of `bench/bench_network.py`: replicated ingest into a
//! `LocalCluster` (three real replicas in one process, linked by in-process channels,
//! real WAL files), with the batches the network benchmark sends over TCP.
//!
//! ```text
//! cargo run --release -p tidaldb --example runtime_ingest -- \
//!     --events 2097152 --entities 100000 --seed 1 --batch 65536 --repeats 1 --warmup 0
//! ```
//!
//! The cluster is `LocalClusterConfig::new` (three regions, one shard, led from region 0,
//! `Local` concern, default timings) with durability `"batched"` (sync every 4096 writes
//! or 10 ms; `--durability immediate` syncs every write), as `tidaldb serve` runs with
//! `durability = "batched"`. Each batch is one
//! `TidalDb::write_request(ops, Local, tag)` on the leader's replica, the call the server
//! makes for one client `write_many`; building the batch's `ClientOp`s from the id and
//! weight arrays is timed, as the server times it. Events are stamped with the node's
//! clock (`ts: None`), as a client write without timestamps is.
//!
//! Figures, per run:
//! - `accept_seconds`: first write → the last write call returned (the writer's rate);
//! - `applied_seconds`: first write → every replica's `events_applied()` reached the
//!   total, polled every millisecond after the last write (as the Python side polls
//!   `/metrics`), and the same per replica.
//!
//! Each figure is the best (and median) of `repeats` runs on fresh clusters, after
//! `warmup` untimed runs (default 1; `bench_network.py` passes 0, because the server
//! processes it compares with are fresh too). Prints one JSON object on stdout.

use std::error::Error;
use std::time::{Duration, Instant};

use serde_json::json;
use tidaldb::cluster::db_durability;
use tidaldb::event::{ClientTag, IdempotencyKey};
use tidaldb::node::{ClientOp, WriteConcern};
use tidaldb::runtime::{LocalCluster, LocalClusterConfig, TidalDb};
use tidaldb::schema::{EntityId, NodeId};
use tidaldb::{DecaySpec, EntityKind, Schema, ShardId, Window};

/// The weights the workload draws from, as `bench_network.py` does.
const WEIGHTS: [f64; 3] = [0.5, 1.0, 2.0];
/// How long a run may take before the replicas count as stuck.
const DEADLINE: Duration = Duration::from_secs(120);

struct Args {
    events: usize,
    entities: u64,
    seed: u64,
    batch: usize,
    repeats: usize,
    warmup: usize,
    /// When above 0: measure lag instead of ingest, for this long per run.
    lag_seconds: f64,
    lag_batch: usize,
    lag_interval_ms: u64,
    /// `"batched"` (the default) or `"immediate"`, as a server's config names it.
    durability: String,
}

impl Args {
    fn parse() -> Result<Args, Box<dyn Error>> {
        let mut args = Args {
            events: 2_097_152,
            entities: 100_000,
            seed: 1,
            batch: 65_536,
            repeats: 3,
            warmup: 1,
            lag_seconds: 0.0,
            lag_batch: 1_000,
            lag_interval_ms: 10,
            durability: "batched".into(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--events" => args.events = value.parse()?,
                "--entities" => args.entities = value.parse()?,
                "--seed" => args.seed = value.parse()?,
                "--batch" => args.batch = value.parse()?,
                "--repeats" => args.repeats = value.parse()?,
                "--warmup" => args.warmup = value.parse()?,
                "--lag-seconds" => args.lag_seconds = value.parse()?,
                "--lag-batch" => args.lag_batch = value.parse()?,
                "--lag-interval-ms" => args.lag_interval_ms = value.parse()?,
                "--durability" => args.durability = value,
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

/// `view`: 1h half-life, 1h and 24h windows, as the servers of `bench_network.py` declare it.
fn schema() -> Result<Schema, Box<dyn Error>> {
    Ok(Schema::builder()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(3600),
            },
        )
        .windows(&[Window::OneHour, Window::TwentyFourHours])
        .add()
        .build()?)
}

/// A fresh cluster under `dir`: the cluster, its leader, and every replica by node id.
fn open_cluster(
    args: &Args,
    dir: &std::path::Path,
) -> Result<(LocalCluster, NodeId, Vec<TidalDb>), Box<dyn Error>> {
    let mut config = LocalClusterConfig::new(schema()?, dir);
    config.durability = db_durability(&args.durability, None)?;
    let cluster = LocalCluster::open(config)?;
    let leader = cluster.leader_of(ShardId(0))?;
    let dbs: Vec<TidalDb> = (0..3)
        .map(|n| {
            cluster
                .replica_db(NodeId(n))
                .ok_or_else(|| format!("replica {n} is not up"))
        })
        .collect::<Result<_, _>>()?;
    Ok((cluster, leader, dbs))
}

struct Run {
    accept: f64,
    applied: f64,
    per_replica: Vec<f64>,
}

/// One run on a fresh cluster: write every batch to the leader, then wait for every
/// replica to have applied them all.
fn run_once(args: &Args, ids: &[u64], weights: &[f64]) -> Result<Run, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let (cluster, leader, dbs) = open_cluster(args, dir.path())?;
    let writer = dbs[usize::from(leader.0)].clone();
    let signal = writer.schema().resolve("view")?;
    let before: u64 = dbs
        .iter()
        .map(|d| d.events_applied())
        .sum::<Result<u64, _>>()?;
    // `write_request` is async (a replicated write awaits its acknowledgements); a local
    // one completes at once, on any runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let total = ids.len() as u64;

    let start = Instant::now();
    for (key, (ids, weights)) in ids
        .chunks(args.batch)
        .zip(weights.chunks(args.batch))
        .enumerate()
    {
        let ops: Vec<ClientOp> = ids
            .iter()
            .zip(weights)
            .map(|(&e, &w)| ClientOp::Signal {
                signal,
                entity: EntityId(e),
                weight: w,
                ts: None,
            })
            .collect();
        // Each client write carries an idempotency key; so does each of these.
        let tag = Some(ClientTag::Key(IdempotencyKey(key as u64 + 1)));
        rt.block_on(writer.write_request(&ops, WriteConcern::Local, tag))?;
    }
    let accept = start.elapsed().as_secs_f64();

    let mut per_replica = vec![f64::NAN; dbs.len()];
    while per_replica.iter().any(|t| t.is_nan()) {
        for (i, db) in dbs.iter().enumerate() {
            if per_replica[i].is_nan() && db.events_applied()? >= total {
                per_replica[i] = start.elapsed().as_secs_f64();
            }
        }
        if start.elapsed() > DEADLINE {
            return Err(
                format!("replicas not caught up within {DEADLINE:?}: {per_replica:?}").into(),
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let applied = per_replica.iter().copied().fold(0.0, f64::max);
    if before != 0 {
        return Err(format!("a fresh cluster had applied {before} events").into());
    }
    cluster.shutdown()?;
    Ok(Run {
        accept,
        applied,
        per_replica,
    })
}

fn best_and_median(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[0], xs[xs.len() / 2])
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse()?;
    if args.lag_seconds > 0.0 {
        return lag(&args);
    }
    let (ids, weights): (Vec<u64>, Vec<f64>) = (0..args.events as u64)
        .map(|i| {
            let h = splitmix64(args.seed.wrapping_add(i));
            (h % args.entities, WEIGHTS[((h >> 32) % 3) as usize])
        })
        .unzip();

    for _ in 0..args.warmup {
        run_once(&args, &ids, &weights)?; // untimed
    }
    let runs: Vec<Run> = (0..args.repeats)
        .map(|_| run_once(&args, &ids, &weights))
        .collect::<Result<_, _>>()?;
    let (accept_best, accept_median) = best_and_median(runs.iter().map(|r| r.accept).collect());
    let (applied_best, applied_median) = best_and_median(runs.iter().map(|r| r.applied).collect());
    let out = json!({
        "events": args.events,
        "batch": args.batch,
        "repeats": args.repeats,
        "accept_seconds": {"best": accept_best, "median": accept_median},
        "applied_seconds": {"best": applied_best, "median": applied_median},
        "runs": runs.iter().map(|r| json!({
            "accept": r.accept, "applied": r.applied, "per_replica": r.per_replica,
        })).collect::<Vec<_>>(),
        "id_sum": ids.iter().fold(0u64, |s, e| s.wrapping_add(*e)),
        "weight_sum": weights.iter().sum::<f64>(),
    });
    println!("{out}");
    Ok(())
}

/// Lag: `lag_batch` events every `lag_interval_ms` to the leader for `lag_seconds`, each
/// batch ending with a marker entity only it writes; a reader thread polls both followers
/// for the outstanding markers every millisecond (`read_decay_score > 0`), as
/// `bench_network.py` polls the servers. A marker's lag runs from just before its write
/// call to the first poll that saw it. Prints p50, p99 and max over both followers, in
/// seconds, for each of `repeats` runs (after `warmup` runs of a second).
fn lag(args: &Args) -> Result<(), Box<dyn Error>> {
    let mut runs = Vec::new();
    for round in 0..args.warmup + args.repeats {
        let seconds = if round < args.warmup {
            1.0
        } else {
            args.lag_seconds
        };
        let lags = lag_once(args, seconds)?;
        if round >= args.warmup {
            runs.push(lags);
        }
    }
    let pct = |xs: &[f64], q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    let out: Vec<_> = runs
        .iter()
        .map(|(lags, rate)| {
            json!({"p50": pct(lags, 0.5), "p99": pct(lags, 0.99),
                   "max": lags.last().copied().unwrap_or(f64::NAN),
                   "markers": lags.len(), "events_per_s": rate})
        })
        .collect();
    println!("{}", json!({ "lag": out }));
    Ok(())
}

/// One paced run on a fresh cluster: every (marker, follower) lag, sorted, and the
/// achieved write rate.
fn lag_once(args: &Args, seconds: f64) -> Result<(Vec<f64>, f64), Box<dyn Error>> {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir()?;
    let (cluster, leader, dbs) = open_cluster(args, dir.path())?;
    let writer = dbs[usize::from(leader.0)].clone();
    let followers: Vec<TidalDb> = dbs
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != usize::from(leader.0))
        .map(|(_, d)| d.clone())
        .collect();
    let signal = writer.schema().resolve("view")?;
    let interval = Duration::from_millis(args.lag_interval_ms);
    let n = (seconds / interval.as_secs_f64()) as u64;
    let marker0 = 10_000_000u64;
    // Markers written so far, with the instant just before their write call.
    let issued: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let issued = issued.clone();
        std::thread::spawn(move || -> tidaldb::Result<Vec<f64>> {
            let mut seen: Vec<Vec<Option<f64>>> = vec![Vec::new(); followers.len()];
            let deadline = Instant::now() + Duration::from_secs_f64(seconds + 30.0);
            loop {
                let marks: Vec<Instant> = issued.lock().map(|m| m.clone()).unwrap_or_default();
                for (f, db) in followers.iter().enumerate() {
                    seen[f].resize(marks.len(), None);
                    for (i, at) in marks.iter().enumerate() {
                        if seen[f][i].is_none()
                            && db.read_decay_score(EntityId(marker0 + i as u64), "view")? > 0.0
                        {
                            seen[f][i] = Some(at.elapsed().as_secs_f64());
                        }
                    }
                }
                let all = seen
                    .iter()
                    .all(|s| s.len() as u64 == n && s.iter().all(Option::is_some));
                if all || Instant::now() > deadline {
                    return Ok(seen.into_iter().flatten().flatten().collect());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let start = Instant::now();
    for i in 0..n {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut ops: Vec<ClientOp> = (0..args.lag_batch.max(1))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ClientOp::Signal {
                    signal,
                    entity: EntityId(x % args.entities),
                    weight: 1.0,
                    ts: None,
                }
            })
            .collect();
        if let Some(ClientOp::Signal { entity, .. }) = ops.last_mut() {
            *entity = EntityId(marker0 + i);
        }
        if let Ok(mut m) = issued.lock() {
            m.push(Instant::now());
        }
        rt.block_on(writer.write_request(&ops, WriteConcern::Local, None))?;
    }
    let rate = (n as usize * args.lag_batch) as f64 / start.elapsed().as_secs_f64();
    let mut lags = reader.join().map_err(|_| "the reader thread panicked")??;
    if lags.len() as u64 != 2 * n {
        return Err(format!("{} of {} markers reached a follower", lags.len(), 2 * n).into());
    }
    lags.sort_by(f64::total_cmp);
    cluster.shutdown()?;
    Ok((lags, rate))
}
