//! Tenant migration on the simulator.
//!
//! Here: a migration started with its target chosen for the caller, and run whole: the
//! shard picked or refused, the states reported after each step in order, and the tenant's
//! replica found in the target region afterwards, holding every write made before.
//! `crashes`: a crash in the middle of every step. `source_and_drain`: what the source and
//! a drained host must hold before they are let go. Randomized migrations are in
//! `migration_random.rs`.

mod common;
#[path = "migration/crashes.rs"]
mod crashes;
#[path = "migration/source_and_drain.rs"]
mod source_and_drain;

use std::time::Duration;

use tidaldb::control::MigrationState;
use tidaldb::sim::{ClusterConfig, Scope, SimulatedCluster, TenantMigration};
use tidaldb::tenancy::{TenantConfig, TenantId};
use tidaldb::{EntityId, RegionId, Result, ShardId, TidalError};

const T: TenantId = TenantId(3);

fn cluster(shards: u16, regions: Vec<RegionId>) -> Result<SimulatedCluster> {
    let c = SimulatedCluster::build(ClusterConfig {
        seed: 5,
        shards_per_region: shards,
        ..ClusterConfig::new(common::hourly_view_schema())
    })?;
    c.register_tenant(TenantConfig {
        required_regions: regions,
        ..TenantConfig::new(T, "mover")
    })?;
    Ok(c)
}

fn refused_naming(r: Result<TenantMigration>, arg: &str) -> bool {
    matches!(r, Err(TidalError::InvalidArgument { name, .. }) if name == arg)
}

#[test]
fn the_only_shard_is_picked_and_each_step_is_reported_in_order() -> Result<()> {
    let c = cluster(1, vec![RegionId(0)])?;
    let es: Vec<EntityId> = (0..20).map(EntityId).collect();
    c.write_batch(Scope::tenant(T), "view", &es, &vec![1.0; es.len()], None)?;
    let m = c.migrate_tenant(T, RegionId(2), None)?;
    let record = m.record()?;
    assert_eq!(record.source.shard_id, ShardId(0));
    assert_eq!(record.target.region_id, RegionId(2));

    let names: Vec<&str> = TenantMigration::STATES.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "idle",
            "target_created",
            "dual_write",
            "finalized",
            "complete"
        ]
    );
    for (i, s) in TenantMigration::STATES.iter().enumerate() {
        assert_eq!(TenantMigration::steps_done(*s), i as u64);
    }
    let mut seen = Vec::new();
    m.run_steps(record.number, Duration::ZERO, |s| {
        seen.push((s, TenantMigration::steps_done(s)));
        Ok::<_, TidalError>(())
    })?;
    use MigrationState::*;
    assert_eq!(
        seen,
        vec![
            (TargetCreated, 1),
            (DualWrite, 2),
            (Finalized, 3),
            (Complete, 4)
        ]
    );
    let regions: Vec<RegionId> = c
        .tenant_replicas(T)
        .into_iter()
        .map(|(_, a)| a.region_id)
        .collect();
    assert_eq!(regions, vec![RegionId(2)]);
    assert_eq!(c.total_signal_count_for_tenant(RegionId(2), T, "view")?, 20);
    // A finished run has nothing left to do, and reports nothing.
    m.run_steps(record.number, Duration::ZERO, |_| {
        Err::<(), TidalError>(TidalError::Conflict("called".into()))
    })?;
    Ok(())
}

#[test]
fn a_failing_report_stops_the_run_and_a_later_run_resumes() -> Result<()> {
    let c = cluster(1, vec![RegionId(0)])?;
    let m = c.migrate_tenant(T, RegionId(1), None)?;
    let number = m.record()?.number;
    let stop = m.run_steps(number, Duration::ZERO, |s| match s {
        MigrationState::DualWrite => Err(TidalError::Conflict("stop".into())),
        _ => Ok(()),
    });
    assert!(matches!(stop, Err(TidalError::Conflict(m)) if m == "stop"));
    assert_eq!(m.state()?, MigrationState::DualWrite);
    let mut rest = Vec::new();
    m.run_steps(number, Duration::ZERO, |s| {
        rest.push(s);
        Ok::<_, TidalError>(())
    })?;
    assert_eq!(
        rest,
        vec![MigrationState::Finalized, MigrationState::Complete]
    );
    Ok(())
}

#[test]
fn a_target_that_cannot_be_chosen_is_refused_and_nothing_starts() -> Result<()> {
    let c = cluster(2, vec![RegionId(0)])?;
    assert!(refused_naming(
        c.migrate_tenant(T, RegionId(1), None),
        "to_shard"
    ));
    assert!(refused_naming(
        c.migrate_tenant(T, RegionId(1), Some(ShardId(5))),
        "to_shard"
    ));
    assert!(refused_naming(
        c.migrate_tenant(T, RegionId(0), Some(ShardId(1))),
        "to_region"
    ));
    assert!(matches!(
        c.tenant_migration(T),
        Err(TidalError::NotFound(_))
    ));
    let m = c.migrate_tenant(T, RegionId(1), Some(ShardId(1)))?;
    assert_eq!(m.record()?.source.shard_id, ShardId(1));
    Ok(())
}

#[test]
fn an_old_handle_is_not_current_once_another_migration_begins() -> Result<()> {
    let c = cluster(1, vec![RegionId(0)])?;
    let first = c.migrate_tenant(T, RegionId(1), None)?;
    let number = first.record()?.number;
    first.run_steps(number, Duration::ZERO, |_| Ok::<_, TidalError>(()))?;
    first.ensure_current(number)?;
    let second = c.migrate_tenant(T, RegionId(2), None)?;
    assert!(matches!(
        first.ensure_current(number),
        Err(TidalError::Conflict(_))
    ));
    assert_eq!(first.state_of(number)?, MigrationState::Complete);
    assert_eq!(second.state_of(number + 1)?, MigrationState::Idle);
    Ok(())
}
