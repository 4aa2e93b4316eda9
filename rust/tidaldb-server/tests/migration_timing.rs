//! Benchmark, not a test (`make bench` runs it; alone: `cargo test --release -p
//! tidaldb-server --test migration_timing -- --ignored --nocapture`): a tenant of 1M
//! events migrates from region r0 to r1 between three server processes, from `tidaldb
//! admin migrate` to the control plane's `complete`, against the same migration of the
//! same events in the in-process runtime (`LocalCluster`, the cluster layer's four steps)
//! measured in the same run. Each side builds its tenant afresh for each of 3 runs; the
//! medians and their ratio are printed for BENCHMARKS.md.

mod support;

use std::time::{Duration, Instant};

use support::{
    Cluster, Spec, admin_command, await_raft_leader, control_status, now_ns, register_in_r0,
    wait_until,
};
use tidaldb::cluster::Scope;
use tidaldb::runtime::net::proto::Concern;
use tidaldb::runtime::{LocalCluster, LocalClusterConfig};
use tidaldb::tenancy::TenantConfig;
use tidaldb::{DecaySpec, EntityId, EntityKind, RegionId, Schema, TenantId};

const EVENTS: usize = 1_000_000;
const BATCH: usize = 10_000;
const ENTITIES: u64 = 100_000;
const RUNS: usize = 3;
const TENANT: u64 = 30;

/// The entity of event `i`: a fixed scatter over `ENTITIES`.
fn entity(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % ENTITIES + 1
}

fn across_processes() -> Duration {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    await_raft_leader(&mut cluster, 2);
    register_in_r0(&mut cluster, TENANT);
    let at = now_ns();
    for start in (0..EVENTS).step_by(BATCH) {
        let entities: Vec<u64> = (start..start + BATCH).map(entity).collect();
        cluster
            .client(0)
            .write_many(
                TenantId(TENANT),
                "count",
                entities,
                vec![1.0; BATCH],
                Some(vec![at; BATCH]),
                Concern::Local,
            )
            .expect("a batch of the tenant's events");
    }
    let started = Instant::now();
    let begun = admin_command(&cluster, 0, &["migrate", "--tenant", "30", "--to", "r1"]);
    assert!(begun.status.success(), "{begun:?}");
    wait_until(Duration::from_secs(600), "the migration completes", || {
        let v = control_status(&mut cluster, 2)?;
        let done = v["migrations"].as_array().is_some_and(|ms| {
            ms.iter()
                .any(|m| m["tenant"] == TENANT && m["state"] == "complete")
        });
        done.then_some(())
            .ok_or_else(|| v["migrations"].to_string())
    });
    let took = started.elapsed();
    let on_target = cluster
        .client(1)
        .scores(TenantId(TENANT), "count", vec![entity(0)], None)
        .expect("the target serves the tenant");
    assert!(on_target.value[0] >= 1.0, "the target holds the events");
    took
}

fn in_process() -> Duration {
    let schema = Schema::builder()
        .signal("count", EntityKind::Item, DecaySpec::Permanent)
        .add()
        .build()
        .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = LocalCluster::open(LocalClusterConfig::new(schema, dir.path())).expect("opens");
    let tenant = TenantId(TENANT);
    cluster
        .register_tenant(TenantConfig {
            required_regions: vec![RegionId(0)],
            ..TenantConfig::new(tenant, "bench")
        })
        .expect("register");
    for start in (0..EVENTS).step_by(BATCH) {
        let entities: Vec<EntityId> = (start..start + BATCH)
            .map(|i| EntityId::new(entity(i)))
            .collect();
        cluster
            .write_batch(
                Scope::tenant(tenant),
                "count",
                &entities,
                &[1.0; BATCH],
                None,
            )
            .expect("a batch of the tenant's events");
    }
    let started = Instant::now();
    let migration = cluster
        .migrate_tenant(tenant, RegionId(1), None)
        .expect("begin");
    migration.prepare_target().expect("prepare");
    migration.enter_dual_write().expect("dual write");
    migration.finalize().expect("finalize");
    migration.gc_source(Duration::ZERO).expect("gc");
    let took = started.elapsed();
    cluster.shutdown().expect("shutdown");
    took
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

#[test]
#[ignore = "a benchmark: run with --ignored"]
fn migrating_a_1m_event_tenant_across_processes_against_the_in_process_runtime() {
    let (mut procs, mut local) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        local.push(in_process());
        procs.push(across_processes());
    }
    let (p, l) = (median(procs.clone()), median(local.clone()));
    println!("migration of a {EVENTS}-event tenant, r0 -> r1 (median of {RUNS}):");
    println!(
        "  across 3 server processes: {:.3} s  (runs {procs:.3?})",
        p.as_secs_f64()
    );
    println!(
        "  in-process runtime:        {:.3} s  (runs {local:.3?})",
        l.as_secs_f64()
    );
    println!(
        "  ratio: {:.2}x the in-process time",
        p.as_secs_f64() / l.as_secs_f64()
    );
}
