//! UAT steps 1–5 (seed 001) and the cluster-level tests of seed 000, each written once and
//! run on both drivers: the simulator and the in-process runtime cluster (real time, real
//! WAL files). Every check compares against an independent oracle: the acknowledged
//! writes and the analytical score Σ 2^(-(at - tᵢ)/h).
//!
//! The simulated runs are seeded (seed 1); the runtime runs are on the wall clock, with
//! bounds generous enough for a loaded machine.

mod common;
#[path = "acceptance_on_both_drivers/harness.rs"]
mod harness;

use std::time::Duration;

use common::assert_close;
use harness::{
    HALF_LIFE, Harness, LocalHarness, REGIONS, SHARD, SimHarness, plus_ms, run_until, score_in,
    scores, view_in,
};
use tidaldb::cluster::{RollingUpgradeCoordinator, Scope};
use tidaldb::node::{NodeRole, WriteConcern};
use tidaldb::tenancy::{Quota, TenantConfig, TenantId};
use tidaldb::{EntityId, ErrorKind, Retrieve, TidalError, Timestamp};

const CONVERGE: Duration = Duration::from_secs(10);

fn analytical(times: &[Timestamp], at: Timestamp) -> f64 {
    common::unit_decay_sum(times, at, HALF_LIFE)
}

/// Step 1: writes in one region reach every region, bit-identical and exact.
fn cross_region_replication<H: Harness>(h: &H) {
    let c = h.cluster();
    let item = EntityId::new(42);
    let t0 = c.now();
    let times: Vec<Timestamp> = (0..100).map(|i| plus_ms(t0, -i)).collect();
    for t in &times {
        view_in(c, REGIONS[0], item, *t, WriteConcern::Local).expect("write");
    }
    c.await_full_convergence(CONVERGE).expect("converges");
    let at = plus_ms(t0, 3_600_000);
    let s = scores(c, item, at);
    assert!(s.iter().all(|x| *x == s[0]), "bit-identical: {s:?}");
    assert_close(s[0], analytical(&times, at), "score after replication");
}

/// Writes unit views of `item` to `node` under `Replicated(1)`, `i` ms before `t0` for each
/// `i` of `offsets`, and records their timestamps as acknowledged.
fn replicated_views<D: tidaldb::cluster::ClusterDriver + Clone>(
    c: &tidaldb::cluster::Cluster<D>,
    node: tidaldb::NodeId,
    item: EntityId,
    t0: Timestamp,
    offsets: std::ops::Range<i64>,
    acked: &mut Vec<Timestamp>,
) {
    for i in offsets {
        let t = plus_ms(t0, -i);
        c.handle(node)
            .write_signal(
                "view",
                item,
                1.0,
                Some(t),
                WriteConcern::Replicated(1),
                None,
            )
            .expect("a replicated write to the leader");
        acked.push(t);
    }
}

/// Step 2: the leader's host crashes; a new leader takes `Replicated(1)` writes; nothing
/// acknowledged is lost, and the old leader rejoins as a follower in a later term.
fn failover_after_a_crash<H: Harness>(h: &H) {
    let c = h.cluster();
    let item = EntityId::new(7);
    let old = c.leader_of(SHARD).expect("a leader");
    let old_term = c.with_node(old, |n, _| Ok(n.term())).expect("up");
    let t0 = c.now();
    let mut acked = Vec::new();
    replicated_views(c, old, item, t0, 0..20, &mut acked);
    let old_region = c.handle(old).region();
    c.crash(old_region, SHARD, true).expect("crash");
    let promoted = run_until(c, 4 * h.failover_time(), |c| {
        c.leader_of(SHARD).is_ok_and(|l| l != old) && c.has_leader()
    });
    assert!(promoted, "no new leader: {}", c.divergence_report());
    let new = c.leader_of(SHARD).expect("new leader");
    replicated_views(c, new, item, t0, 20..30, &mut acked);
    c.restart(old_region, SHARD).expect("restart");
    c.await_full_convergence(CONVERGE).expect("converges");
    let rejoined = c.handle(old);
    assert_eq!(rejoined.role().expect("up"), NodeRole::Follower);
    assert!(rejoined.term().expect("up") > old_term, "a later term");
    let at = plus_ms(t0, 60_000);
    let s = scores(c, item, at);
    assert!(s.iter().all(|x| *x == s[0]), "bit-identical: {s:?}");
    assert_close(
        s[0],
        analytical(&acked, at),
        "every acknowledged write survives",
    );
}

