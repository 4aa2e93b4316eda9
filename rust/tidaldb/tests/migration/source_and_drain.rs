//! What the source and a drained host must still hold: a finalized source takes no writes
//! and is collected only once the target covers it, finalize and drain wait for writes in
//! an unsynced tail, a migration stays on its shard, and a dual write retried with its key
//! counts once.

use crate::common;

use std::time::Duration;

use tidaldb::control::MigrationState;
use tidaldb::sim::{ClusterConfig, RollingUpgradeCoordinator, SimDurability, SimulatedCluster};
use tidaldb::tenancy::{TenantConfig, TenantId};
use tidaldb::{EntityId, RegionId, Result, ShardId, TidalError};

const T: TenantId = TenantId(9);
const ITEM: EntityId = EntityId(77);

fn cluster(seed: u64, shards: u16, durability: SimDurability) -> Result<SimulatedCluster> {
    let c = SimulatedCluster::build(ClusterConfig {
        seed,
        shards_per_region: shards,
        durability,
        ..ClusterConfig::new(common::hourly_view_schema())
    })?;
    c.register_tenant(TenantConfig {
        required_regions: vec![RegionId(0)],
        ..TenantConfig::new(T, "t")
    })?;
    Ok(c)
}

/// Writes `n` signals; returns how many were acknowledged (the rest found no replica).
fn write(c: &SimulatedCluster, n: usize) -> u64 {
    let mut acked = 0;
    for _ in 0..n {
        c.run_for(Duration::from_millis(2));
        match c.signal_for_tenant(T, "view", ITEM, 1.0, None) {
            Ok(_) => acked += 1,
            Err(TidalError::Unavailable(_)) => {}
            Err(e) => panic!("a write failed with {e}"),
        }
    }
    acked
}

/// Nothing is routed to a finalized source, even while the target is down (`gc_source`
/// would collect such writes with the source), and `gc_source` waits until the target
/// covers the source.
#[test]
fn a_finalized_source_takes_no_writes_and_is_collected_only_once_covered() -> Result<()> {
    let c = cluster(1, 1, SimDurability::Immediate)?;
    let mut acked = write(&c, 20);
    let m = c.begin_tenant_migration(T, ShardId(0), ShardId(0), RegionId(2))?;
    m.prepare_target()?;
    m.enter_dual_write()?;
    acked += write(&c, 10);
    m.finalize()?;
    c.crash(RegionId(2), ShardId(0), false)?;
    assert_eq!(write(&c, 10), 0, "the finalized source took writes");
    assert!(matches!(
        m.gc_source(Duration::ZERO),
        Err(TidalError::Timeout(_))
    ));
    c.restart(RegionId(2), ShardId(0))?;
    m.gc_source(Duration::ZERO)?;
    assert_eq!(m.state()?, MigrationState::Complete);
    acked += write(&c, 5);
    assert_eq!(
        c.total_signal_count_for_tenant(RegionId(2), T, "view")?,
        acked
    );
    Ok(())
}

/// Under periodic sync, finalize compares the target with what the source has applied,
/// not with its durable version vector, which lacks acknowledged writes still in the
/// unsynced tail: the target must end with those writes too.
#[test]
fn finalize_waits_for_writes_still_in_the_sources_unsynced_tail() -> Result<()> {
    for seed in 10..20 {
        let c = cluster(seed, 1, SimDurability::Every(Duration::from_millis(500)))?;
        let mut acked = write(&c, 20);
        let m = c.begin_tenant_migration(T, ShardId(0), ShardId(0), RegionId(2))?;
        m.prepare_target()?;
        acked += write(&c, 10);
        m.enter_dual_write()?;
        m.finalize()?;
        m.gc_source(Duration::ZERO)?;
        assert_eq!(
            c.total_signal_count_for_tenant(RegionId(2), T, "view")?,
            acked,
            "seed {seed}"
        );
    }
    Ok(())
}

/// A migration to another shard is refused: it would put the target in another replica
/// group and leave the tenant's reads routed to a replica without its data.
#[test]
fn a_migration_to_another_shard_is_refused() -> Result<()> {
    let c = cluster(3, 2, SimDurability::Immediate)?;
    assert!(matches!(
        c.begin_tenant_migration(T, ShardId(0), ShardId(1), RegionId(1)),
        Err(TidalError::InvalidArgument { name: "target", .. })
    ));
    assert!(c.tenant_migration(T).is_err(), "nothing was recorded");
    Ok(())
}

/// Under periodic sync, `drain` waits for what the drained host has applied, not for its
/// durable version vector: its acknowledged, unsynced writes may be on no other replica
/// yet, and a hard crash would lose them.
#[test]
fn drain_waits_for_the_drained_hosts_unsynced_acknowledged_writes() -> Result<()> {
    let c = SimulatedCluster::build(ClusterConfig {
        seed: 21,
        durability: SimDurability::Every(Duration::from_millis(500)),
        ..ClusterConfig::new(common::hourly_view_schema())
    })?;
    c.run_for(Duration::from_millis(600));
    for _ in 0..20 {
        c.run_for(Duration::from_millis(2));
        c.write_signal("view", ITEM, 1.0)?; // to the leader, in region 0
    }
    RollingUpgradeCoordinator::new(&c).drain(RegionId(0), ShardId(0))?;
    let drained = c.version_vector(RegionId(0), ShardId(0))?;
    for r in [RegionId(1), RegionId(2)] {
        assert!(
            c.version_vector(r, ShardId(0))?.dominates(&drained),
            "region {} lacks what only the drained host had",
            r.0
        );
    }
    c.crash(RegionId(0), ShardId(0), true)?;
    c.restart(RegionId(0), ShardId(0))?;
    c.await_full_convergence(Duration::from_secs(10))?;
    assert_eq!(c.applied_seqno(RegionId(1))?, 20);
    Ok(())
}

/// A dual write cut off from the other side times out although it was applied; a retry
/// with the same idempotency key is recognised, so the write counts once.
#[test]
fn a_timed_out_dual_write_retried_with_its_key_counts_once() -> Result<()> {
    use tidaldb::event::{ClientTag, IdempotencyKey};
    use tidaldb::node::WriteAck;
    let c = cluster(4, 1, SimDurability::Immediate)?;
    let mut acked = write(&c, 10);
    let m = c.begin_tenant_migration(T, ShardId(0), ShardId(0), RegionId(2))?;
    m.prepare_target()?;
    m.enter_dual_write()?;
    let key = Some(ClientTag::Key(IdempotencyKey(7)));
    let cut = c.inject_partition(RegionId(0), RegionId(2))?;
    assert!(matches!(
        c.signal_for_tenant_tagged(T, "view", ITEM, 1.0, None, key),
        Err(TidalError::Timeout(_))
    ));
    drop(cut);
    let retry = c.signal_for_tenant_tagged(T, "view", ITEM, 1.0, None, key)?;
    assert!(matches!(retry, WriteAck::Duplicate { .. }), "{retry:?}");
    acked += 1;
    m.finalize()?;
    m.gc_source(Duration::ZERO)?;
    assert_eq!(
        c.total_signal_count_for_tenant(RegionId(2), T, "view")?,
        acked
    );
    Ok(())
}
