//! Zero-downtime tenant migration, under either driver.
//!
//! The control plane's [`MigrationRecord`] is the truth; this handle only drives it. Every
//! step first finishes whatever the record says is under way, then checks its own
//! condition, so a step can be retried after a crash of the source, of the target, or of
//! the caller (drop the handle, and get a new one with [`Cluster::tenant_migration`]).
//!
//! The target joins the tenant's replica group as one more replica, so the ordinary
//! replication protocol ships it the source's log, or a snapshot when the log no longer
//! holds everything; events keep their ids, so nothing is counted twice.

use std::time::Duration;

use super::tenants::NewReplica;
use super::{Cluster, ClusterDriver, ClusterView};
use crate::control::{Command, MigrationRecord, MigrationState};
use crate::error::{Result, TidalError};
use crate::event::{TenantId, VersionVector};
use crate::node::{ControlCommand, Input, NodeRole, PeerAddr};
use crate::schema::{NodeId, RegionId, ShardId};
use crate::tenancy::ShardAssignment;

/// A handle on one tenant's migration. Cheap; any number may exist.
#[derive(Clone, Debug)]
pub struct TenantMigration<D> {
    cluster: Cluster<D>,
    tenant: TenantId,
    /// How long a step waits for replication, in the driver's time.
    pub step_timeout: Duration,
}

impl<D: ClusterDriver + Clone> Cluster<D> {
    /// Starts moving `tenant`'s home replica of `from_shard` to the host of the same
    /// shard in `to_region`. `to_shard` must equal `from_shard`: moving data between
    /// shards would split the key space, which migrations do not do.
    pub fn begin_tenant_migration(
        &self,
        tenant: TenantId,
        from_shard: ShardId,
        to_shard: ShardId,
        to_region: RegionId,
    ) -> Result<TenantMigration<D>> {
        let source = self.driver.view(|v| {
            v.control()
                .router()
                .placement(tenant)?
                .iter()
                .find(|a| a.shard_id == from_shard)
                .copied()
                .ok_or_else(|| TidalError::InvalidArgument {
                    name: "from_shard",
                    reason: format!("tenant {tenant} has no replica of shard {}", from_shard.0),
                })
        })?;
        let target = ShardAssignment {
            shard_id: to_shard,
            region_id: to_region,
        };
        self.driver.apply_command(Command::BeginMigration {
            tenant,
            source,
            target,
        })?;
        self.tenant_migration(tenant)
    }

