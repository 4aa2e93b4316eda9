//! Section 5: migrating a tenant that holds 1M events from region 0 to region 2, against
//! single-node ingest of the same events.

use std::time::{Duration, Instant};

use tidaldb::control::MigrationState;
use tidaldb::node::{ClientOp, WriteConcern};
use tidaldb::sim::SimulatedCluster;
use tidaldb::tenancy::{TenantConfig, TenantId};
use tidaldb::{NodeId, RegionId, Timestamp};

use crate::common::{Workload, config, median, single_node_ingest, virtual_ms};
use crate::{BATCH, CONVERGENCE_TIMEOUT, Row, S0, WARM_UP, row};

const TENANT: TenantId = TenantId(1);
const SOURCE: RegionId = RegionId(0);
const TARGET: RegionId = RegionId(2);
/// Runs of each migration; the median is reported. Each run builds its tenant afresh.
const MIGRATION_RUNS: usize = 3;
/// Bound on each migration step's wait (virtual time); the default 10 s is for small
/// tenants.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);
const STEPS: [&str; 4] = [
    "prepare_target",
    "enter_dual_write",
    "finalize",
    "gc_source",
];

struct MigrateRun {
    /// Wall seconds of each step, in the order of `STEPS`.
    wall: [f64; 4],
    /// Virtual ms of each step.
    virt: [f64; 4],
    /// Snapshots installed during the migration (the target's seeding, when one is).
    snapshots: u64,
    /// Events read back from a durable log during the migration.
    read_back: u64,
    /// Wall seconds to build the tenant (not timed as part of the migration).
    build: f64,
}

impl MigrateRun {
    fn wall_total(&self) -> f64 {
        self.wall.iter().sum()
    }

    fn virtual_total(&self) -> f64 {
        self.virt.iter().sum()
    }
}

/// A cluster with the tenant registered in `regions` (home in region 0) and the workload
/// written to its home replica; every replica holds every event on return.
fn build_tenant(ops: &[ClientOp], regions: &[RegionId]) -> SimulatedCluster {
    let cluster = SimulatedCluster::build(config(5)).expect("the cluster builds");
    cluster
        .register_tenant(TenantConfig {
            required_regions: regions.to_vec(),
            ..TenantConfig::new(TENANT, "bench")
        })
        .expect("the tenant registers");
    cluster.run_for(WARM_UP);
    let replicas: Vec<NodeId> = cluster
        .tenant_replicas(TENANT)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(replicas.len(), regions.len(), "one replica per region");
    let home = cluster
        .tenant_replicas(TENANT)
        .into_iter()
        .find(|(_, h)| h.region_id == SOURCE && h.shard_id == S0)
        .map(|(n, _)| n)
        .expect("the tenant has a replica in region 0");
    for chunk in ops.chunks(BATCH) {
        cluster
            .submit(home, chunk, WriteConcern::Local, None)
            .expect("the tenant's home replica takes the batch");
    }
    let deadline = cluster.now().as_nanos() + CONVERGENCE_TIMEOUT.as_nanos() as i64;
    while !replicas.iter().all(|n| {
        cluster
            .handle(*n)
            .durable()
            .is_ok_and(|vv| vv.sum() == ops.len() as u64)
    }) {
        assert!(
            cluster.now().as_nanos() < deadline,
            "the tenant's replicas did not converge before the migration"
        );
        cluster.run_for(Duration::from_millis(10));
    }
    cluster
}

fn migrate(ops: &[ClientOp], regions: &[RegionId]) -> MigrateRun {
    let t = Instant::now();
    let cluster = build_tenant(ops, regions);
    let build = t.elapsed().as_secs_f64();
    let before = cluster.stats();
    let mut wall = [0.0; 4];
    let mut virt = [0.0; 4];
    let mut m = cluster
        .begin_tenant_migration(TENANT, S0, S0, TARGET)
        .expect("the migration begins");
    m.step_timeout = STEP_TIMEOUT;
    for (k, step) in STEPS.iter().enumerate() {
        let (w, v): (Instant, Timestamp) = (Instant::now(), cluster.now());
        let done = match k {
            0 => m.prepare_target(),
            1 => m.enter_dual_write(),
            2 => m.finalize(),
            _ => m.gc_source(Duration::ZERO),
        };
        done.unwrap_or_else(|e| panic!("{step} of the 1M-event tenant failed: {e}"));
        wall[k] = w.elapsed().as_secs_f64();
        virt[k] = virtual_ms(v, cluster.now());
    }
    assert_eq!(
        m.state().expect("the migration has a record"),
        MigrationState::Complete
    );
    let n = ops.len() as u64;
    let count = |r: RegionId| {
        cluster
            .total_signal_count_for_tenant(r, TENANT, "view")
            .expect("the tenant exists")
    };
    assert_eq!(count(TARGET), n, "the target holds every event");
    assert_eq!(count(SOURCE), 0, "the source's copy is gone");
    for r in regions.iter().filter(|r| **r != SOURCE) {
        assert_eq!(count(*r), n, "region {} keeps every event", r.0);
    }
    MigrateRun {
        wall,
        virt,
        snapshots: cluster.stats().snapshots_installed - before.snapshots_installed,
        read_back: cluster.stats().events_read_back - before.events_read_back,
        build,
    }
}

