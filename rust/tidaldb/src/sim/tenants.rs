//! Tenants on the simulated cluster. A registered tenant gets its own replica group per
//! shard, one replica on each host of its placement: its own nodes, logs, seq spaces and
//! disks, beside the default tenant's on the same hosts.

use std::sync::Arc;
use std::time::Duration;

use super::SimulatedCluster;
use super::client::Scope;
use super::cluster::replica_config;
use super::engine::Sim;
use crate::control::{Command, GroupId, MigrationState, Replica};
use crate::error::{Result, TidalError};
use crate::event::{ClientTag, EventId, TenantId};
use crate::node::{ClientOp, NodeRole, PeerAddr, WriteAck};
use crate::schema::{EntityId, NodeId, RegionId, ShardId, Timestamp};
use crate::tenancy::{ShardAssignment, TenantConfig, TenantQuotas, TenantRateLimiter};

impl SimulatedCluster {
    /// Registers a tenant and starts its replicas. Quotas and residency are checked
    /// here; each replica enforces the quotas on what it admits.
    pub fn register_tenant(&self, config: TenantConfig) -> Result<()> {
        if config.tenant_id == TenantId::DEFAULT {
            return Err(TidalError::Conflict(
                "tenant t0 is the built-in default tenant; register tenants from t1".into(),
            ));
        }
        let tenant = config.tenant_id;
        let mut sim = self.lock();
        // Place it on a copy of the router first: every host must be up before anything
        // is registered, so a refusal leaves no half-placed tenant behind.
        let mut trial = sim.control.router().clone();
        trial.register_tenant(config.clone())?;
        let placement = trial.placement(tenant)?.to_vec();
        if let Some(down) = placement.iter().find(|h| {
            !sim.node_at(h.region_id, h.shard_id)
                .is_ok_and(|n| sim.node(n).is_ok())
        }) {
            return Err(TidalError::Unavailable(format!(
                "the host of shard {} in region {} is down; restart it before registering \
                 tenant {tenant}",
                down.shard_id.0, down.region_id.0
            )));
        }
        let first = sim.next_node_ids(placement.len())?.0;
        let now = sim.now;
        sim.control
            .apply(now, Command::RegisterTenant(config.clone()))?;
        let ids: Vec<NodeId> = (0..placement.len())
            .map(|i| NodeId(first + i as u16))
            .collect();
        for (i, host) in placement.iter().enumerate() {
            let peers = placement
                .iter()
                .zip(&ids)
                .filter(|(h, id)| h.shard_id == host.shard_id && **id != ids[i])
                .map(|(h, id)| PeerAddr::new(*id, h.region_id))
                .collect();
            // The first replica of each shard in the placement is its home and leader.
            let lead = placement.iter().position(|h| h.shard_id == host.shard_id) == Some(i);
            let role = if lead {
                NodeRole::Leader
            } else {
                NodeRole::Follower
            };
            self.start_replica(&mut sim, &config, ids[i], *host, role, peers, lead)?;
        }
        Ok(())
    }

