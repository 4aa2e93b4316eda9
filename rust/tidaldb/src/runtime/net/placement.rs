//! Which process hosts which tenant, as the control plane has it: the plane's replica ids,
//! the placement every process starts from, a tenant registered while the cluster runs,
//! and the orders that make processes open the replicas the plane gave them.
//!
//! The plane names each replica by one id, `slot * MAX_CONTROL_NODES + process`, where a
//! tenant's slot is fixed when it is placed (the default tenant and the config's tenants
//! take slots 0, 1, ... in config order; a tenant registered later takes the next free
//! one). Every voter derives the same mapping from the committed plane.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::control_host::ControlSpec;
use crate::control::{Command, ControlPlane, Replica};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::PeerAddr;
use crate::schema::{NodeId, RegionId};
use crate::tenancy::TenantConfig;

/// Replica ids per tenant in the plane: node ids of a cluster with a control plane stay
/// below this.
pub const MAX_CONTROL_NODES: u16 = 64;

/// Maps the plane's replica ids to (process, tenant) and back.
#[derive(Clone, Debug, Default)]
pub struct ReplicaIds {
    slots: BTreeMap<TenantId, u16>,
}

impl ReplicaIds {
    /// Slots in the order given: how the config's tenants are placed before any command.
    pub fn in_order(tenants: &[TenantId]) -> Self {
        let slots = tenants.iter().zip(0u16..).map(|(t, s)| (*t, s)).collect();
        ReplicaIds { slots }
    }

    /// The slots the committed plane holds.
    pub fn of(plane: &ControlPlane) -> Self {
        let slots = plane
            .replicas()
            .map(|r| (r.tenant, r.node.0 / MAX_CONTROL_NODES))
            .collect();
        ReplicaIds { slots }
    }

    /// The plane's id of `tenant`'s replica on process `node`.
    pub fn replica(&self, node: NodeId, tenant: TenantId) -> Option<NodeId> {
        let slot = *self.slots.get(&tenant)?;
        (node.0 < MAX_CONTROL_NODES).then(|| NodeId(slot * MAX_CONTROL_NODES + node.0))
    }

    /// The process and tenant of one of the plane's replica ids.
    pub fn process(&self, replica: NodeId) -> Option<(NodeId, TenantId)> {
        let slot = replica.0 / MAX_CONTROL_NODES;
        let tenant = self.slots.iter().find(|(_, s)| **s == slot)?.0;
        Some((NodeId(replica.0 % MAX_CONTROL_NODES), *tenant))
    }

    /// The first slot no tenant holds.
    fn next_free(&self) -> u16 {
        self.slots.values().max().map_or(0, |s| s + 1)
    }
}

fn replica_id(ids: &ReplicaIds, node: NodeId, tenant: TenantId) -> Result<NodeId> {
    ids.replica(node, tenant)
        .ok_or_else(|| TidalError::InvalidArgument {
            name: "node_id",
            reason: format!(
                "with a control plane, node ids stay below {MAX_CONTROL_NODES}; {} does not",
                node.0
            ),
        })
}

/// The plane every process of the cluster starts from, built from the shared config:
/// one group per tenant, a replica on every process, the lowest node id leading.
pub fn initial_plane(spec: &ControlSpec) -> Result<ControlPlane> {
    let ids = ReplicaIds::in_order(&spec.tenants);
    let lowest = spec.nodes.iter().map(|(n, _)| *n).min();
    let mut replicas: Vec<Replica> = Vec::new();
    let mut leaders = Vec::new();
    for &tenant in &spec.tenants {
        for &(node, region) in &spec.nodes {
            let id = replica_id(&ids, node, tenant)?;
            replicas.push(Replica {
                node: id,
                region,
                shard: spec.shard,
                tenant,
            });
            if Some(node) == lowest && tenant == TenantId::DEFAULT {
                leaders.push((spec.shard, id));
            }
        }
    }
    let (default, others): (Vec<Replica>, Vec<Replica>) = replicas
        .into_iter()
        .partition(|r| r.tenant == TenantId::DEFAULT);
    let mut plane = ControlPlane::new(default, &leaders, spec.group_election_timeout);
    for &tenant in spec.tenants.iter().filter(|t| **t != TenantId::DEFAULT) {
        let lead = lowest.and_then(|n| ids.replica(n, tenant));
        let members = others.iter().filter(|r| r.tenant == tenant).copied();
        plane.place_tenant(tenant, members, lead)?;
    }
    Ok(plane)
}

