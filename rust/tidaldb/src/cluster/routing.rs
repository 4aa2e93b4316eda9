//! Client routing: which replica serves an entity, for a tenant and optionally a region.
//!
//! A scope without a region goes to the replica that serves the entity's shard: the
//! shard's leader for the default tenant, and the group's serving replica for a tenant
//! (its leader, unless the leader is down, drained or retiring). A scope with a region
//! goes to that region's replica, which also takes writes (the data plane is
//! active-active).

use super::driver::{ClusterView, Layout};
use crate::control::GroupId;
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::{EntityId, NodeId, RegionId, ShardId};
use crate::tenancy::ShardAssignment;

/// Whose data a client call addresses, and where.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub tenant: TenantId,
    /// `None`: the replica that serves the entity; `Some`: that region's replica.
    pub region: Option<RegionId>,
}

impl Scope {
    /// The default tenant, at the serving replica.
    pub const LEADER: Scope = Scope {
        tenant: TenantId::DEFAULT,
        region: None,
    };

    pub fn tenant(tenant: TenantId) -> Self {
        Scope {
            tenant,
            region: None,
        }
    }

    pub fn in_region(self, region: Option<RegionId>) -> Self {
        Scope { region, ..self }
    }
}

/// Names a region that is not in the cluster.
pub fn check_region(layout: &Layout, region: RegionId) -> Result<()> {
    if layout.regions.contains(&region) {
        Ok(())
    } else {
        Err(TidalError::NotFound(format!(
            "region {} is not in this cluster (regions: {:?})",
            region.0,
            layout.regions.iter().map(|r| r.0).collect::<Vec<_>>()
        )))
    }
}

pub fn check_tenant(view: &dyn ClusterView, tenant: TenantId) -> Result<()> {
    if view.control().router().is_registered(tenant) {
        Ok(())
    } else {
        Err(TidalError::UnknownTenant(tenant.0))
    }
}

/// The default tenant's replica on the host `(region, shard)`.
pub fn default_replica_at(
    view: &dyn ClusterView,
    region: RegionId,
    shard: ShardId,
) -> Result<NodeId> {
    let host = ShardAssignment {
        shard_id: shard,
        region_id: region,
    };
    view.control()
        .replica_on(TenantId::DEFAULT, host)
        .map(|r| r.node)
        .ok_or_else(|| {
            TidalError::NotFound(format!(
                "no replica of shard {} in region {}",
                shard.0, region.0
            ))
        })
}

/// Every replica, of any tenant, on the host `(region, shard)`.
pub fn replicas_on(view: &dyn ClusterView, region: RegionId, shard: ShardId) -> Vec<NodeId> {
    view.control()
        .replicas()
        .filter(|r| r.region == region && r.shard == shard)
        .map(|r| r.node)
        .collect()
}

pub fn shard_in_scope(
    layout: &Layout,
    view: &dyn ClusterView,
    scope: Scope,
    entity: EntityId,
) -> Result<ShardId> {
    if scope.tenant == TenantId::DEFAULT {
        Ok(layout.router.route(entity))
    } else {
        Ok(view
            .control()
            .router()
            .route(scope.tenant, entity)?
            .shard_id)
    }
}

/// The shards a scope's data lives on, in order.
pub fn shards_in_scope(
    layout: &Layout,
    view: &dyn ClusterView,
    scope: Scope,
) -> Result<Vec<ShardId>> {
    if scope.tenant == TenantId::DEFAULT {
        return Ok((0..layout.shards_per_region).map(ShardId).collect());
    }
    let mut shards: Vec<ShardId> = view
        .control()
        .router()
        .placement(scope.tenant)?
        .iter()
        .map(|a| a.shard_id)
        .collect();
    shards.sort_unstable();
    shards.dedup();
    Ok(shards)
}

/// The replica that answers for `shard` in `scope`.
pub fn replica_for_shard(
    layout: &Layout,
    view: &dyn ClusterView,
    scope: Scope,
    shard: ShardId,
) -> Result<NodeId> {
    match (scope.tenant == TenantId::DEFAULT, scope.region) {
        (true, Some(region)) => {
            check_region(layout, region)?;
            default_replica_at(view, region, shard)
        }
        (true, None) => view
            .control()
            .leader_of(shard)
            .filter(|n| view.node(*n).is_ok())
            .ok_or_else(|| {
                TidalError::Unavailable(format!(
                    "shard {} has no live leader; wait for the control plane to promote \
                     one, or write to a region",
                    shard.0
                ))
            }),
        (false, Some(region)) => {
            check_region(layout, region)?;
            check_tenant(view, scope.tenant)?;
            let host = ShardAssignment {
                shard_id: shard,
                region_id: region,
            };
            view.control()
                .replica_on(scope.tenant, host)
                .map(|r| r.node)
                .ok_or_else(|| {
                    TidalError::NotFound(format!(
                        "tenant {} keeps no replica of shard {} in region {}",
                        scope.tenant, shard.0, region.0
                    ))
                })
        }
        (false, None) => serving_replica(view, scope.tenant, shard),
    }
}

/// The replica that serves `entity` in `scope`.
pub fn node_serving(
    layout: &Layout,
    view: &dyn ClusterView,
    scope: Scope,
    entity: EntityId,
) -> Result<NodeId> {
    let shard = shard_in_scope(layout, view, scope, entity)?;
    replica_for_shard(layout, view, scope, shard)
}

/// The replica of a tenant's group that takes its region-less calls: the leader while it
/// is up, not drained and not retiring; otherwise the best other replica that is up.
pub fn serving_replica(view: &dyn ClusterView, tenant: TenantId, shard: ShardId) -> Result<NodeId> {
    check_tenant(view, tenant)?;
    let control = view.control();
    let group = GroupId { tenant, shard };
    let drained = |n: NodeId| {
        control
            .replica(n)
            .is_some_and(|r| control.is_drained(r.host()))
    };
    let retiring = |n: NodeId| control.is_retiring(n);
    if let Some(leader) = control
        .leader_of_group(group)
        .filter(|n| view.node(*n).is_ok() && !drained(*n) && !retiring(*n))
    {
        return Ok(leader);
    }
    // A drained replica still serves when it is the only one up (a tenant with a single
    // replica, during its host's upgrade window).
    let mut members: Vec<NodeId> = control
        .replicas()
        .filter(|r| r.group() == group && view.node(r.node).is_ok() && !retiring(r.node))
        .map(|r| r.node)
        .collect();
    members.sort_by_key(|n| (drained(*n), control.is_catching_up(*n), *n));
    members.first().copied().ok_or_else(|| {
        TidalError::Unavailable(format!(
            "no replica of tenant {tenant}'s shard {} is up; restart one",
            shard.0
        ))
    })
}
