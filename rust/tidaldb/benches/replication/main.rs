//! Replication benchmarks on the deterministic simulator and the in-process runtime. Each
//! figure is printed beside a baseline measured in the same run, as a ratio, because machines
//! are noisy. Run with
//! `cargo bench -p tidaldb --bench replication` (or `make bench`).
//!
//! 1. Replicated apply: 1M events written to the leader of a 3-region cluster, wall time
//!    until every replica has them, against single-node ingest of the same events.
//! 2. Lag: 25K signals/s for 10 s of virtual time over 50 ms ± 20 ms links; per-event time
//!    from write to apply on each follower, against the link latency.
//! 3. Failover: 100 seeds, crash the leader, virtual time until a new one is promoted,
//!    against the election timeout.
//! 4. Reconciliation: 1M events written on one side of a partition, wall time from heal to
//!    convergence, against single-node ingest. Once with the divergence inside the retained
//!    log (peers ship ranges) and once with the leader down and a smaller log on the relay
//!    (the relay reads the trimmed events back from its durable log).
//! 5. Migration: a tenant holding 1M events moved from region 0 to region 2 (prepare,
//!    dual write, finalize, collect the source), wall time against single-node ingest;
//!    once as a lone replica (its target gets ranges read back from the durable log) and
//!    once replicated in regions 0 and 1.
//! 6. Drain: 25K signals/s on the default tenant, drain a follower's or the leader's host
//!    while the load goes on, virtual time until the host's lag is 0 (its events are on
//!    every other replica and it leads nothing), against the link latency and the
//!    heartbeat interval, over 20 seeds.
//! 7. Runtime failover: the same crash on `LocalCluster` (real replicas, real WAL files, the
//!    wall clock), 20 runs, wall time from the crash to the first write the new leader
//!    accepts, against the election timeout.
//!
//! Sections 1-6 run on the simulator. Wall figures are the median of a few runs; virtual
//! figures are exact for their seeds.
//! Sections 1 and 4 are repeated over links without jitter as a diagnostic: the default
//! links reorder frames sent at the same instant, and frames that arrive ahead of a gap
//! take the ledger's per-event buffering path. Name sections to run only those:
//! `cargo bench -p tidaldb --bench replication -- apply lag failover reconcile migrate drain
//! runtime_failover`.

mod apply;
mod common;
mod drain;
mod failover;
mod lag;
mod migrate;
mod reconcile;
mod runtime_failover;
#[path = "../shared/schema.rs"]
mod shared_schema;

use std::time::{Duration, Instant};

use tidaldb::{RegionId, ShardId};

use common::{Workload, schema};

const EVENTS: usize = 1_000_000;
const BATCH: usize = 100_000;
const ENTITIES: u64 = 100_000;
/// Events written on the partitioned side during the reconciliation benchmark.
const MINORITY_EVENTS: usize = 1_000;
/// Runs of each wall-clock benchmark; the median is reported.
const RUNS: usize = 5;
const FAILOVER_SEEDS: u64 = 100;
/// Long enough for every replica to have heard every peer, so pushes are eager.
const WARM_UP: Duration = Duration::from_millis(500);
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(120);
const S0: ShardId = ShardId(0);
const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];

struct Row {
    figure: String,
    measured: String,
    baseline: String,
    ratio: String,
    target: String,
    met: &'static str,
}

fn row(
    figure: impl Into<String>,
    measured: impl Into<String>,
    baseline: impl Into<String>,
    ratio: impl Into<String>,
    target: impl Into<String>,
    met: Option<bool>,
) -> Row {
    Row {
        figure: figure.into(),
        measured: measured.into(),
        baseline: baseline.into(),
        ratio: ratio.into(),
        target: target.into(),
        met: match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        },
    }
}

/// Sections named on the command line (`apply`, `lag`, `failover`, `reconcile`, `migrate`,
/// `drain`, `runtime_failover`) run alone; with none named, all run.
fn wanted(section: &str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    named.is_empty() || named.iter().any(|n| n == section)
}

fn main() {
    let overall = Instant::now();
    let schema = schema();
    let view = schema.resolve("view").expect("the schema has `view`");
    let workload = Workload::new(EVENTS, 42);
    let ops = workload.ops(view);
    let minority = Workload::new(MINORITY_EVENTS, 43).ops(view);
    let mut rows = Vec::new();

    println!(
        "=== tidaldb replication benchmarks (simulator, one thread; section 7 on LocalCluster), \
         release build ==="
    );
    println!(
        "workload: {EVENTS} `view` signals (1h + 24h windows) over {ENTITIES} random entities, \
         batches of {BATCH}"
    );
    if wanted("apply") {
        apply::section_apply(&workload, &ops, &mut rows);
    }
    if wanted("lag") {
        lag::section_lag(view, &mut rows);
    }
    if wanted("failover") {
        failover::section_failover(view, &mut rows);
    }
    if wanted("reconcile") {
        reconcile::section_reconcile(&workload, &ops, &minority, &mut rows);
    }
    if wanted("migrate") {
        migrate::section_migrate(&workload, &ops, &mut rows);
    }
    if wanted("drain") {
        drain::section_drain(view, &mut rows);
    }
    if wanted("runtime_failover") {
        runtime_failover::section_runtime_failover(&mut rows);
    }

    println!(
        "\n=== summary (ratios against baselines from this run; wall figures are medians of {RUNS}) ==="
    );
    println!("| figure | measured | baseline (same run) | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.measured, r.baseline, r.ratio, r.target, r.met
        );
    }
    println!(
        "\ntotal bench time {:.1} s",
        overall.elapsed().as_secs_f64()
    );
}
