//! The five multi-tenancy tests of seed 000, on the tenancy module and the simulator.
//!
//! Strengthened over the seed: the limiter runs on a handed clock (no wall-clock flakes);
//! noisy-neighbour isolation is also shown end to end in the simulator; the migration test
//! runs a reader beside every step that checks each read succeeds and equals the
//! analytical score of the acknowledged writes; the rolling-upgrade test checks that all
//! 200 signals written while a host was down are readable on it after it rejoins.
//! Every simulated run is seeded; a failure names the seed.

mod common;

use std::time::Duration;

use common::assert_close;

use tidaldb::control::MigrationState;
use tidaldb::sim::{ClusterConfig, RollingUpgradeCoordinator, SimulatedCluster};
use tidaldb::tenancy::{ClusterTopology, Quota, TenantConfig, TenantId, TenantRouter};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, TidalError, Timestamp, Window};

fn schema() -> Schema {
    common::hourly_view_schema()
}

fn cluster(seed: u64) -> SimulatedCluster {
    SimulatedCluster::build(ClusterConfig {
        seed,
        ..ClusterConfig::new(schema())
    })
    .expect("cluster builds")
}

fn three_shard_topology() -> ClusterTopology {
    ClusterTopology::one_shard_per_region(3)
}

fn tenant(id: u64, label: &str) -> TenantConfig {
    TenantConfig::new(TenantId(id), label)
}

fn at(ms: i64) -> Timestamp {
    common::ts(common::T0 + ms * 1_000_000)
}

#[test]
fn test_tenant_rate_limiting() -> Result<()> {
    let mut router = TenantRouter::new(three_shard_topology());
    router.register_tenant(TenantConfig {
        max_signals_per_sec: Some(100),
        ..tenant(1, "test-tenant")
    })?;
    let limiter = router
        .rate_limiter_for(TenantId(1))?
        .expect("a rate is set");
    // Burst = 2 × rate: 200 at one instant pass, the 201st does not.
    for i in 0..200 {
        assert!(limiter.try_acquire_n_at(at(0), 1).is_ok(), "acquire {i}");
    }
    match limiter.try_acquire_n_at(at(0), 1) {
        Err(TidalError::QuotaExceeded(b)) => {
            assert_eq!((b.tenant, b.quota, b.limit), (1, Quota::SignalsPerSec, 100));
            assert_eq!(b.retry_after, Some(Duration::from_millis(10)));
        }
        other => panic!("the 201st signal must be throttled, got {other:?}"),
    }
    // The retry-after is honest: at +10 ms exactly one more passes.
    assert!(limiter.try_acquire_n_at(at(10), 1).is_ok());
    assert!(limiter.try_acquire_n_at(at(10), 1).is_err());
    Ok(())
}

#[test]
fn test_noisy_neighbor_isolation() -> Result<()> {
    let mut router = TenantRouter::new(three_shard_topology());
    router.register_tenant(TenantConfig {
        max_signals_per_sec: Some(10),
        ..tenant(1, "noisy-tenant")
    })?;
    router.register_tenant(TenantConfig {
        max_signals_per_sec: Some(10_000),
        ..tenant(2, "good-tenant")
    })?;
    let a = router.rate_limiter_for(TenantId(1))?.expect("rate");
    let b = router.rate_limiter_for(TenantId(2))?.expect("rate");
    let passed_a = (0..1000)
        .filter(|_| a.try_acquire_n_at(at(0), 1).is_ok())
        .count();
    assert_eq!(passed_a, 20, "tenant A gets exactly its burst");
    for i in 0..100 {
        assert!(
            b.try_acquire_n_at(at(0), 1).is_ok(),
            "tenant B throttled at {i}"
        );
    }
    Ok(())
}

#[test]
fn test_tenant_residency_policy() -> Result<()> {
    let mut router = TenantRouter::new(three_shard_topology());
    router.register_tenant(TenantConfig {
        required_regions: vec![RegionId(1)],
        ..tenant(10, "eu-tenant")
    })?;
    for i in 0u64..100 {
        let a = router.route(TenantId(10), EntityId::new(i))?;
        assert_eq!(a.region_id, RegionId(1), "entity {i}");
        assert_eq!(a.shard_id, ShardId(1), "entity {i}");
    }
    // A policy no shard can satisfy is refused at registration, and registers nothing.
    let bad = TenantConfig {
        required_regions: vec![RegionId(9)],
        ..tenant(11, "nowhere")
    };
    assert!(matches!(
        router.register_tenant(bad),
        Err(TidalError::InvalidTenantConfig { tenant, .. }) if tenant == 11
    ));
    assert!(matches!(
        router.route(TenantId(11), EntityId::new(1)),
        Err(TidalError::UnknownTenant(11))
    ));
    Ok(())
}

/// Reads `tenant`'s item through its routing and checks it against the acknowledged writes.
fn check_read(c: &SimulatedCluster, t: TenantId, item: EntityId, acked: &[Timestamp], when: &str) {
    let score = c
        .tenant_score(t, item, "view")
        .unwrap_or_else(|e| panic!("a read failed {when}: {e}"));
    assert_close(score, analytical(acked, c.now()), when);
}