/// The command that registers `config`'s tenant while the cluster runs: a replica on
/// every process in its `required_regions` (on every process when it names none), in
/// the next free slot, the lowest node id leading first. Two registrations decided on
/// the same plane pick the same slot, and the second to commit is refused.
pub fn place_command(
    spec: &ControlSpec,
    plane: &ControlPlane,
    config: TenantConfig,
) -> Result<Command> {
    let tenant = config.tenant_id;
    if plane.router().is_registered(tenant) {
        return Err(TidalError::Conflict(format!(
            "tenant {tenant} is already registered; tenants are registered once"
        )));
    }
    let mut ids = ReplicaIds::of(plane);
    ids.slots.insert(tenant, ids.next_free());
    let hosts = spec.nodes.iter().filter(|(_, region)| {
        config.required_regions.is_empty() || config.required_regions.contains(region)
    });
    let mut replicas = Vec::new();
    for &(node, region) in hosts {
        replicas.push(Replica {
            node: replica_id(&ids, node, tenant)?,
            region,
            shard: spec.shard,
            tenant,
        });
    }
    let lead = replicas.iter().map(|r| r.node).min();
    Ok(Command::PlaceTenant {
        config,
        replicas,
        lead,
    })
}

/// The Raft leader's order to a process: host a replica of this tenant, with these peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOrder {
    pub config: TenantConfig,
    /// The other processes that host the tenant, with their regions.
    pub peers: Vec<PeerAddr>,
    /// The replica that starts with a capped tenant's rights: the lowest process id.
    pub rights_home: NodeId,
    /// The number of the tenant's migration that placed the replica here as its target; 0
    /// when the tenant was placed here at registration. The replica keeps it, so that a
    /// stop or delete order of an earlier migration (from a leader's queue that outlived a
    /// partition) is not taken for one of a migration this replica is the source of.
    pub placed_by: u64,
    /// With `placed_by`, the process of that migration's source while it is in the plane:
    /// it holds every event a replica of this process may have originated in an earlier
    /// stay here, which the new replica must hold before it writes (see
    /// [`NodeConfig::own_history_from`](crate::node::NodeConfig::own_history_from)).
    pub placed_from: Option<NodeId>,
}

/// For each process, the replicas the plane gives it that the config does not (those are
/// opened at start): a process that already hosts one ignores the order, so they can be
/// sent again until every process has acted on them, after a restart too.
pub fn host_orders(
    plane: &ControlPlane,
    configured: &[TenantId],
) -> Vec<(NodeId, TenantId, HostOrder)> {
    let ids = ReplicaIds::of(plane);
    /// A process that hosts a tenant, and how it came to.
    struct Host {
        addr: PeerAddr,
        placed_by: u64,
        placed_from: Option<NodeId>,
    }
    let mut by_tenant: BTreeMap<TenantId, Vec<Host>> = BTreeMap::new();
    for r in plane.replicas() {
        if configured.contains(&r.tenant) {
            continue;
        }
        let placing = plane
            .migration(r.tenant)
            .filter(|m| m.target_node == Some(r.node));
        let placed_by = placing.map_or(0, |m| m.number);
        let placed_from = placing
            .and_then(|m| plane.replica_on(r.tenant, m.source))
            .and_then(|source| ids.process(source.node))
            .map(|(process, _)| process);
        if let Some((process, _)) = ids.process(r.node) {
            by_tenant.entry(r.tenant).or_default().push(Host {
                addr: PeerAddr::new(process, r.region),
                placed_by,
                placed_from,
            });
        }
    }
    let mut orders = Vec::new();
    for (tenant, hosts) in by_tenant {
        let Ok(config) = plane.router().config(tenant) else {
            continue;
        };
        let Some(rights_home) = hosts.iter().map(|h| h.addr.node).min() else {
            continue;
        };
        for host in &hosts {
            let peers = hosts
                .iter()
                .map(|p| p.addr)
                .filter(|p| p.node != host.addr.node);
            let order = HostOrder {
                config: config.clone(),
                peers: peers.collect(),
                rights_home,
                placed_by: host.placed_by,
                placed_from: host.placed_from,
            };
            orders.push((host.addr.node, tenant, order));
        }
    }
    orders
}

/// Opens and deletes this process's replicas on the control plane's orders.
pub trait Hosting: Send + Sync {
    /// Opens the ordered replica (the caller has checked it is not open).
    fn open(&self, order: &HostOrder) -> Result<()>;
    /// Closes the tenant's replica, if open, and deletes its files: its `migration` moved
    /// it. `false` when there was nothing to delete: the order is repeated, or it is of a
    /// migration before the one that placed the replica here.
    fn delete(&self, tenant: TenantId, migration: u64) -> Result<bool>;
}

pub type ReplicaOpener = Arc<dyn Hosting>;