    /// Adds one replica of `config`'s tenant on `host` to the simulation and the control
    /// plane. Each replica gets its own quota state, as a separate machine would.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_replica(
        &self,
        sim: &mut Sim,
        config: &TenantConfig,
        id: NodeId,
        host: ShardAssignment,
        role: NodeRole,
        peers: Vec<PeerAddr>,
        lead: bool,
    ) -> Result<()> {
        let mut cfg = replica_config(
            self.config(),
            id,
            host.region_id,
            host.shard_id,
            role,
            peers,
        );
        cfg.tenant = config.tenant_id;
        cfg.quotas = Some(Arc::new(TenantQuotas::new(config)?));
        let host_up = sim
            .node_at(host.region_id, host.shard_id)
            .is_ok_and(|n| sim.node(n).is_ok());
        if !host_up {
            return Err(TidalError::Unavailable(format!(
                "the host of shard {} in region {} is down; restart it first",
                host.shard_id.0, host.region_id.0
            )));
        }
        let now = sim.now;
        sim.control.apply(
            now,
            Command::AddReplica {
                replica: Replica {
                    node: id,
                    region: host.region_id,
                    shard: host.shard_id,
                    tenant: config.tenant_id,
                },
                lead,
            },
        )?;
        sim.add_node(cfg);
        Ok(())
    }

    pub(super) fn check_tenant(&self, sim: &Sim, tenant: TenantId) -> Result<()> {
        if sim.control.router().is_registered(tenant) {
            Ok(())
        } else {
            Err(TidalError::UnknownTenant(tenant.0))
        }
    }

    /// The replica that serves `tenant`'s `shard` now: the group's leader if it is up
    /// and not drained, else another up replica: drained ones and a migration's target
    /// that may still be catching up come last. A finalized migration's source, about to
    /// be collected, gets nothing.
    pub(super) fn serving_replica(
        &self,
        sim: &Sim,
        tenant: TenantId,
        shard: ShardId,
    ) -> Result<NodeId> {
        self.check_tenant(sim, tenant)?;
        let group = GroupId { tenant, shard };
        let drained = |n: NodeId| {
            sim.control
                .replica(n)
                .is_some_and(|r| sim.control.is_drained(r.host()))
        };
        let retiring = |n: NodeId| sim.control.is_retiring(n);
        if let Some(leader) = sim
            .control
            .leader_of_group(group)
            .filter(|n| sim.node(*n).is_ok() && !drained(*n) && !retiring(*n))
        {
            return Ok(leader);
        }
        // A drained replica still serves when it is the only one up (a tenant with a
        // single replica, during its host's upgrade window).
        let mut members: Vec<NodeId> = sim
            .control
            .replicas()
            .filter(|r| r.group() == group && sim.node(r.node).is_ok() && !retiring(r.node))
            .map(|r| r.node)
            .collect();
        members.sort_by_key(|n| (drained(*n), sim.control.is_catching_up(*n), *n));
        members.first().copied().ok_or_else(|| {
            TidalError::Unavailable(format!(
                "no replica of tenant {tenant}'s shard {} is up; restart one",
                shard.0
            ))
        })
    }

    /// A write for `tenant`, routed to the replica that serves `entity`. While the tenant
    /// is in dual-write, it is acknowledged only once the other side of the migration
    /// (target or source) holds it too, if that side is up.
    pub fn signal_for_tenant(
        &self,
        tenant: TenantId,
        signal: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
    ) -> Result<WriteAck> {
        self.signal_for_tenant_tagged(tenant, signal, entity, weight, ts, None)
    }

    /// [`SimulatedCluster::signal_for_tenant`] with a client tag (an idempotency key or a
    /// session sequence number), so that retrying a write that timed out cannot count it
    /// twice: the retry is answered `Duplicate` with the original event.
    pub fn signal_for_tenant_tagged(
        &self,
        tenant: TenantId,
        signal: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        let signal = self.config().schema.resolve(signal)?;
        let op = ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        };
        self.write_scoped(Scope::tenant(tenant), entity, &[op], tag)
    }

    /// Waits until the other side of `tenant`'s dual write holds event `id`.
    pub(super) fn await_dual_write(
        &self,
        tenant: TenantId,
        written_on: NodeId,
        id: EventId,
    ) -> Result<()> {
        let mut sim = self.lock();
        let Some(m) = sim
            .control
            .migration(tenant)
            .filter(|m| m.state == MigrationState::DualWrite)
            .cloned()
        else {
            return Ok(());
        };
        let source = sim.control.replica_on(tenant, m.source).map(|r| r.node);
        let other = match (source, m.target_node) {
            (Some(s), Some(t)) if written_on == s => t,
            (Some(s), Some(_)) => s,
            _ => return Ok(()),
        };
        let timeout = self.config().write_timeout;
        wait_for(&mut sim, timeout, |sim| {
            // A side that is down catches up by reconciliation when it restarts.
            sim.node(other).map_or(true, |n| holds(n.durable(), id))
        })
        .map_err(|_| {
            TidalError::Timeout(format!(
                "the dual write of tenant {tenant} did not reach node {} within {timeout:?}; \
                 it is applied on node {} and will be reconciled",
                other.0, written_on.0
            ))
        })
    }

    /// The decayed score of `tenant`'s `entity`, read from the replica that serves it.
    pub fn tenant_score(&self, tenant: TenantId, entity: EntityId, signal: &str) -> Result<f64> {
        self.tenant_score_in(Scope::tenant(tenant), entity, signal)
    }

    /// The decayed score of `tenant`'s `entity` on its replica in `region`.
    pub fn read_score_for_tenant(
        &self,
        region: RegionId,
        tenant: TenantId,
        entity: EntityId,
        signal: &str,
    ) -> Result<f64> {
        self.tenant_score_in(
            Scope::tenant(tenant).in_region(Some(region)),
            entity,
            signal,
        )
    }

    fn tenant_score_in(&self, scope: Scope, entity: EntityId, signal: &str) -> Result<f64> {
        let signal = self.config().schema.resolve(signal)?;
        self.read_scoped(scope, entity, |n, now| {
            n.ledger().decay_score(signal, entity, now)
        })
    }

    /// Events of `signal` that `tenant`'s replicas in `region` hold, over every entity:
    /// 0 where the tenant keeps no replica.
    pub fn total_signal_count_for_tenant(
        &self,
        region: RegionId,
        tenant: TenantId,
        signal: &str,
    ) -> Result<u64> {
        let signal = self.config().schema.resolve(signal)?;
        let sim = self.lock();
        if tenant != TenantId::DEFAULT {
            self.check_tenant(&sim, tenant)?;
        }
        let mut total = 0;
        for r in sim
            .control
            .replicas()
            .filter(|r| r.tenant == tenant && r.region == region)
        {
            total += sim.node(r.node)?.ledger().total_signal_count(signal)?;
        }
        Ok(total)
    }

    /// The rate limiter that `tenant`'s replica of `entity`'s shard in `region` admits
    /// with: each replica limits what it admits, as a separate machine would. `None` when
    /// the tenant's rate is unlimited.
    pub fn rate_limiter_for(
        &self,
        tenant: TenantId,
        region: RegionId,
        entity: EntityId,
    ) -> Result<Option<Arc<TenantRateLimiter>>> {
        let sim = self.lock();
        let scope = Scope::tenant(tenant).in_region(Some(region));
        let node = self.node_serving_in(&sim, scope, entity)?;
        Ok(sim
            .nodes
            .get(node.0 as usize)
            .and_then(|n| n.cfg.quotas.as_ref())
            .and_then(|q| q.rate_limiter().cloned()))
    }

    /// The ids of `tenant`'s live replicas, and the hosts they are on.
    pub fn tenant_replicas(&self, tenant: TenantId) -> Vec<(NodeId, ShardAssignment)> {
        self.lock()
            .control
            .replicas()
            .filter(|r| r.tenant == tenant)
            .map(|r| (r.node, r.host()))
            .collect()
    }
}

/// True when `vv` holds event `id`.
pub(super) fn holds(vv: &crate::event::VersionVector, id: EventId) -> bool {
    vv.get(id.origin) >= id.seq
}

/// Runs the simulation until `done` holds, for at most `timeout` of virtual time.
pub(super) fn wait_for(
    sim: &mut Sim,
    timeout: Duration,
    mut done: impl FnMut(&Sim) -> bool,
) -> Result<()> {
    let deadline = sim.now.saturating_add(timeout);
    loop {
        if done(sim) {
            return Ok(());
        }
        if sim.now >= deadline || !sim.step() {
            return Err(TidalError::Timeout(format!(
                "not done within {timeout:?} of virtual time"
            )));
        }
    }
}