#[test]
fn test_tenant_migration_zero_downtime() -> Result<()> {
    let c = cluster(7);
    let t = TenantId(1);
    let item = EntityId::new(5);
    c.register_tenant(TenantConfig {
        required_regions: vec![RegionId(0)],
        ..tenant(1, "mover")
    })?;
    let mut acked = Vec::new();
    let write = |c: &SimulatedCluster, acked: &mut Vec<Timestamp>| -> Result<()> {
        c.run_for(Duration::from_millis(3));
        let now = c.now();
        c.signal_for_tenant(t, "view", item, 1.0, None)?;
        acked.push(now);
        check_read(c, t, item, acked, "after a write");
        Ok(())
    };
    for _ in 0..100 {
        write(&c, &mut acked)?;
    }
    let m = c.begin_tenant_migration(t, ShardId(0), ShardId(0), RegionId(2))?;
    assert_eq!(m.state()?, MigrationState::Idle);
    m.prepare_target()?;
    check_read(&c, t, item, &acked, "after prepare_target");
    assert_eq!(m.state()?, MigrationState::TargetCreated);
    m.enter_dual_write()?;
    assert_eq!(m.state()?, MigrationState::DualWrite);
    for _ in 0..50 {
        write(&c, &mut acked)?;
        // Dual write: the target holds every acknowledged write already.
        assert_eq!(
            c.total_signal_count_for_tenant(RegionId(2), t, "view")?,
            acked.len() as u64
        );
    }
    c.run_for(Duration::from_millis(100));
    m.finalize()?;
    assert_eq!(m.state()?, MigrationState::Finalized);
    check_read(&c, t, item, &acked, "after finalize");
    assert_eq!(
        c.total_signal_count_for_tenant(RegionId(2), t, "view")?,
        150
    );
    assert_close(
        c.read_score_for_tenant(RegionId(2), t, item, "view")?,
        analytical(&acked, c.now()),
        "target",
    );
    m.gc_source(Duration::ZERO)?;
    assert_eq!(m.state()?, MigrationState::Complete);
    assert_eq!(c.total_signal_count_for_tenant(RegionId(0), t, "view")?, 0);
    assert!(matches!(
        c.read_score_for_tenant(RegionId(0), t, item, "view"),
        Err(TidalError::NotFound(_))
    ));
    let hosts: Vec<RegionId> = c
        .tenant_replicas(t)
        .iter()
        .map(|(_, h)| h.region_id)
        .collect();
    assert_eq!(hosts, vec![RegionId(2)]);
    // Writes after the switch land on the new home.
    write(&c, &mut acked)?;
    assert_eq!(
        c.total_signal_count_for_tenant(RegionId(2), t, "view")?,
        151
    );
    Ok(())
}

#[test]
fn test_rolling_upgrade_no_data_loss() -> Result<()> {
    let c = cluster(11);
    let coordinator = RollingUpgradeCoordinator::new(&c);
    let item = EntityId::new(1);
    coordinator.drain(RegionId(1), ShardId(0))?;
    // The upgrade: the drained host goes down while the others serve.
    c.crash(RegionId(1), ShardId(0), true)?;
    let mut times = Vec::new();
    for _ in 0..200 {
        c.run_for(Duration::from_millis(2));
        times.push(c.now());
        c.write_signal("view", item, 1.0)?;
        for r in [RegionId(0), RegionId(2)] {
            c.read_decay_score(r, item, "view")?;
        }
    }
    coordinator.rejoin(RegionId(1), ShardId(0))?;
    let node = c.node(RegionId(1))?;
    assert_eq!(node.read_window(item, "view", Window::OneHour)?.count, 200);
    assert_close(
        node.read_decay_score(item, "view", None)?,
        analytical(&times, c.now()),
        "rejoined",
    );
    c.run_for(Duration::from_millis(200));
    assert_eq!(
        c.control_plane().lag_for(node.id()).events,
        0,
        "no lag after rejoin"
    );
    Ok(())
}

#[test]
fn upgrade_all_restarts_every_host_and_loses_nothing() -> Result<()> {
    let c = cluster(12);
    let item = EntityId::new(3);
    let mut times = Vec::new();
    for _ in 0..50 {
        c.run_for(Duration::from_millis(2));
        times.push(c.now());
        c.write_signal("view", item, 1.0)?;
    }
    let order = RollingUpgradeCoordinator::new(&c).upgrade_all()?;
    assert_eq!(order.len(), 3);
    let cp = c.control_plane();
    let drains = cp
        .command_log()
        .iter()
        .filter(|l| matches!(l.command, tidaldb::control::Command::Drain(_)))
        .count();
    assert_eq!(drains, 3);
    assert!(cp.health(c.now()).drained.is_empty());
    c.run_for(Duration::from_millis(300));
    assert!(c.has_leader(), "some replica leads after the upgrade");
    for r in [RegionId(0), RegionId(1), RegionId(2)] {
        assert_close(
            c.read_decay_score(r, item, "view")?,
            analytical(&times, c.now()),
            "after upgrade_all",
        );
    }
    Ok(())
}

/// The analytical score of unit views written at `times` (the schema's 1 h half-life).
fn analytical(times: &[Timestamp], now: Timestamp) -> f64 {
    common::unit_decay_sum(times, now, Duration::from_secs(3600))
}