/// The regions of `names`, by their index in the cluster's region list.
pub fn regions_named(region_names: &[String], names: &[String]) -> Result<Vec<RegionId>> {
    names
        .iter()
        .map(|name| match region_names.iter().position(|r| r == name) {
            Some(i) => Ok(RegionId(i as u16)),
            None => Err(TidalError::InvalidArgument {
                name: "region",
                reason: format!(
                    "no region {name:?}; the cluster's regions are {}",
                    region_names.join(", ")
                ),
            }),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schema::{ShardId, Timestamp};
    use std::time::Duration;

    /// A plane's spec: process `n` in region `r` for each `(n, r)`, node 0 voting, the
    /// default tenant and `tenants` from the config.
    pub(crate) fn spec_of(nodes: &[(u16, u16)], tenants: &[TenantId]) -> ControlSpec {
        ControlSpec {
            voters: vec![NodeId(0)],
            nodes: nodes
                .iter()
                .map(|(n, r)| (NodeId(*n), RegionId(*r)))
                .collect(),
            region_names: vec!["us".into(), "eu".into(), "ap".into()],
            shard: ShardId(0),
            tenants: [TenantId::DEFAULT]
                .into_iter()
                .chain(tenants.iter().copied())
                .collect(),
            tick: Duration::from_millis(20),
            heartbeat_ticks: 2,
            election_ticks: 10,
            group_election_timeout: Duration::from_millis(500),
            dir: std::path::PathBuf::new(),
            snapshot_every: 1024,
        }
    }

    fn spec(nodes: &[(u16, u16)]) -> ControlSpec {
        spec_of(nodes, &[TenantId(5)])
    }

    #[test]
    fn a_registered_tenant_takes_the_next_slot_and_only_its_regions() {
        let spec = spec(&[(0, 0), (1, 1), (2, 2)]);
        let mut plane = initial_plane(&spec).unwrap();
        let mut config = TenantConfig::new(TenantId(9), "nine");
        config.required_regions = vec![RegionId(1), RegionId(2)];
        let command = place_command(&spec, &plane, config).unwrap();
        plane
            .apply(Timestamp::from_nanos(1).unwrap(), command)
            .unwrap();
        let ids = ReplicaIds::of(&plane);
        assert_eq!(
            ids.replica(NodeId(1), TenantId(9)),
            Some(NodeId(2 * 64 + 1))
        );
        let orders = host_orders(&plane, &spec.tenants);
        let hosts: Vec<u16> = orders.iter().map(|(n, _, _)| n.0).collect();
        assert_eq!(hosts, vec![1, 2], "region 0's process must not host it");
        assert_eq!(
            orders[0].2.peers,
            vec![PeerAddr::new(NodeId(2), RegionId(2))]
        );
        assert_eq!(orders[0].2.rights_home, NodeId(1));
        assert!(
            orders.iter().all(|(_, _, o)| o.placed_by == 0),
            "no migration"
        );
        assert_eq!(
            ids.process(NodeId(2 * 64 + 2)),
            Some((NodeId(2), TenantId(9)))
        );
    }

    #[test]
    fn registering_a_tenant_twice_is_refused_and_changes_nothing() {
        let spec = spec(&[(0, 0), (1, 1)]);
        let mut plane = initial_plane(&spec).unwrap();
        let first = place_command(&spec, &plane, TenantConfig::new(TenantId(9), "a")).unwrap();
        // A second command decided on the same plane: same slot, refused when it applies.
        let second = place_command(&spec, &plane, TenantConfig::new(TenantId(8), "b")).unwrap();
        plane
            .apply(Timestamp::from_nanos(1).unwrap(), first)
            .unwrap();
        let before = plane.command_log().len();
        let refused = plane
            .apply(Timestamp::from_nanos(2).unwrap(), second)
            .unwrap_err();
        assert_eq!(refused.kind(), crate::error::ErrorKind::Conflict);
        assert!(!plane.router().is_registered(TenantId(8)));
        assert_eq!(plane.command_log().len(), before);
        let again = place_command(&spec, &plane, TenantConfig::new(TenantId(9), "a"));
        assert_eq!(again.unwrap_err().kind(), crate::error::ErrorKind::Conflict);
    }

    #[test]
    fn an_unknown_region_is_named_in_the_refusal() {
        let names = vec!["us".to_string(), "eu".to_string()];
        assert_eq!(
            regions_named(&names, &["eu".into()]).unwrap(),
            vec![RegionId(1)]
        );
        let e = regions_named(&names, &["mars".into()]).unwrap_err();
        assert!(e.to_string().contains("mars"), "{e}");
    }
}
