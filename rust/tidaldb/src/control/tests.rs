//! The control plane as a state machine: replaying its command log rebuilds its state.

use std::time::Duration;

use super::*;
use crate::tenancy::TenantConfig;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000).unwrap_or(Timestamp::EPOCH)
}

/// The default tenant on three regions, one shard, led from region 0.
pub(super) fn three_region_plane() -> ControlPlane {
    ControlPlane::single_group(3, Duration::from_millis(500))
}

fn host(region: u16) -> ShardAssignment {
    ShardAssignment {
        shard_id: ShardId(0),
        region_id: RegionId(region),
    }
}

#[test]
fn replaying_the_command_log_rebuilds_the_same_state() -> Result<()> {
    let mut cp = three_region_plane();
    let t = TenantId(5);
    let mut cfg = TenantConfig::new(t, "five");
    cfg.required_regions = vec![RegionId(0)];
    let commands = vec![
        Command::RegisterTenant(cfg),
        Command::AddReplica {
            replica: Replica {
                node: NodeId(3),
                region: RegionId(0),
                shard: ShardId(0),
                tenant: t,
            },
            lead: true,
        },
        Command::Drain(host(1)),
        Command::BeginMigration {
            tenant: t,
            source: host(0),
            target: host(2),
        },
        Command::AddReplica {
            replica: Replica {
                node: NodeId(4),
                region: RegionId(2),
                shard: ShardId(0),
                tenant: t,
            },
            lead: false,
        },
        Command::AdvanceMigration {
            tenant: t,
            to: MigrationState::TargetCreated,
            target_node: Some(NodeId(4)),
        },
        Command::AdvanceMigration {
            tenant: t,
            to: MigrationState::DualWrite,
            target_node: None,
        },
        Command::AdvanceMigration {
            tenant: t,
            to: MigrationState::Finalized,
            target_node: None,
        },
        Command::Rejoin(host(1)),
        Command::Promote {
            group: GroupId {
                tenant: TenantId::DEFAULT,
                shard: ShardId(0),
            },
            node: NodeId(2),
            from_term: 1,
        },
    ];
    for (i, c) in commands.into_iter().enumerate() {
        cp.apply(at(i as i64), c)?;
    }
    // Refused commands leave no trace in the log.
    assert!(cp.apply(at(20), Command::Drain(host(9))).is_err());
    assert!(
        cp.apply(
            at(21),
            Command::BeginMigration {
                tenant: t,
                source: host(2),
                target: host(2)
            }
        )
        .is_err()
    );
    assert_eq!(cp.command_log().len(), 10);
    // Finalized moved the tenant and its leadership to the target, in a new term.
    let group = GroupId {
        tenant: t,
        shard: ShardId(0),
    };
    assert_eq!(cp.leader_of_group(group), Some(NodeId(4)));
    assert_eq!(cp.router().placement(t)?, &[host(2)]);
    assert_eq!(cp.leader_of(ShardId(0)), Some(NodeId(2)));
    assert_eq!(cp.term_of(ShardId(0)), 2);

    let mut replayed = three_region_plane();
    for logged in cp.command_log() {
        replayed.apply(Timestamp::from_nanos(logged.at_ns)?, logged.command.clone())?;
    }
    assert_eq!(
        replayed.health(at(30)).to_json(),
        cp.health(at(30)).to_json()
    );
    assert_eq!(replayed.command_log(), cp.command_log());
    Ok(())
}

#[test]
fn replicas_and_migration_targets_are_validated() -> Result<()> {
    let mut cp = three_region_plane();
    let t = TenantId(5);
    let mut cfg = TenantConfig::new(t, "five");
    cfg.required_regions = vec![RegionId(0)];
    cp.apply(at(0), Command::RegisterTenant(cfg))?;
    let replica = |node: u16, region: u16, tenant: TenantId| Command::AddReplica {
        replica: Replica {
            node: NodeId(node),
            region: RegionId(region),
            shard: ShardId(0),
            tenant,
        },
        lead: false,
    };
    // An unknown tenant, a host outside the tenant's placement, a node id in use.
    assert!(matches!(
        cp.apply(at(1), replica(3, 0, TenantId(6))),
        Err(TidalError::UnknownTenant(_))
    ));
    assert!(matches!(
        cp.apply(at(1), replica(3, 1, t)),
        Err(TidalError::InvalidArgument { .. })
    ));
    assert!(matches!(
        cp.apply(at(1), replica(1, 0, t)),
        Err(TidalError::Conflict(_))
    ));
    cp.apply(at(1), replica(3, 0, t))?;
    cp.apply(
        at(2),
        Command::BeginMigration {
            tenant: t,
            source: host(0),
            target: host(2),
        },
    )?;
    cp.apply(at(3), replica(4, 2, t))?;
    let advance = |to, target_node| Command::AdvanceMigration {
        tenant: t,
        to,
        target_node,
    };
    // The target must be this tenant's replica on the target host, named once, when
    // preparation starts.
    for wrong in [NodeId(1), NodeId(3), NodeId(9)] {
        assert!(
            cp.apply(at(4), advance(MigrationState::TargetCreated, Some(wrong)))
                .is_err()
        );
    }
    cp.apply(
        at(4),
        advance(MigrationState::TargetCreated, Some(NodeId(4))),
    )?;
    assert!(
        cp.apply(at(5), advance(MigrationState::DualWrite, Some(NodeId(1))))
            .is_err()
    );
    cp.apply(at(5), advance(MigrationState::DualWrite, None))?;
    assert_eq!(cp.migration(t).and_then(|m| m.target_node), Some(NodeId(4)));
    Ok(())
}

#[test]
fn hosts_are_drained_one_at_a_time() -> Result<()> {
    let mut cp = three_region_plane();
    cp.apply(at(0), Command::Drain(host(1)))?;
    cp.apply(at(1), Command::Drain(host(1)))?; // a retry of the same drain
    let logged = cp.command_log().len();
    let refused = cp.apply(at(2), Command::Drain(host(2)));
    assert!(
        matches!(refused, Err(TidalError::Conflict(ref m)) if m.contains("region 1")),
        "{refused:?}"
    );
    assert_eq!(
        cp.command_log().len(),
        logged,
        "a refused drain is not logged"
    );
    assert!(!cp.is_drained(host(2)));
    cp.apply(at(3), Command::Rejoin(host(1)))?;
    cp.apply(at(4), Command::Drain(host(2)))?;
    assert!(cp.is_drained(host(2)) && !cp.is_drained(host(1)));
    Ok(())
}
