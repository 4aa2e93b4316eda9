//! Rolling upgrades, under either driver: one host at a time is drained, restarted on its
//! own storage (the "new binary"), and rejoined, while the other hosts serve.

use std::time::Duration;

use super::routing::replicas_on;
use super::{Cluster, ClusterDriver, ClusterView};
use crate::control::Command;
use crate::error::{Result, TidalError};
use crate::event::VersionVector;
use crate::schema::{NodeId, RegionId, ShardId};
use crate::tenancy::ShardAssignment;

/// Drives drain, upgrade and rejoin of one host at a time.
#[derive(Clone, Debug)]
pub struct RollingUpgradeCoordinator<D> {
    cluster: Cluster<D>,
    /// How long a drain or a rejoin may wait for replication, in the driver's time.
    pub step_timeout: Duration,
}

fn host(region: RegionId, shard: ShardId) -> ShardAssignment {
    ShardAssignment {
        shard_id: shard,
        region_id: region,
    }
}

/// The up replicas of `node`'s group other than itself.
fn up_peers(v: &dyn ClusterView, node: NodeId) -> Vec<NodeId> {
    let Some(me) = v.control().replica(node) else {
        return Vec::new();
    };
    v.control()
        .replicas()
        .filter(|r| r.group() == me.group() && r.node != node && v.node(r.node).is_ok())
        .map(|r| r.node)
        .collect()
}

impl<D: ClusterDriver + Clone> RollingUpgradeCoordinator<D> {
    pub fn new(cluster: &Cluster<D>) -> Self {
        RollingUpgradeCoordinator {
            cluster: cluster.clone(),
            step_timeout: Duration::from_secs(10),
        }
    }

    /// Stops routing to the host, moves its leaderships to caught-up replicas, and waits
    /// until its lag is 0: no other replica lacks an event that only this host has.
    /// One host at a time, so N−1 hosts always serve.
    pub fn drain(&self, region: RegionId, shard: ShardId) -> Result<()> {
        let h = host(region, shard);
        let driver = &self.cluster.driver;
        let still_drained = driver.view(|v| {
            v.control()
                .health(v.now())
                .drained
                .into_iter()
                .find(|d| *d != h)
        });
        if let Some(other) = still_drained {
            return Err(TidalError::Conflict(format!(
                "shard {} in region {} is still drained; rejoin it before draining another",
                other.shard_id.0, other.region_id.0
            )));
        }
        driver.apply_command(Command::Drain(h))?;
        let nodes = driver.view(|v| replicas_on(v, region, shard));
        driver
            .wait_until(self.step_timeout, &mut |v| {
                nodes.iter().all(|&n| {
                    let Ok(node) = v.node(n) else { return true };
                    // Applied, not durable: an acknowledged write in the unsynced tail
                    // exists only here until it is synced and shipped.
                    let own = node.ledger().version_vector().get(n);
                    let peers = up_peers(v, n);
                    let moved = peers.is_empty()
                        || v.control()
                            .replica(n)
                            .is_none_or(|r| v.control().leader_of_group(r.group()) != Some(n));
                    moved
                        && peers
                            .iter()
                            .all(|p| v.node(*p).is_ok_and(|p| p.durable().get(n) >= own))
                })
            })
            .map_err(|e| self.stalled("drain", h, e))
    }

    /// Restarts a drained host's replicas from their storage, as a new binary would.
    pub fn upgrade(&self, region: RegionId, shard: ShardId) -> Result<()> {
        let drained = self
            .cluster
            .driver
            .view(|v| v.control().is_drained(host(region, shard)));
        if !drained {
            return Err(TidalError::Conflict(format!(
                "drain shard {} in region {} before upgrading it",
                shard.0, region.0
            )));
        }
        if self
            .cluster
            .node_id(region, shard)
            .is_ok_and(|n| self.cluster.is_up(n))
        {
            self.cluster.crash(region, shard, false)?;
        }
        self.cluster.restart(region, shard)
    }

    /// Starts the host if it is down, waits until it holds everything its peers held
    /// when the rejoin began, then routes to it again.
    pub fn rejoin(&self, region: RegionId, shard: ShardId) -> Result<()> {
        let h = host(region, shard);
        if self
            .cluster
            .node_id(region, shard)
            .is_ok_and(|n| !self.cluster.is_up(n))
        {
            self.cluster.restart(region, shard)?;
        }
        let driver = &self.cluster.driver;
        let marks: Vec<(NodeId, VersionVector)> = driver.view(|v| {
            replicas_on(v, region, shard)
                .into_iter()
                .map(|n| {
                    let mut union = VersionVector::new();
                    for p in up_peers(v, n) {
                        if let Ok(p) = v.node(p) {
                            union.merge(p.durable());
                        }
                    }
                    (n, union)
                })
                .collect()
        });
        driver
            .wait_until(self.step_timeout, &mut |v| {
                marks
                    .iter()
                    .all(|(n, mark)| v.node(*n).is_ok_and(|n| n.durable().dominates(mark)))
            })
            .map_err(|e| self.stalled("rejoin", h, e))?;
        driver.apply_command(Command::Rejoin(h))
    }

    /// Drains, upgrades and rejoins every host in turn; returns them in the order done.
    pub fn upgrade_all(&self) -> Result<Vec<ShardAssignment>> {
        let hosts = self
            .cluster
            .driver
            .view(|v| v.control().router().topology().shards.clone());
        for h in &hosts {
            self.drain(h.region_id, h.shard_id)?;
            self.upgrade(h.region_id, h.shard_id)?;
            self.rejoin(h.region_id, h.shard_id)?;
        }
        Ok(hosts)
    }

    fn stalled(&self, step: &str, h: ShardAssignment, e: TidalError) -> TidalError {
        TidalError::Timeout(format!(
            "{step} of shard {} in region {} did not finish ({e}); a peer is down or cut off; \
             the step is safe to retry",
            h.shard_id.0, h.region_id.0
        ))
    }
}
