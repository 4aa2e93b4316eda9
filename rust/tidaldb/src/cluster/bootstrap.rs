//! A new cluster's first shape: its validated layout, every region's replica of every
//! shard, and the control plane that knows them. Both drivers start from this, so a
//! simulated cluster and a runtime one with the same regions have the same node ids.

use super::driver::Layout;
use crate::control::{ControlPlane, Replica};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::{NodeConfig, NodeRole, PeerAddr, RoutingStrategy, ShardRouter};
use crate::schema::{NodeId, RegionId, ShardId};

/// Node ids are 16-bit, so a cluster holds at most this many replicas.
pub const MAX_NODES: usize = u16::MAX as usize + 1;

/// The default tenant's router for `shards` shards per region, after checking that the
/// regions are distinct, the first leader is one of the replicas, and every replica can
/// be named.
pub fn shard_router(
    regions: &[RegionId],
    shards: u16,
    leader: (RegionId, ShardId),
) -> Result<ShardRouter> {
    let mut sorted = regions.to_vec();
    sorted.sort();
    sorted.dedup();
    if regions.is_empty() || sorted.len() != regions.len() {
        return Err(TidalError::InvalidArgument {
            name: "regions",
            reason: "give at least one region, each once".into(),
        });
    }
    if !regions.contains(&leader.0) || leader.1.0 >= shards {
        return Err(TidalError::InvalidArgument {
            name: "leader",
            reason: format!(
                "({}, {}) is not a replica of this cluster",
                leader.0.0, leader.1.0
            ),
        });
    }
    if regions.len() * usize::from(shards) > MAX_NODES {
        return Err(TidalError::InvalidArgument {
            name: "shards_per_region",
            reason: format!(
                "{} regions x {shards} shards is more replicas than 16-bit node ids can \
                 name ({MAX_NODES})",
                regions.len()
            ),
        });
    }
    ShardRouter::new(if shards <= 1 {
        RoutingStrategy::Single
    } else {
        RoutingStrategy::Hash { num_shards: shards }
    })
}

/// The default tenant's replicas — node `r × shards + s` is region `r`'s copy of shard
/// `s` — led from `leader_region`, and the control plane over them.
pub fn initial_replicas(
    layout: &Layout,
    leader_region: RegionId,
) -> (Vec<NodeConfig>, ControlPlane) {
    let regions = &layout.regions;
    let shards = layout.shards_per_region;
    let id_of = |r: usize, s: u16| NodeId((r * usize::from(shards) + usize::from(s)) as u16);
    let mut configs = Vec::new();
    let mut replicas = Vec::new();
    let mut leaders = Vec::new();
    for (r, &region) in regions.iter().enumerate() {
        for s in 0..shards {
            let id = id_of(r, s);
            let leads = region == leader_region;
            if leads {
                leaders.push((ShardId(s), id));
            }
            replicas.push(Replica {
                node: id,
                region,
                shard: ShardId(s),
                tenant: TenantId::DEFAULT,
            });
            let role = if leads {
                NodeRole::Leader
            } else {
                NodeRole::Follower
            };
            let peers = (0..regions.len())
                .filter(|&o| o != r)
                .map(|o| PeerAddr::new(id_of(o, s), regions[o]))
                .collect();
            configs.push(layout.replica_config(id, region, ShardId(s), role, peers));
        }
    }
    let control = ControlPlane::new(replicas, &leaders, layout.timing.election_timeout);
    (configs, control)
}