    /// A handle on `tenant`'s migration as the control plane records it: how a driver
    /// that crashed resumes.
    pub fn tenant_migration(&self, tenant: TenantId) -> Result<TenantMigration<D>> {
        if self
            .driver
            .view(|v| v.control().migration(tenant).is_none())
        {
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

impl<D: ClusterDriver> TenantMigration<D> {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The migration as the control plane records it now.
    pub fn record(&self) -> Result<MigrationRecord> {
        self.cluster
            .driver
            .view(|v| v.control().migration(self.tenant).cloned())
            .ok_or_else(|| TidalError::NotFound(format!("tenant {} has no migration", self.tenant)))
    }

    pub fn state(&self) -> Result<MigrationState> {
        Ok(self.record()?.state)
    }

    fn advance(&self, to: MigrationState, target: Option<NodeId>) -> Result<()> {
        self.cluster
            .driver
            .apply_command(Command::AdvanceMigration {
                tenant: self.tenant,
                to,
                target_node: target,
            })
    }

    /// Creates the target replica (once) and waits until it holds everything the source
    /// held when this call began.
    pub fn prepare_target(&self) -> Result<()> {
        let m = self.record()?;
        if m.state >= MigrationState::DualWrite {
            return Ok(());
        }
        let target = match m.target_node {
            Some(t) => t,
            None => self.create_target(&m)?,
        };
        let mark = self.cluster.driver.view(|v| {
            let source = self.source_node(v, &m)?;
            applied_of(v, source)
        })?;
        self.cluster
            .driver
            .wait_until(self.step_timeout, &mut |v| {
                v.node(target).is_ok_and(|t| t.durable().dominates(&mark))
            })
            .map_err(|e| self.stalled("prepare_target", e))
    }

    fn create_target(&self, m: &MigrationRecord) -> Result<NodeId> {
        let _membership = self.cluster.membership_change();
        let driver = &self.cluster.driver;
        let (config, group) = driver.view(|v| {
            let config = v.control().router().config(self.tenant)?.clone();
            let group: Vec<PeerAddr> = v
                .control()
                .replicas()
                .filter(|r| r.tenant == self.tenant && r.shard == m.source.shard_id)
                .map(|r| PeerAddr::new(r.node, r.region))
                .collect();
            Ok::<_, TidalError>((config, group))
        })?;
        // A replica already on the target host is this migration's, started by an attempt
        // that stopped before the record named it: adopt it rather than start another.
        let started = driver.view(|v| {
            v.control()
                .replica_on(self.tenant, m.target)
                .map(|r| r.node)
        });
        if let Some(id) = started {
            self.advance(MigrationState::TargetCreated, Some(id))?;
            return Ok(id);
        }
        let id = driver.next_node_ids(1)?;
        // Every replica of the group names the same home for the hard caps' rights; the
        // target starts with none and borrows, or receives the source's at collection.
        let source = driver.view(|v| self.source_node(v, m))?;
        let rights_home = driver.view(|v| {
            v.node(source)
                .map(|n| n.config().rights_home.unwrap_or(source))
                .unwrap_or(source)
        });
        let replica = NewReplica {
            id,
            host: m.target,
            role: NodeRole::Follower,
            peers: group.clone(),
            lead: false,
            rights_home,
        };
        self.cluster.start_replica(&config, replica)?;
        let me = PeerAddr::new(id, m.target.region_id);
        for member in &group {
            // A replica that is down learns of the new peer when it restarts: the cluster
            // aligns a restarted replica's membership with its group.
            driver.input(member.node, Input::Control(ControlCommand::AddPeer(me)));
        }
        self.advance(MigrationState::TargetCreated, Some(id))?;
        Ok(id)
    }

    fn source_node(&self, v: &dyn ClusterView, m: &MigrationRecord) -> Result<NodeId> {
        v.control()
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
            MigrationState::TargetCreated => {
                // A stalled wait is reported as this step's, which the caller called.
                self.prepare_target().map_err(|e| match e {
                    TidalError::Timeout(m) => TidalError::Timeout(format!(
                        "enter_dual_write first finishes preparing the target: {m}"
                    )),
                    other => other,
                })?;
                self.advance(MigrationState::DualWrite, None)
            }
            _ => Ok(()),
        }
    }

    /// Switches reads and writes to the target once it holds durably everything the
    /// source has applied. From then on the source is neither routed to nor elected.
    pub fn finalize(&self) -> Result<()> {
        let m = self.record()?;
        match m.state {
            MigrationState::Idle | MigrationState::TargetCreated => {
                return Err(TidalError::Conflict(format!(
                    "tenant {}'s migration is in {}; enter dual write first",
                    self.tenant,
                    m.state.name()
                )));
            }
            MigrationState::Finalized | MigrationState::Complete => return Ok(()),
            MigrationState::DualWrite => {}
        }
        let source = self.cluster.driver.view(|v| self.source_node(v, &m))?;
        let target = target_of(&m)?;
        self.await_target_covers_source(source, target, "finalize")?;
        self.advance(MigrationState::Finalized, None)
    }

    /// Waits until the target holds durably everything the source had applied when the
    /// call began. That is enough: a write the source acknowledged since was a dual write,
    /// acknowledged only once the target held it too, and from `Finalized` on the source
    /// takes no writes at all. (A mark that moved with the source would never be reached
    /// under a steady load.)
    fn await_target_covers_source(&self, source: NodeId, target: NodeId, step: &str) -> Result<()> {
        let mark = self.cluster.driver.view(|v| applied_of(v, source))?;
        self.cluster
            .driver
            .wait_until(self.step_timeout, &mut |v| {
                v.node(target).is_ok_and(|t| t.durable().dominates(&mark))
            })
            .map_err(|e| self.stalled(step, e))
    }

    /// Removes the source's copy once `grace` has passed since the switch, and only once
    /// the target holds everything the source has: a source that is down is not
    /// collected, since its storage may hold what nobody else does.
    pub fn gc_source(&self, grace: Duration) -> Result<()> {
        let m = self.record()?;
        match m.state {
            MigrationState::Complete => return Ok(()),
            MigrationState::Finalized => {}
            s => {
                return Err(TidalError::Conflict(format!(
                    "tenant {}'s migration is in {}; finalize it before collecting the source",
                    self.tenant,
                    s.name()
                )));
            }
        }
        let driver = &self.cluster.driver;
        let now = driver.view(|v| v.now());
        let switched = m.finalized_at_ns.unwrap_or(now.as_nanos());
        let due = switched.saturating_add(i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX));
        let remaining = due.saturating_sub(now.as_nanos());
        if remaining > 0 {
            driver.advance(Duration::from_nanos(remaining as u64))?;
        }
        let source = driver.view(|v| {
            v.control()
                .replica_on(self.tenant, m.source)
                .map(|r| r.node)
        });
        if let Some(source) = source {
            let target = target_of(&m)?;
            // The source is routed no writes since the switch; now it refuses them too,
            // for good, and its rights go to the target (as events of its own, which the
            // wait below sees the target hold).
            driver.input(source, Input::Control(ControlCommand::StopServing));
            driver.input(
                source,
                Input::Control(ControlCommand::HandOverRights(target)),
            );
            self.await_target_covers_source(source, target, "gc_source")?;
            let _membership = self.cluster.membership_change();
            // Out of the control plane first: a retry after a crash from here on finds
            // no source to wait for, and goes on to collect.
            driver.apply_command(Command::RemoveReplica(source))?;
            let members: Vec<NodeId> =
                driver.view(|v| v.control().replicas().map(|r| r.node).collect());
            for n in members {
                driver.input(n, Input::Control(ControlCommand::RemovePeer(source)));
            }
            driver.retire_node(source);
        }
        self.advance(MigrationState::Complete, None)
    }
}

fn target_of(m: &MigrationRecord) -> Result<NodeId> {
    m.target_node
        .ok_or_else(|| TidalError::Conflict("the migration record has no target replica".into()))
}

/// Everything `node` has applied: acknowledged writes included, synced or not. Marks are
/// taken from this, not from what is durable, or an acknowledged write still in the
/// source's unsynced tail could be left behind.
fn applied_of(v: &dyn ClusterView, node: NodeId) -> Result<VersionVector> {
    v.node(node)
        .map(|n| n.ledger().version_vector().clone())
        .map_err(|_| {
            TidalError::Unavailable(format!(
                "the migration's source replica (node {}) is down; restart it and retry",
                node.0
            ))
        })
}