/// Medians of the runs: (wall total, virtual total, per-step wall, per-step virtual).
fn summarize(runs: &[MigrateRun]) -> (f64, f64, [f64; 4], [f64; 4]) {
    let wall = median(runs.iter().map(MigrateRun::wall_total).collect());
    let virt = median(runs.iter().map(MigrateRun::virtual_total).collect());
    let mut step_wall = [0.0; 4];
    let mut step_virt = [0.0; 4];
    for k in 0..4 {
        step_wall[k] = median(runs.iter().map(|r| r.wall[k]).collect());
        step_virt[k] = median(runs.iter().map(|r| r.virt[k]).collect());
    }
    (wall, virt, step_wall, step_virt)
}

fn seeding(runs: &[MigrateRun]) -> String {
    let snaps: Vec<u64> = runs.iter().map(|r| r.snapshots).collect();
    let read: Vec<u64> = runs.iter().map(|r| r.read_back).collect();
    if snaps.iter().any(|s| *s > 0) {
        format!("seeded by snapshot ({snaps:?} installed per run)")
    } else if read.iter().any(|r| *r > 0) {
        format!("shipped as log ranges, read back from the durable log ({read:?} events per run)")
    } else {
        "shipped as log ranges from the in-memory log (no snapshot)".into()
    }
}

fn report(name: &str, runs: &[MigrateRun], base: f64, rows: &mut Vec<Row>) {
    let (wall, virt, step_wall, step_virt) = summarize(runs);
    let latency = config(0).links.latency.as_secs_f64() * 1e3;
    let steps: Vec<String> = STEPS
        .iter()
        .zip(step_wall.iter().zip(&step_virt))
        .map(|(s, (w, v))| format!("{s} {w:.3} s / {v:.0} ms"))
        .collect();
    println!(
        "   {name}: {wall:.3} s wall = {:.2} x the baseline's time; {virt:.0} ms virtual = \
         {:.1} x the link latency ({latency:.0} ms); target {}; per step (wall / virtual): {}",
        wall / base,
        virt / latency,
        seeding(runs),
        steps.join(", ")
    );
    rows.push(row(
        format!("tenant migration, 1M events, {name}, region 0 → 2 (median of {MIGRATION_RUNS})"),
        format!(
            "{wall:.3} s wall (prepare {:.3} s), {virt:.0} ms virtual; {}",
            step_wall[0],
            seeding(runs)
        ),
        format!("single-node ingest of the same 1M: {base:.3} s; link latency {latency:.0} ms"),
        format!(
            "{:.2}× the time; virtual {:.1}× latency",
            wall / base,
            virt / latency
        ),
        "",
        None,
    ));
}

pub(super) fn section_migrate(w: &Workload, ops: &[ClientOp], rows: &mut Vec<Row>) {
    let t = Instant::now();
    println!(
        "\n5. tenant migration: a tenant holding 1M events (replica group on shard 0), moved from \
         region 0 to region 2 by prepare_target + enter_dual_write + finalize + gc_source(0); \
         the tenant is built outside the timed part"
    );
    let single = [SOURCE];
    let replicated = [SOURCE, RegionId(1)];
    let mut ingest = Vec::new();
    let mut alone = Vec::new();
    let mut pair = Vec::new();
    for run in 0..MIGRATION_RUNS {
        ingest.push(single_node_ingest(w));
        let a = migrate(ops, &single);
        let p = migrate(ops, &replicated);
        println!(
            "  run {run}: single-node ingest {:.3} s; migration of the lone replica {:.3} s wall \
             ({:.0} ms virtual, tenant built in {:.1} s); of the region-0 replica of a 0+1 \
             group {:.3} s wall ({:.0} ms virtual, built in {:.1} s)",
            ingest[run],
            a.wall_total(),
            a.virtual_total(),
            a.build,
            p.wall_total(),
            p.virtual_total(),
            p.build
        );
        alone.push(a);
        pair.push(p);
    }
    let base = median(ingest);
    println!("   baseline: single-node ingest (ephemeral TidalDb::signal_batch) {base:.3} s");
    println!(
        "   note: a replica with no peers keeps no retained log, so the lone replica's target \
         is sent ranges read back from the source's durable log (at most 2 chunks of \
         max_frame_events unacknowledged); in the 0+1 group the source retains its own \
         events in memory for its peer"
    );
    report("lone replica", &alone, base, rows);
    report("replicated in regions 0+1", &pair, base, rows);
    println!(
        "   ({:.1} s wall for the section)",
        t.elapsed().as_secs_f64()
    );
}