/// Step 3: a query during a partition still answers, says it is degraded, and names the
/// region it cannot hear.
fn degraded_query_during_a_partition<H: Harness>(h: &H) {
    let c = h.cluster();
    let item = EntityId::new(3);
    view_in(c, REGIONS[0], item, c.now(), WriteConcern::Local).expect("write");
    c.await_full_convergence(CONVERGE).expect("converges");
    let cut = h.cut_off(REGIONS[2]);
    let timing = c.layout().timing;
    c.run_for(timing.peer_timeout + 4 * timing.heartbeat_interval);
    let q = Retrieve::builder()
        .candidates([item])
        .rank_by(&[("view", 1.0)])
        .build()
        .expect("query");
    let r = c
        .retrieve(REGIONS[0], &q)
        .expect("answers during the partition");
    assert!(r.stats.degraded, "{:?}", r.stats);
    let unreachable: Vec<_> = r
        .stats
        .replicas_unreachable
        .iter()
        .map(|a| a.region)
        .collect();
    assert_eq!(unreachable, vec![REGIONS[2]]);
    assert_eq!(r.items.len(), 1);
    drop(cut);
}

/// Step 4: both sides of a partition take writes; after the heal every region holds both
/// sides exactly once, and reconciling again changes nothing.
fn partition_heal_and_reconciliation<H: Harness>(h: &H) {
    let c = h.cluster();
    let item = EntityId::new(11);
    let t0 = c.now();
    let cut = h.cut_off(REGIONS[2]);
    let mut acked = Vec::new();
    for i in 0..50 {
        let t = plus_ms(t0, -i);
        view_in(c, REGIONS[0], item, t, WriteConcern::Local).expect("majority side");
        acked.push(t);
    }
    for i in 50..80 {
        let t = plus_ms(t0, -i);
        view_in(c, REGIONS[2], item, t, WriteConcern::Local).expect("minority side");
        acked.push(t);
    }
    c.run_for(Duration::from_millis(300));
    let at = plus_ms(t0, 1000);
    let during = scores(c, item, at);
    assert_close(
        during[1],
        analytical(&acked[..50], at),
        "region 1 sees region 0",
    );
    assert_close(during[2], analytical(&acked[50..], at), "region 2 is alone");
    drop(cut);
    c.await_full_convergence(CONVERGE)
        .expect("converges after the heal");
    let s = scores(c, item, at);
    assert!(s.iter().all(|x| *x == s[0]), "bit-identical: {s:?}");
    assert_close(s[0], analytical(&acked, at), "80 events, none twice");
    let before: Vec<_> = REGIONS
        .iter()
        .map(|r| c.version_vector(*r, SHARD).expect("vv"))
        .collect();
    c.reconcile_all();
    c.reconcile_all();
    c.run_for(Duration::from_millis(200));
    let after: Vec<_> = REGIONS
        .iter()
        .map(|r| c.version_vector(*r, SHARD).expect("vv"))
        .collect();
    assert_eq!(before, after, "reconciling twice changes nothing");
}

/// Step 5 and seed 000's zero-downtime migration: a tenant moves from region 0 to region
/// 2 with writes and reads at every step; the target ends with every write, the source
/// with nothing.
fn tenant_migration_with_dual_write_and_gc<H: Harness>(h: &H) {
    let c = h.cluster();
    let tenant = TenantId(7);
    c.register_tenant(TenantConfig {
        required_regions: vec![REGIONS[0]],
        ..TenantConfig::new(tenant, "movers")
    })
    .expect("register");
    let item = EntityId::new(5);
    let t0 = c.now();
    let at = plus_ms(t0, 60_000);
    let mut acked = Vec::new();
    let mut write = |n: i64| {
        for _ in 0..n {
            let t = plus_ms(t0, -(acked.len() as i64));
            c.signal_for_tenant(tenant, "view", item, 1.0, Some(t))
                .expect("writes succeed at every step");
            acked.push(t);
        }
        let read = score_in(c, Scope::tenant(tenant), item, at).expect("reads succeed");
        assert_close(read, analytical(&acked, at), "a read between steps");
    };
    write(100);
    let migration = c.migrate_tenant(tenant, REGIONS[2], None).expect("begin");
    migration.prepare_target().expect("prepare");
    write(10);
    migration.enter_dual_write().expect("dual write");
    write(10);
    migration.finalize().expect("finalize");
    write(10);
    // The source is about to be collected: a write sent to it by region is refused, not
    // acknowledged and then deleted with it.
    let at_source = Scope::tenant(tenant).in_region(Some(REGIONS[0]));
    let op = tidaldb::node::ClientOp::Signal {
        signal: c.layout().schema.resolve("view").expect("signal"),
        entity: item,
        weight: 1.0,
        ts: None,
    };
    let refused = c
        .write_scoped(at_source, item, &[op], None)
        .expect_err("the retiring source takes no writes");
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    migration.gc_source(Duration::ZERO).expect("gc");
    write(20);
    let target = Scope::tenant(tenant).in_region(Some(REGIONS[2]));
    assert_close(
        score_in(c, target, item, at).expect("the target serves"),
        analytical(&acked, at),
        "150 writes on the target",
    );
    let replicas = c.tenant_replicas(tenant);
    assert!(
        replicas
            .iter()
            .all(|(_, host)| host.region_id == REGIONS[2]),
        "the source was collected: {replicas:?}"
    );
    let source = Scope::tenant(tenant).in_region(Some(REGIONS[0]));
    let gone = score_in(c, source, item, at).expect_err("the source is gone");
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
}

