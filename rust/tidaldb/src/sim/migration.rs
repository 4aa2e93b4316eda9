//! Zero-downtime tenant migration on the simulated cluster.
//!
//! The control plane's [`MigrationRecord`] is the truth; this handle only drives it. Every
//! step first finishes whatever the record says is under way, then checks its own
//! condition, so a step can be retried after a crash of the source, of the target, or of
//! the caller (drop the handle, and get a new one with
//! [`SimulatedCluster::tenant_migration`]).
//!
//! The target joins the tenant's replica group as one more replica, so the ordinary
//! replication protocol ships it the source's log, or a snapshot when the log no longer
//! holds everything; events keep their ids, so nothing is counted twice.

use std::time::Duration;

use super::SimulatedCluster;
use super::engine::Sim;
use super::tenants::wait_for;
use crate::control::{Command, MigrationRecord, MigrationState};
use crate::error::{Result, TidalError};
use crate::event::{TenantId, VersionVector};
use crate::node::{ControlCommand, Input, NodeRole, PeerAddr};
use crate::schema::{NodeId, RegionId, ShardId};
use crate::tenancy::ShardAssignment;

/// A handle on one tenant's migration. Cheap; any number may exist.
#[derive(Clone, Debug)]
pub struct TenantMigration {
    cluster: SimulatedCluster,
    tenant: TenantId,
    /// How long a step waits for replication (virtual time).
    pub step_timeout: Duration,
}

impl SimulatedCluster {
    /// Starts moving `tenant`'s home replica of `from_shard` to the host of the same
    /// shard in `to_region`. `to_shard` must equal `from_shard`: moving data between
    /// shards would split the key space, which migrations do not do.
    pub fn begin_tenant_migration(
        &self,
        tenant: TenantId,
        from_shard: ShardId,
        to_shard: ShardId,
        to_region: RegionId,
    ) -> Result<TenantMigration> {
        let mut sim = self.lock();
        let source = sim
            .control
            .router()
            .placement(tenant)?
            .iter()
            .find(|a| a.shard_id == from_shard)
            .copied()
            .ok_or_else(|| TidalError::InvalidArgument {
                name: "from_shard",
                reason: format!("tenant {tenant} has no replica of shard {}", from_shard.0),
            })?;
        let target = ShardAssignment {
            shard_id: to_shard,
            region_id: to_region,
        };
        let now = sim.now;
        sim.control.apply(
            now,
            Command::BeginMigration {
                tenant,
                source,
                target,
            },
        )?;
        drop(sim);
        self.tenant_migration(tenant)
    }

    /// A handle on `tenant`'s migration as the control plane records it: how a driver
    /// that crashed resumes.
    pub fn tenant_migration(&self, tenant: TenantId) -> Result<TenantMigration> {
        if self.lock().control.migration(tenant).is_none() {
            return Err(TidalError::NotFound(format!(
                "tenant {tenant} has no migration"
            )));
        }
        Ok(TenantMigration {
            cluster: self.clone(),
            tenant,
            step_timeout: Duration::from_secs(10),
        })
    }
}

impl TenantMigration {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub fn record(&self) -> Result<MigrationRecord> {
        self.cluster
            .lock()
            .control
            .migration(self.tenant)
            .cloned()
            .ok_or_else(|| TidalError::NotFound(format!("tenant {} has no migration", self.tenant)))
    }

    pub fn state(&self) -> Result<MigrationState> {
        Ok(self.record()?.state)
    }

    fn advance(&self, sim: &mut Sim, to: MigrationState, target: Option<NodeId>) -> Result<()> {
        let now = sim.now;
        sim.control.apply(
            now,
            Command::AdvanceMigration {
                tenant: self.tenant,
                to,
                target_node: target,
            },
        )
    }

    /// Creates the target replica (once) and waits until it holds everything the source
    /// held when this call began.
    pub fn prepare_target(&self) -> Result<()> {
        let m = self.record()?;
        if m.state >= MigrationState::DualWrite {
            return Ok(());
        }
        let mut sim = self.cluster.lock();
        let target = match m.target_node {
            Some(t) => t,
            None => self.create_target(&mut sim, &m)?,
        };
        let source = self.source_node(&sim, &m)?;
        let mark = applied_of(&sim, source)?;
        wait_for(&mut sim, self.step_timeout, |sim| {
            sim.node(target).is_ok_and(|t| t.durable().dominates(&mark))
        })
        .map_err(|e| self.stalled("prepare_target", e))
    }

    fn create_target(&self, sim: &mut Sim, m: &MigrationRecord) -> Result<NodeId> {
        let config = sim.control.router().config(self.tenant)?.clone();
        let id = sim.next_node_ids(1)?;
        let group: Vec<(NodeId, RegionId)> = sim
            .control
            .replicas()
            .filter(|r| r.tenant == self.tenant && r.shard == m.source.shard_id)
            .map(|r| (r.node, r.region))
            .collect();
        let peers = group.iter().map(|(n, r)| PeerAddr::new(*n, *r)).collect();
        self.cluster
            .start_replica(sim, &config, id, m.target, NodeRole::Follower, peers, false)?;
        let me = PeerAddr::new(id, m.target.region_id);
        for (n, _) in &group {
            // A replica that is down learns of the new peer when it restarts: the cluster
            // aligns a restarted replica's membership with its group.
            sim.drive(*n, Input::Control(ControlCommand::AddPeer(me)));
        }
        self.advance(sim, MigrationState::PreparingTarget, Some(id))?;
        Ok(id)
    }

