//! Rolling upgrades on the simulated cluster: one host at a time is drained, restarted
//! on its own disk (the "new binary"), and rejoined, while the other hosts serve.

use std::time::Duration;

use super::SimulatedCluster;
use super::engine::Sim;
use super::tenants::wait_for;
use crate::control::Command;
use crate::error::{Result, TidalError};
use crate::event::VersionVector;
use crate::schema::{NodeId, RegionId, ShardId};
use crate::tenancy::ShardAssignment;

#[derive(Clone, Debug)]
pub struct RollingUpgradeCoordinator {
    cluster: SimulatedCluster,
    /// How long a drain or a rejoin may wait for replication (virtual time).
    pub step_timeout: Duration,
}

fn host(region: RegionId, shard: ShardId) -> ShardAssignment {
    ShardAssignment {
        shard_id: shard,
        region_id: region,
    }
}

/// The up replicas of `node`'s group other than itself.
fn up_peers(sim: &Sim, node: NodeId) -> Vec<NodeId> {
    let Some(me) = sim.control.replica(node) else {
        return Vec::new();
    };
    sim.control
        .replicas()
        .filter(|r| r.group() == me.group() && r.node != node && sim.node(r.node).is_ok())
        .map(|r| r.node)
        .collect()
}

impl RollingUpgradeCoordinator {
    pub fn new(cluster: &SimulatedCluster) -> Self {
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
        let mut sim = self.cluster.lock();
        if let Some(other) = sim
            .control
            .health(sim.now)
            .drained
            .into_iter()
            .find(|d| *d != h)
        {
            return Err(TidalError::Conflict(format!(
                "shard {} in region {} is still drained; rejoin it before draining another",
                other.shard_id.0, other.region_id.0
            )));
        }
        let now = sim.now;
        sim.control.apply(now, Command::Drain(h))?;
        let nodes = sim.nodes_on(region, shard);
        wait_for(&mut sim, self.step_timeout, |sim| {
            nodes.iter().all(|&n| {
                let Ok(node) = sim.node(n) else { return true };
                // Applied, not durable: an acknowledged write in the unsynced tail exists
                // only here until it is synced and shipped.
                let own = node.ledger().version_vector().get(n);
                let peers = up_peers(sim, n);
                let moved = peers.is_empty()
                    || sim
                        .control
                        .replica(n)
                        .is_none_or(|r| sim.control.leader_of_group(r.group()) != Some(n));
                moved
                    && peers
                        .iter()
                        .all(|p| sim.node(*p).is_ok_and(|p| p.durable().get(n) >= own))
            })
        })
        .map_err(|e| self.stalled("drain", h, e))
    }

    /// Restarts the drained host from its disk, as an upgrade to a new binary would.
    pub fn upgrade(&self, region: RegionId, shard: ShardId) -> Result<()> {
        if !self.cluster.lock().control.is_drained(host(region, shard)) {
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
        let mut sim = self.cluster.lock();
        let nodes = sim.nodes_on(region, shard);
        let marks: Vec<(NodeId, VersionVector)> = nodes
            .iter()
            .map(|&n| {
                let mut union = VersionVector::new();
                for p in up_peers(&sim, n) {
                    if let Ok(p) = sim.node(p) {
                        union.merge(p.durable());
                    }
                }
                (n, union)
            })
            .collect();
        wait_for(&mut sim, self.step_timeout, |sim| {
            marks
                .iter()
                .all(|(n, mark)| sim.node(*n).is_ok_and(|n| n.durable().dominates(mark)))
        })
        .map_err(|e| self.stalled("rejoin", h, e))?;
        let now = sim.now;
        sim.control.apply(now, Command::Rejoin(h))
    }

    /// Drains, upgrades and rejoins every host in turn; returns them in the order done.
    pub fn upgrade_all(&self) -> Result<Vec<ShardAssignment>> {
        let hosts = self
            .cluster
            .lock()
            .control
            .router()
            .topology()
            .shards
            .clone();
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