/// Seed 000's rolling upgrade: a host is drained, goes down for its upgrade while 200
/// signals are written, and after it rejoins it holds every one of them.
fn rolling_upgrade_loses_nothing<H: Harness>(h: &H) {
    let c = h.cluster();
    let upgrade = RollingUpgradeCoordinator::new(c);
    let item = EntityId::new(9);
    let t0 = c.now();
    upgrade.drain(REGIONS[1], SHARD).expect("drain");
    c.crash(REGIONS[1], SHARD, false)
        .expect("the upgrade window");
    let mut acked = Vec::new();
    for i in 0..200 {
        let t = plus_ms(t0, -i);
        view_in(c, REGIONS[0], item, t, WriteConcern::Local).expect("others serve");
        acked.push(t);
    }
    upgrade.rejoin(REGIONS[1], SHARD).expect("rejoin");
    let at = plus_ms(t0, 1000);
    let rejoined = score_in(c, Scope::LEADER.in_region(Some(REGIONS[1])), item, at)
        .expect("the rejoined host serves");
    assert_close(
        rejoined,
        analytical(&acked, at),
        "all 200 on the rejoined host",
    );
    c.await_full_convergence(CONVERGE).expect("converges");
}

/// Seed 000's residency: a tenant pinned to region 1 keeps every replica there, and no
/// other region answers for it.
fn residency_keeps_a_tenant_in_its_region<H: Harness>(h: &H) {
    let c = h.cluster();
    let tenant = TenantId(10);
    c.register_tenant(TenantConfig {
        required_regions: vec![REGIONS[1]],
        ..TenantConfig::new(tenant, "eu")
    })
    .expect("register");
    for i in 0..20 {
        c.signal_for_tenant(tenant, "view", EntityId::new(i), 1.0, None)
            .expect("write");
    }
    let replicas = c.tenant_replicas(tenant);
    assert!(!replicas.is_empty());
    assert!(
        replicas.iter().all(|(_, h)| h.region_id == REGIONS[1]),
        "{replicas:?}"
    );
    let elsewhere = Scope::tenant(tenant).in_region(Some(REGIONS[0]));
    let refused = score_in(c, elsewhere, EntityId::new(1), c.now()).expect_err("not here");
    assert_eq!(refused.kind(), ErrorKind::NotFound);
}

/// Seed 000's rate limit, through the cluster: a burst of twice the rate passes, the next
/// write is refused with the quota, its limit and a retry-after, and writes nothing.
fn rate_limit_refuses_past_the_burst<H: Harness>(h: &H) {
    let c = h.cluster();
    let tenant = TenantId(3);
    c.register_tenant(TenantConfig {
        max_signals_per_sec: Some(1),
        required_regions: vec![REGIONS[0]],
        ..TenantConfig::new(tenant, "slow")
    })
    .expect("register");
    let item = EntityId::new(1);
    let burst = [item, item];
    c.write_batch(Scope::tenant(tenant), "view", &burst, &[1.0, 1.0], None)
        .expect("the burst passes");
    match c.signal_for_tenant(tenant, "view", item, 1.0, None) {
        Err(TidalError::QuotaExceeded(b)) => {
            assert_eq!((b.tenant, b.quota, b.limit), (3, Quota::SignalsPerSec, 1));
            assert!(b.retry_after.is_some_and(|d| d <= Duration::from_secs(1)));
        }
        other => panic!("the write past the burst must be refused: {other:?}"),
    }
    let count = c
        .total_signal_count_for_tenant(REGIONS[0], tenant, "view")
        .expect("count");
    assert_eq!(count, 2, "the refused write wrote nothing");
}