    fn source_node(&self, sim: &Sim, m: &MigrationRecord) -> Result<NodeId> {
        sim.control
            .replica_on(self.tenant, m.source)
            .map(|r| r.node)
            .ok_or_else(|| {
                TidalError::NotFound(format!(
                    "tenant {}'s source replica is gone; the migration is past finalize",
                    self.tenant
                ))
            })
    }

    fn stalled(&self, step: &str, e: TidalError) -> TidalError {
        TidalError::Timeout(format!(
            "{step} of tenant {}'s migration did not finish ({e}); a replica is down or cut \
             off; the step is safe to retry",
            self.tenant
        ))
    }

    /// From here on every acknowledged write is on both source and target.
    pub fn enter_dual_write(&self) -> Result<()> {
        let m = self.record()?;
        match m.state {
            MigrationState::Idle => Err(TidalError::Conflict(format!(
                "tenant {}'s migration has not prepared its target; call prepare_target first",
                self.tenant
            ))),
            MigrationState::PreparingTarget => {
                self.prepare_target()?;
                let mut sim = self.cluster.lock();
                self.advance(&mut sim, MigrationState::DualWrite, None)
            }
            _ => Ok(()),
        }
    }

    /// Switches reads and writes to the target once it holds durably everything the
    /// source has applied. From then on the source is neither routed to nor elected.
    pub fn finalize(&self) -> Result<()> {
        let m = self.record()?;
        match m.state {
            MigrationState::Idle | MigrationState::PreparingTarget => {
                return Err(TidalError::Conflict(format!(
                    "tenant {}'s migration is in {}; enter dual write first",
                    self.tenant,
                    m.state.name()
                )));
            }
            MigrationState::Finalizing | MigrationState::Complete => return Ok(()),
            MigrationState::DualWrite => {}
        }
        let mut sim = self.cluster.lock();
        let source = self.source_node(&sim, &m)?;
        let target = m.target_node.ok_or_else(|| {
            TidalError::Conflict("the migration record has no target replica".into())
        })?;
        self.await_target_covers_source(&mut sim, source, target, "finalize")?;
        self.advance(&mut sim, MigrationState::Finalizing, None)
    }

    /// Waits until the target holds durably everything the source has applied.
    fn await_target_covers_source(
        &self,
        sim: &mut Sim,
        source: NodeId,
        target: NodeId,
        step: &str,
    ) -> Result<()> {
        applied_of(sim, source)?;
        wait_for(sim, self.step_timeout, |sim| {
            match (sim.node(source), sim.node(target)) {
                (Ok(s), Ok(t)) => t.durable().dominates(s.ledger().version_vector()),
                _ => false,
            }
        })
        .map_err(|e| self.stalled(step, e))
    }

    /// Removes the source's copy once `grace` of virtual time has passed since the
    /// switch (running the simulation until then), and only once the target holds
    /// everything the source has: a source that is down is not collected, since its disk
    /// may hold what nobody else does.
    pub fn gc_source(&self, grace: Duration) -> Result<()> {
        let m = self.record()?;
        match m.state {
            MigrationState::Complete => return Ok(()),
            MigrationState::Finalizing => {}
            s => {
                return Err(TidalError::Conflict(format!(
                    "tenant {}'s migration is in {}; finalize it before collecting the source",
                    self.tenant,
                    s.name()
                )));
            }
        }
        let mut sim = self.cluster.lock();
        let switched = m.finalized_at_ns.unwrap_or(sim.now.as_nanos());
        let due = switched.saturating_add(i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX));
        if let Ok(due) = crate::schema::Timestamp::from_nanos(due) {
            sim.run_until(due);
        }
        if let Some(source) = sim
            .control
            .replica_on(self.tenant, m.source)
            .map(|r| r.node)
        {
            let target = m.target_node.ok_or_else(|| {
                TidalError::Conflict("the migration record has no target replica".into())
            })?;
            self.await_target_covers_source(&mut sim, source, target, "gc_source")?;
            sim.retire(source);
            for i in 0..sim.nodes.len() {
                sim.drive(
                    NodeId(i as u16),
                    Input::Control(ControlCommand::RemovePeer(source)),
                );
            }
            let now = sim.now;
            sim.control.apply(now, Command::RemoveReplica(source))?;
        }
        self.advance(&mut sim, MigrationState::Complete, None)
    }
}

/// Everything `node` has applied: acknowledged writes included, synced or not. Marks are
/// taken from this, not from what is durable, or an acknowledged write still in the
/// source's unsynced tail could be left behind.
fn applied_of(sim: &Sim, node: NodeId) -> Result<VersionVector> {
    sim.node(node)
        .map(|n| n.ledger().version_vector().clone())
        .map_err(|_| {
            TidalError::Unavailable(format!(
                "the migration's source replica (node {}) is down; restart it and retry",
                node.0
            ))
        })
}
