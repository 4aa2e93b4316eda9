//! Fault handles: a partition that heals when dropped, and a crashed shard replica that
//! can be restarted.

use std::sync::{Mutex, Weak};

use super::cluster::SimulatedCluster;
use super::engine::Sim;
use super::network::PartitionId;
use crate::error::Result;
use crate::schema::{NodeId, RegionId, ShardId};

/// A live network partition. Dropping it (or calling [`NetworkPartition::heal`]) heals this
/// partition and no other.
#[derive(Debug)]
#[must_use = "the partition heals as soon as the handle is dropped"]
pub struct NetworkPartition {
    sim: Weak<Mutex<Sim>>,
    id: PartitionId,
}

impl NetworkPartition {
    pub(super) fn new(sim: Weak<Mutex<Sim>>, id: PartitionId) -> Self {
        NetworkPartition { sim, id }
    }

    /// Cuts `a` off from `b` in both directions.
    pub fn symmetric(a: RegionId, b: RegionId, cluster: &SimulatedCluster) -> Result<Self> {
        cluster.inject_partition(a, b)
    }

    pub fn heal(self) {}

    /// Gives up the handle and leaves the partition in place, for a caller that holds
    /// partitions by id (Python's `Partition`, whose lifetime the garbage collector
    /// decides): heal it with [`SimulatedCluster::heal_partition`].
    pub fn keep(mut self) -> PartitionId {
        // A handle that no longer reaches the simulator heals nothing when dropped.
        self.sim = Weak::new();
        self.id
    }

    /// True while this partition cuts its regions: false once healed, by this handle or
    /// by [`SimulatedCluster::heal_all_partitions`], or once the cluster is gone.
    pub fn is_active(&self) -> bool {
        self.sim.upgrade().is_some_and(|sim| {
            let sim = sim.lock().unwrap_or_else(|p| p.into_inner());
            sim.net.is_active(self.id)
        })
    }
}

impl Drop for NetworkPartition {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.upgrade() {
            let mut sim = sim.lock().unwrap_or_else(|p| p.into_inner());
            sim.net.heal(self.id);
        }
    }
}

/// A crashed replica: the current leader of a shard, taken down.
#[derive(Debug)]
pub struct ShardCrash {
    cluster: SimulatedCluster,
    region: RegionId,
    shard: ShardId,
    pub node: NodeId,
    /// Events the crash lost from the unsynced tail.
    pub lost_events: usize,
}

impl ShardCrash {
    /// Crashes the current leader of `shard`, losing its unsynced tail if `lose_unsynced`.
    pub fn crash(shard: ShardId, cluster: &SimulatedCluster, lose_unsynced: bool) -> Result<Self> {
        let node = cluster.leader_of(shard)?;
        let region = cluster.handle(node).region();
        let lost_events = cluster.crash(region, shard, lose_unsynced)?;
        Ok(ShardCrash {
            cluster: cluster.clone(),
            region,
            shard,
            node,
            lost_events,
        })
    }

    /// Starts the replica again; it rejoins as a follower and catches up.
    pub fn restart(self) -> Result<()> {
        self.cluster.restart(self.region, self.shard)
    }
}