/// Seed 000's noisy neighbour, through the cluster: tenant A floods its shard far past its
/// rate and is refused past its burst, writing nothing it was refused, while every write of
/// tenant B on the same hosts succeeds.
fn noisy_neighbour_is_isolated<H: Harness>(h: &H) {
    let c = h.cluster();
    let (noisy, quiet) = (TenantId(21), TenantId(22));
    c.register_tenant(TenantConfig {
        max_signals_per_sec: Some(5),
        required_regions: vec![REGIONS[0]],
        ..TenantConfig::new(noisy, "noisy")
    })
    .expect("register A");
    c.register_tenant(TenantConfig {
        max_signals_per_sec: Some(100_000),
        required_regions: vec![REGIONS[0]],
        ..TenantConfig::new(quiet, "quiet")
    })
    .expect("register B");
    let item = EntityId::new(2);
    let mut admitted = 0u64;
    for _ in 0..500 {
        match c.signal_for_tenant(noisy, "view", item, 1.0, None) {
            Ok(_) => admitted += 1,
            Err(TidalError::QuotaExceeded(b)) => assert_eq!(b.tenant, 21),
            Err(e) => panic!("tenant A got {e}"),
        }
        c.signal_for_tenant(quiet, "view", item, 1.0, None)
            .expect("tenant B is never throttled by A");
    }
    assert!(
        (10..500).contains(&admitted),
        "A admitted {admitted}: its burst, then its rate"
    );
    let count = |t| {
        c.total_signal_count_for_tenant(REGIONS[0], t, "view")
            .expect("count")
    };
    assert_eq!(count(noisy), admitted, "a refused write writes nothing");
    assert_eq!(count(quiet), 500);
}

macro_rules! on_both_drivers {
    ($($scenario:ident),* $(,)?) => {
        mod simulator {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&super::SimHarness::new(1));
                }
            )*
        }
        mod runtime {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&super::LocalHarness::new());
                }
            )*
        }
    };
}

on_both_drivers!(
    cross_region_replication,
    failover_after_a_crash,
    degraded_query_during_a_partition,
    partition_heal_and_reconciliation,
    tenant_migration_with_dual_write_and_gc,
    rolling_upgrade_loses_nothing,
    residency_keeps_a_tenant_in_its_region,
    rate_limit_refuses_past_the_burst,
    noisy_neighbour_is_isolated,
);

/// A blocking cluster call from inside an async task is refused, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_refuses_blocking_calls_from_async_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = tidaldb::runtime::LocalCluster::open(tidaldb::runtime::LocalClusterConfig::new(
        harness::schema(),
        dir.path(),
    ))
    .expect("opens");
    let node = cluster.node_id(REGIONS[0], SHARD).expect("node");
    let refused = cluster
        .handle(node)
        .write_signal(
            "view",
            EntityId::new(1),
            1.0,
            None,
            WriteConcern::Local,
            None,
        )
        .expect_err("blocking inside a runtime is refused");
    assert_eq!(refused.kind(), ErrorKind::InvalidArgument, "{refused}");
    assert_eq!(
        cluster.applied_seqno(REGIONS[0]).expect("up"),
        0,
        "nothing written"
    );
    tokio::task::block_in_place(|| cluster.shutdown()).expect("shutdown");
}

/// A clean stop (`crash(.., lose_unsynced: false)`, as an upgrade does) keeps writes the
/// batched log had not synced yet; a crash that loses the unsynced tail may not.
#[test]
fn a_clean_stop_of_a_runtime_replica_keeps_its_unsynced_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = tidaldb::runtime::LocalClusterConfig::new(harness::schema(), dir.path());
    config.durability = tidaldb::Durability::Batched {
        max_batch: 1_000_000,
        max_delay: Duration::from_secs(3600),
    };
    let c = tidaldb::runtime::LocalCluster::open(config).expect("opens");
    let item = EntityId::new(4);
    let t0 = c.now();
    // Region 1 is cut off, so the writes live only in region 0's unsynced log.
    let cut = c.partition_regions(REGIONS[0], REGIONS[1]).expect("cut");
    let cut2 = c.partition_regions(REGIONS[0], REGIONS[2]).expect("cut");
    for i in 0..10 {
        view_in(&c, REGIONS[0], item, plus_ms(t0, -i), WriteConcern::Local).expect("write");
    }
    c.crash(REGIONS[0], SHARD, false).expect("clean stop");
    c.restart(REGIONS[0], SHARD).expect("restart");
    assert_eq!(
        c.applied_seqno(REGIONS[0]).expect("up"),
        10,
        "every acknowledged write came back from the disk"
    );
    drop((cut, cut2));
    c.shutdown().expect("shutdown");
}
