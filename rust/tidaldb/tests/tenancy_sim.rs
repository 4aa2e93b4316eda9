//! Tenants on the simulated cluster: noisy-neighbour isolation, data isolation, quotas,
//! health, and every bad input getting its own error.

mod common;

use std::time::Duration;

use tidaldb::control::{MigrationState, RegionHealth};
use tidaldb::event::EventId;
use tidaldb::sim::{ClusterConfig, SimulatedCluster};
use tidaldb::tenancy::{EVENT_STORAGE_BYTES, Quota, TenantConfig, TenantId};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, TidalError};

const A: TenantId = TenantId(1);
const B: TenantId = TenantId(2);

fn schema() -> Schema {
    common::hourly_view_schema()
}

fn cluster_with(seed: u64, shards: u16) -> SimulatedCluster {
    SimulatedCluster::build(ClusterConfig {
        seed,
        shards_per_region: shards,
        ..ClusterConfig::new(schema())
    })
    .expect("cluster builds")
}

fn quota_of(r: Result<impl std::fmt::Debug>) -> Quota {
    match r {
        Err(TidalError::QuotaExceeded(b)) => b.quota,
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
}

/// Mean time from a write of tenant B until all of B's replicas hold it, with tenant A
/// offered `a_rate` signals per second against a quota of 1K/s on the same shard.
/// Returns (B's mean lag, A's accepted writes, A's refused writes).
fn noisy_run(seed: u64, a_rate: u64) -> Result<(Duration, u64, u64)> {
    let c = cluster_with(seed, 1);
    c.register_tenant(TenantConfig {
        max_signals_per_sec: Some(1_000),
        ..TenantConfig::new(A, "noisy")
    })?;
    c.register_tenant(TenantConfig::new(B, "quiet"))?;
    let b_nodes: Vec<_> = c.tenant_replicas(B).into_iter().map(|(n, _)| n).collect();
    assert_eq!(b_nodes.len(), 3);
    let tick = Duration::from_micros(10);
    let (mut a_ok, mut a_refused) = (0u64, 0u64);
    let mut pending: Vec<(EventId, i64)> = Vec::new();
    let mut lags: Vec<i64> = Vec::new();
    let a_every = 100_000u64.checked_div(a_rate).unwrap_or(u64::MAX);
    // One virtual second of load: A every `a_every` ticks, B once a millisecond; then
    // until B's last writes have replicated.
    for step in 0..200_000u64 {
        let loading = step < 100_000;
        if !loading && pending.is_empty() {
            break;
        }
        if loading && step % a_every == 0 {
            match c.signal_for_tenant(A, "view", EntityId(step % 1000), 1.0, None) {
                Ok(_) => a_ok += 1,
                Err(TidalError::QuotaExceeded(b)) => {
                    assert!(b.retry_after.is_some_and(|d| d <= Duration::from_millis(1)));
                    a_refused += 1;
                }
                Err(e) => panic!("tenant A got {e}"),
            }
        }
        if loading && step % 100 == 0 {
            let ack = c
                .signal_for_tenant(B, "view", EntityId(step % 50), 1.0, None)
                .unwrap_or_else(|e| panic!("tenant B's write {step} failed: {e}"));
            pending.push((ack.event_id(), c.now().as_nanos()));
        }
        c.run_for(tick);
        let now = c.now().as_nanos();
        let held: Vec<_> = b_nodes
            .iter()
            .map(|n| c.handle(*n).durable())
            .collect::<Result<_>>()?;
        pending.retain(|(id, at)| {
            let everywhere = held.iter().all(|vv| vv.get(id.origin) >= id.seq);
            if everywhere {
                lags.push(now - at);
            }
            !everywhere
        });
    }
    assert_eq!(lags.len(), 1000, "every write of B replicates");
    let mean = lags.iter().sum::<i64>() / lags.len().max(1) as i64;
    Ok((Duration::from_nanos(mean as u64), a_ok, a_refused))
}

#[test]
fn a_noisy_tenant_is_throttled_and_its_neighbour_does_not_notice() -> Result<()> {
    let seed = 31;
    let (quiet, _, _) = noisy_run(seed, 0)?;
    let (noisy, a_ok, a_refused) = noisy_run(seed, 100_000)?;
    // GCRA: the burst of 2 × 1K, then 1K per second, over one virtual second.
    assert!(
        (2_998..=3_001).contains(&a_ok),
        "tenant A admitted {a_ok} (seed {seed})"
    );
    assert_eq!(a_ok + a_refused, 100_000);
    let ratio = noisy.as_secs_f64() / quiet.as_secs_f64();
    println!("tenant B's mean replication lag: {quiet:?} alone, {noisy:?} beside A ({ratio:.3}×)");
    assert!(
        (0.9..=1.1).contains(&ratio),
        "B's lag moved {ratio:.3}× with A throttled beside it (seed {seed})"
    );
    Ok(())
}

#[test]
fn no_api_of_one_tenant_returns_anothers_data() -> Result<()> {
    let c = cluster_with(3, 1);
    c.register_tenant(TenantConfig::new(A, "a"))?;
    c.register_tenant(TenantConfig::new(B, "b"))?;
    let item = EntityId(5);
    let written = c.now();
    for _ in 0..7 {
        c.signal_for_tenant(A, "view", item, 1.0, Some(written))?;
    }
    c.signal_for_tenant(B, "view", item, 2.0, Some(written))?;
    c.run_for(Duration::from_millis(300));
    let decay = (-((c.now().as_nanos() - written.as_nanos()) as f64) / 3600e9).exp2();
    let close = |x: f64, y: f64| ((x - y) / y).abs() <= 1e-9;
    for r in [RegionId(0), RegionId(1), RegionId(2)] {
        assert_eq!(c.total_signal_count_for_tenant(r, A, "view")?, 7);
        assert_eq!(c.total_signal_count_for_tenant(r, B, "view")?, 1);
        assert!(close(
            c.read_score_for_tenant(r, A, item, "view")?,
            7.0 * decay
        ));
        assert!(close(
            c.read_score_for_tenant(r, B, item, "view")?,
            2.0 * decay
        ));
        // The default tenant's replicas hold neither.
        assert_eq!(c.read_decay_score(r, item, "view")?, 0.0);
    }
    assert!(close(c.tenant_score(A, item, "view")?, 7.0 * decay));
    // Separate replicas, separate seq spaces: each tenant's first event is seq 1.
    let a_nodes: Vec<_> = c.tenant_replicas(A).into_iter().map(|(n, _)| n).collect();
    let b_nodes: Vec<_> = c.tenant_replicas(B).into_iter().map(|(n, _)| n).collect();
    assert!(a_nodes.iter().all(|n| !b_nodes.contains(n)));
    assert_eq!(c.handle(a_nodes[0]).applied_seqno()?, 7);
    assert_eq!(c.handle(b_nodes[0]).applied_seqno()?, 1);
    Ok(())
}

#[test]
fn entity_and_storage_quotas_refuse_and_write_nothing() -> Result<()> {
    let c = cluster_with(4, 1);
    c.register_tenant(TenantConfig {
        max_entities: Some(3),
        max_storage_bytes: Some(10 * EVENT_STORAGE_BYTES),
        ..TenantConfig::new(A, "capped")
    })?;
    for e in 0..3 {
        c.signal_for_tenant(A, "view", EntityId(e), 1.0, None)?;
    }
    assert_eq!(
        quota_of(c.signal_for_tenant(A, "view", EntityId(3), 1.0, None)),
        Quota::Entities
    );
    // Batches at the cap: known entities pass; one new entity refuses the whole batch.
    let home = c.tenant_replicas(A)[0].0;
    let view = c.config().schema.resolve("view")?;
    let op = |e: u64| tidaldb::node::ClientOp::Signal {
        signal: view,
        entity: EntityId(e),
        weight: 1.0,
        ts: None,
    };
    let local = tidaldb::node::WriteConcern::Local;
    assert_eq!(
        quota_of(c.submit(home, &[op(0), op(5), op(1)], local, None)),
        Quota::Entities
    );
    c.submit(home, &[op(0), op(1), op(0)], local, None)?;
    // Known entities still take writes, up to the storage quota of 10 events.
    for _ in 0..4 {
        c.signal_for_tenant(A, "view", EntityId(0), 1.0, None)?;
    }
    assert_eq!(
        quota_of(c.signal_for_tenant(A, "view", EntityId(0), 1.0, None)),
        Quota::StorageBytes
    );
    c.run_for(Duration::from_millis(300));
    for r in [RegionId(0), RegionId(1), RegionId(2)] {
        assert_eq!(
            c.total_signal_count_for_tenant(r, A, "view")?,
            10,
            "region {}",
            r.0
        );
        assert_eq!(c.read_score_for_tenant(r, A, EntityId(3), "view")?, 0.0);
    }
    Ok(())
}

#[test]
fn bad_tenant_input_gets_specific_errors() -> Result<()> {
    let c = cluster_with(5, 1);
    let invalid = |cfg: TenantConfig| {
        assert!(
            matches!(
                c.register_tenant(cfg.clone()),
                Err(TidalError::InvalidTenantConfig { .. })
            ),
            "{cfg:?} was accepted"
        )
    };
    invalid(TenantConfig {
        max_signals_per_sec: Some(0),
        ..TenantConfig::new(A, "zero")
    });
    invalid(TenantConfig {
        max_entities: Some(0),
        ..TenantConfig::new(A, "zero")
    });
    invalid(TenantConfig {
        max_storage_bytes: Some(0),
        ..TenantConfig::new(A, "zero")
    });
    invalid(TenantConfig {
        required_regions: vec![RegionId(9)],
        ..TenantConfig::new(A, "nowhere")
    });
    invalid(TenantConfig::new(A, "../../etc\0"));
    assert!(matches!(
        c.register_tenant(TenantConfig::new(TenantId::DEFAULT, "default")),
        Err(TidalError::Conflict(_))
    ));
    // A host that is down refuses the registration, which leaves nothing behind.
    c.crash(RegionId(0), ShardId(0), false)?;
    assert!(matches!(
        c.register_tenant(TenantConfig::new(A, "a")),
        Err(TidalError::Unavailable(_))
    ));
    assert!(c.tenant_replicas(A).is_empty());
    c.restart(RegionId(0), ShardId(0))?;
    c.register_tenant(TenantConfig {
        required_regions: vec![RegionId(0)],
        ..TenantConfig::new(A, "a")
    })?;
    assert!(matches!(
        c.register_tenant(TenantConfig::new(A, "again")),
        Err(TidalError::Conflict(_))
    ));
    let unknown = TenantId(404);
    let is_unknown =
        |r: Result<()>| matches!(r, Err(TidalError::UnknownTenant(t)) if t == unknown.0);
    assert!(is_unknown(
        c.signal_for_tenant(unknown, "view", EntityId(1), 1.0, None)
            .map(|_| ())
    ));
    assert!(is_unknown(
        c.tenant_score(unknown, EntityId(1), "view").map(|_| ())
    ));
    assert!(is_unknown(
        c.read_score_for_tenant(RegionId(0), unknown, EntityId(1), "view")
            .map(|_| ())
    ));
    assert!(is_unknown(
        c.total_signal_count_for_tenant(RegionId(0), unknown, "view")
            .map(|_| ())
    ));
    assert!(is_unknown(
        c.begin_tenant_migration(unknown, ShardId(0), ShardId(0), RegionId(1))
            .map(|_| ())
    ));
    assert!(matches!(
        c.signal_for_tenant(A, "nope", EntityId(1), 1.0, None),
        Err(TidalError::UnknownSignal { .. })
    ));
    assert!(matches!(
        c.signal_for_tenant(A, "view", EntityId(1), f64::NAN, None),
        Err(TidalError::InvalidWeight { .. })
    ));
    assert!(matches!(
        c.tenant_migration(A),
        Err(TidalError::NotFound(_))
    ));
    // Migrating to the shard it is on, or from a shard it has no replica of.
    assert!(matches!(
        c.begin_tenant_migration(A, ShardId(0), ShardId(0), RegionId(0)),
        Err(TidalError::InvalidArgument { name: "target", .. })
    ));
    assert!(matches!(
        c.begin_tenant_migration(A, ShardId(3), ShardId(0), RegionId(1)),
        Err(TidalError::InvalidArgument {
            name: "from_shard",
            ..
        })
    ));
    let m = c.begin_tenant_migration(A, ShardId(0), ShardId(0), RegionId(1))?;
    // Steps out of order are refused; a second migration while one runs is refused.
    assert!(matches!(m.finalize(), Err(TidalError::Conflict(_))));
    assert!(matches!(
        m.gc_source(Duration::ZERO),
        Err(TidalError::Conflict(_))
    ));
    assert!(matches!(m.enter_dual_write(), Err(TidalError::Conflict(_))));
    assert!(matches!(
        c.begin_tenant_migration(A, ShardId(0), ShardId(0), RegionId(2)),
        Err(TidalError::Conflict(_))
    ));
    m.prepare_target()?;
    m.enter_dual_write()?;
    m.finalize()?;
    m.gc_source(Duration::from_millis(50))?;
    assert_eq!(m.state()?, MigrationState::Complete);
    // Once complete, the tenant may move again.
    c.begin_tenant_migration(A, ShardId(0), ShardId(0), RegionId(2))?;
    Ok(())
}

#[test]
fn health_reports_regions_replicas_and_tenants_as_json() -> Result<()> {
    let c = cluster_with(6, 2);
    c.register_tenant(TenantConfig::new(A, "acme"))?;
    for e in 0..40 {
        c.signal_for_tenant(A, "view", EntityId(e), 1.0, None)?;
        c.write_signal("view", EntityId(e), 1.0)?;
        c.run_for(Duration::from_millis(40));
    }
    c.run_for(Duration::from_millis(300));
    let h = c.control_plane().health(c.now());
    for r in [RegionId(0), RegionId(1), RegionId(2)] {
        assert_eq!(h.region(r), Some(RegionHealth::Healthy));
    }
    // 3 regions × 2 shards, for the default tenant and for A.
    assert_eq!(h.replicas.len(), 12);
    let a_entities: u64 = h
        .replicas
        .iter()
        .filter(|r| r.tenant == A && r.region == RegionId(1))
        .map(|r| r.entity_count)
        .sum();
    assert_eq!(
        a_entities, 40,
        "A's entities over its two shards in one region"
    );
    assert!(h.replicas.iter().all(|r| r.replication_lag_events == 0));
    assert!(h.replicas.iter().all(|r| r.last_heartbeat_ns.is_some()));
    assert!(h.replicas.iter().any(|r| r.signal_throughput > 0.0));
    let a_disk: u64 = h
        .replicas
        .iter()
        .filter(|r| r.tenant == A && r.region == RegionId(0))
        .map(|r| r.disk_bytes)
        .sum();
    assert_eq!(a_disk, 40 * EVENT_STORAGE_BYTES);
    let json: serde_json::Value = serde_json::from_str(&h.to_json()).expect("valid JSON");
    assert_eq!(json["tenants"][1]["label"], "acme");
    assert_eq!(json["regions"][0]["health"], "Healthy");
    // One of region 1's two hosts goes down: Degraded; both: Offline.
    c.crash(RegionId(1), ShardId(1), false)?;
    c.run_for(Duration::from_secs(1));
    let h = c.control_plane().health(c.now());
    assert_eq!(h.region(RegionId(1)), Some(RegionHealth::Degraded));
    c.crash(RegionId(1), ShardId(0), false)?;
    c.run_for(Duration::from_secs(1));
    let h = c.control_plane().health(c.now());
    assert_eq!(h.region(RegionId(1)), Some(RegionHealth::Offline));
    assert_eq!(h.region(RegionId(0)), Some(RegionHealth::Healthy));
    Ok(())
}

#[test]
fn tenants_keep_serving_through_a_rolling_upgrade() -> Result<()> {
    use tidaldb::sim::RollingUpgradeCoordinator;
    let c = cluster_with(8, 1);
    c.register_tenant(TenantConfig::new(A, "everywhere"))?;
    c.register_tenant(TenantConfig {
        required_regions: vec![RegionId(1)],
        ..TenantConfig::new(B, "region one only")
    })?;
    let coordinator = RollingUpgradeCoordinator::new(&c);
    let mut acked = [0u64; 2];
    let mut write_both = |c: &SimulatedCluster| -> Result<()> {
        for (i, t) in [A, B].into_iter().enumerate() {
            c.signal_for_tenant(t, "view", EntityId(1), 1.0, None)?;
            acked[i] += 1;
            c.tenant_score(t, EntityId(1), "view")?;
        }
        c.run_for(Duration::from_millis(5));
        Ok(())
    };
    for r in [RegionId(0), RegionId(1), RegionId(2)] {
        coordinator.drain(r, ShardId(0))?;
        // Drained but still up: even the single-replica tenant B is served.
        write_both(&c)?;
        coordinator.upgrade(r, ShardId(0))?;
        write_both(&c)?;
        coordinator.rejoin(r, ShardId(0))?;
        write_both(&c)?;
    }
    c.run_for(Duration::from_millis(500));
    for r in [RegionId(0), RegionId(1), RegionId(2)] {
        assert_eq!(c.total_signal_count_for_tenant(r, A, "view")?, acked[0]);
    }
    assert_eq!(
        c.total_signal_count_for_tenant(RegionId(1), B, "view")?,
        acked[1]
    );
    assert_eq!(acked, [9, 9]);
    Ok(())
}

#[test]
fn rate_limiter_for_is_the_limiter_a_replica_admits_with() -> Result<()> {
    let c = cluster_with(9, 1);
    c.register_tenant(TenantConfig {
        max_signals_per_sec: Some(10),
        ..TenantConfig::new(A, "limited")
    })?;
    c.register_tenant(TenantConfig::new(B, "unlimited"))?;
    let item = EntityId(1);
    for _ in 0..20 {
        c.signal_for_tenant(A, "view", item, 1.0, None)?;
    }
    assert_eq!(
        quota_of(c.signal_for_tenant(A, "view", item, 1.0, None)),
        Quota::SignalsPerSec
    );
    // The home replica (region 0) spent its burst; region 1's replica has its own.
    let home = c.rate_limiter_for(A, RegionId(0), item)?.expect("a rate");
    assert!(home.try_acquire_n_at(c.now(), 1).is_err());
    let other = c.rate_limiter_for(A, RegionId(1), item)?.expect("a rate");
    assert!(other.try_acquire_n_at(c.now(), 20).is_ok());
    assert!(c.rate_limiter_for(B, RegionId(0), item)?.is_none());
    assert!(matches!(
        c.rate_limiter_for(TenantId(77), RegionId(0), item),
        Err(TidalError::UnknownTenant(_))
    ));
    Ok(())
}
