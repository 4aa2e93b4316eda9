//! Cluster health for monitoring: one row per replica, a verdict per region, and each
//! tenant's placement and migration, serializable to JSON.

use serde::Serialize;

use super::{ControlPlane, MigrationRecord};
use crate::event::TenantId;
use crate::node::NodeRole;
use crate::schema::{NodeId, RegionId, ShardId, Timestamp};
use crate::tenancy::{EVENT_STORAGE_BYTES, ShardAssignment};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum RegionHealth {
    /// Every replica in the region reported within the election timeout.
    Healthy,
    /// Some did, some did not.
    Degraded,
    /// Every replica reported, but some lack events that have left their peers' in-memory
    /// logs: they are catching up from the peers' durable logs (or by snapshot), a full
    /// resync, and are not caught up until it ends.
    NeedsResync,
    /// None did.
    Offline,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionStatus {
    pub region: RegionId,
    pub health: RegionHealth,
}

/// One replica as the control plane last heard of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplicaHealth {
    pub tenant: TenantId,
    pub shard: ShardId,
    pub region: RegionId,
    pub node: NodeId,
    pub role: NodeRole,
    pub drained: bool,
    pub entity_count: u64,
    /// Applied events per second, over the last full second of reports.
    pub signal_throughput: f64,
    pub replication_lag_events: u64,
    pub replication_lag_ms: f64,
    /// Some live peer reports this replica lacks events no longer in its in-memory log:
    /// it needs a resync, and is getting one.
    pub needs_resync: bool,
    /// The tenant's log on this replica, accounted as the quotas account it.
    pub disk_bytes: u64,
    pub last_heartbeat_ns: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TenantStatus {
    pub tenant: TenantId,
    pub label: String,
    pub placement: Vec<ShardAssignment>,
    pub migration: Option<MigrationRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterHealth {
    pub at_ns: i64,
    pub regions: Vec<RegionStatus>,
    pub replicas: Vec<ReplicaHealth>,
    pub tenants: Vec<TenantStatus>,
    pub drained: Vec<ShardAssignment>,
}

impl ClusterHealth {
    pub fn to_json(&self) -> String {
        // Every field is a plain number, string or list, so this cannot fail; an empty
        // object is still valid JSON for a monitor if it ever did.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn region(&self, region: RegionId) -> Option<RegionHealth> {
        self.regions
            .iter()
            .find(|r| r.region == region)
            .map(|r| r.health)
    }
}

impl ControlPlane {
    /// True when a live replica's last report names `node` as lacking events that have
    /// left that replica's in-memory log.
    fn needs_resync(&self, node: NodeId, now: Timestamp) -> bool {
        self.members.iter().any(|m| {
            self.healthy(m, now)
                && m.last_report
                    .as_ref()
                    .is_some_and(|r| r.behind_log.contains(&node))
        })
    }

    pub fn health(&self, now: Timestamp) -> ClusterHealth {
        let replicas: Vec<ReplicaHealth> = self
            .members
            .iter()
            .map(|m| {
                let r = m.replica;
                let lag = self.lag_for(r.node);
                let events = m.last_report.as_ref().map_or(0, |rep| rep.vv.sum());
                ReplicaHealth {
                    tenant: r.tenant,
                    shard: r.shard,
                    region: r.region,
                    node: r.node,
                    role: if self.leader_of_group(r.group()) == Some(r.node) {
                        NodeRole::Leader
                    } else {
                        NodeRole::Follower
                    },
                    drained: self.is_drained(r.host()),
                    entity_count: m.last_report.as_ref().map_or(0, |rep| rep.entities),
                    // A silent replica applies nothing, whatever its last reports said.
                    signal_throughput: if self.healthy(m, now) {
                        m.throughput
                    } else {
                        0.0
                    },
                    replication_lag_events: lag.events,
                    replication_lag_ms: lag.oldest_age.as_secs_f64() * 1e3,
                    needs_resync: self.needs_resync(r.node, now),
                    disk_bytes: events.saturating_mul(EVENT_STORAGE_BYTES),
                    last_heartbeat_ns: m.last_heard.map(Timestamp::as_nanos),
                }
            })
            .collect();
        let mut regions: Vec<RegionId> = self.members.iter().map(|m| m.replica.region).collect();
        regions.sort_unstable();
        regions.dedup();
        let regions = regions
            .into_iter()
            .map(|region| {
                let (mut up, mut all, mut resync) = (0, 0, false);
                for m in self.members.iter().filter(|m| m.replica.region == region) {
                    all += 1;
                    up += usize::from(self.healthy(m, now));
                    resync |= self.needs_resync(m.replica.node, now);
                }
                let health = match up {
                    0 => RegionHealth::Offline,
                    n if n < all => RegionHealth::Degraded,
                    _ if resync => RegionHealth::NeedsResync,
                    _ => RegionHealth::Healthy,
                };
                RegionStatus { region, health }
            })
            .collect();
        let tenants = self
            .router
            .tenants()
            .map(|c| TenantStatus {
                tenant: c.tenant_id,
                label: c.label.clone(),
                placement: self
                    .router
                    .placement(c.tenant_id)
                    .map(<[_]>::to_vec)
                    .unwrap_or_default(),
                migration: self.migration(c.tenant_id).cloned(),
            })
            .collect();
        ClusterHealth {
            at_ns: now.as_nanos(),
            regions,
            replicas,
            tenants,
            drained: self.drained.iter().copied().collect(),
        }
    }
}
