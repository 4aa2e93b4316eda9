//! Tenants: registration and placement, per-tenant reads, and the dual-write wait. A
//! registered tenant gets its own replica group per shard, one replica on each host of its
//! placement: its own nodes, logs, seq spaces and storage, beside the default tenant's.

use std::sync::Arc;

use super::routing::{Scope, check_tenant, default_replica_at, node_serving};
use super::{Cluster, ClusterDriver, ClusterView};
use crate::control::{Command, MigrationState, Replica};
use crate::error::{Result, TidalError};
use crate::event::{ClientTag, EventId, TenantId, VersionVector};
use crate::node::{ClientOp, NodeRole, PeerAddr, WriteAck};
use crate::schema::{EntityId, NodeId, RegionId, Timestamp};
use crate::tenancy::{ShardAssignment, TenantConfig, TenantQuotas, TenantRateLimiter};

/// True when `vv` covers event `id`.
pub(super) fn holds(vv: &VersionVector, id: EventId) -> bool {
    vv.get(id.origin) >= id.seq
}

/// A replica of a tenant about to be started.
pub(super) struct NewReplica {
    pub id: NodeId,
    pub host: ShardAssignment,
    pub role: NodeRole,
    /// The other replicas of its group.
    pub peers: Vec<PeerAddr>,
    /// It becomes its group's leader.
    pub lead: bool,
    /// The replica of its group that started with the hard caps' rights.
    pub rights_home: NodeId,
}

fn host_is_up(v: &dyn ClusterView, host: ShardAssignment) -> bool {
    default_replica_at(v, host.region_id, host.shard_id).is_ok_and(|n| v.node(n).is_ok())
}

impl<D: ClusterDriver> Cluster<D> {
    /// Registers a tenant and starts its replicas. Refused, with nothing placed, when a
    /// host of its placement is down at the call. (A replica that fails to start after
    /// the registration leaves the tenant registered without it: the registration is
    /// not undone, since the control plane has no command to unregister a tenant.)
    pub fn register_tenant(&self, config: TenantConfig) -> Result<()> {
        if config.tenant_id == TenantId::DEFAULT {
            return Err(TidalError::Conflict(
                "tenant t0 is the built-in default tenant; register tenants from t1".into(),
            ));
        }
        let tenant = config.tenant_id;
        let _membership = self.membership_change();
        // Place it on a copy of the router first: every host must be up before anything
        // is registered, so a refusal leaves no half-placed tenant behind.
        let placement = self.driver.view(|v| {
            let mut trial = v.control().router().clone();
            trial.register_tenant(config.clone())?;
            let placement = trial.placement(tenant)?.to_vec();
            if let Some(down) = placement.iter().find(|h| !host_is_up(v, **h)) {
                return Err(TidalError::Unavailable(format!(
                    "the host of shard {} in region {} is down; restart it before \
                     registering tenant {tenant}",
                    down.shard_id.0, down.region_id.0
                )));
            }
            Ok(placement)
        })?;
        let first = self.driver.next_node_ids(placement.len())?.0;
        self.driver
            .apply_command(Command::RegisterTenant(config.clone()))?;
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
            // The first replica of each shard in the placement is its home and leader, and
            // starts with all the rights of the tenant's hard caps.
            let home = placement
                .iter()
                .position(|h| h.shard_id == host.shard_id)
                .unwrap_or(i);
            let lead = home == i;
            let role = if lead {
                NodeRole::Leader
            } else {
                NodeRole::Follower
            };
            let replica = NewReplica {
                id: ids[i],
                host: *host,
                role,
                peers,
                lead,
                rights_home: ids[home],
            };
            self.start_replica(&config, replica)?;
        }
        Ok(())
    }

    /// Adds a replica of `config`'s tenant to the control plane, then starts it.
    pub(super) fn start_replica(&self, config: &TenantConfig, replica: NewReplica) -> Result<()> {
        let NewReplica {
            id,
            host,
            role,
            peers,
            lead,
            rights_home,
        } = replica;
        let mut cfg = self
            .layout()
            .replica_config(id, host.region_id, host.shard_id, role, peers);
        cfg.tenant = config.tenant_id;
        cfg.quotas = Some(Arc::new(TenantQuotas::new(config)?));
        cfg.rights_home = Some(rights_home);
        if !self.driver.view(|v| host_is_up(v, host)) {
            return Err(TidalError::Unavailable(format!(
                "the host of shard {} in region {} is down; restart it first",
                host.shard_id.0, host.region_id.0
            )));
        }
        self.driver.apply_command(Command::AddReplica {
            replica: Replica {
                node: id,
                region: host.region_id,
                shard: host.shard_id,
                tenant: config.tenant_id,
            },
            lead,
        })?;
        self.driver.start_node(cfg)
    }

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

    /// A tenant's write with an idempotency tag: a retry with the same tag is
    /// acknowledged as the original and counted once.
    pub fn signal_for_tenant_tagged(
        &self,
        tenant: TenantId,
        signal: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        let signal = self.layout().schema.resolve(signal)?;
        let op = ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        };
        self.write_scoped(Scope::tenant(tenant), entity, &[op], tag)
    }

    /// During a migration's dual write, a write acknowledged on one side waits until the
    /// other side holds it durably, so a switch to the target can lose nothing.
    pub(super) fn await_dual_write(
        &self,
        tenant: TenantId,
        written_on: NodeId,
        id: EventId,
    ) -> Result<()> {
        let other = self.driver.view(|v| {
            let m = v
                .control()
                .migration(tenant)
                .filter(|m| m.state == MigrationState::DualWrite)?;
            let source = v.control().replica_on(tenant, m.source).map(|r| r.node);
            match (source, m.target_node) {
                (Some(s), Some(t)) if written_on == s => Some(t),
                (Some(s), Some(_)) => Some(s),
                _ => None,
            }
        });
        let Some(other) = other else {
            return Ok(());
        };
        let timeout = self.layout().write_timeout;
        self.driver
            .wait_until(timeout, &mut |v| {
                // A side that is down catches up by reconciliation when it restarts.
                v.node(other).map_or(true, |n| holds(n.durable(), id))
            })
            .map_err(|_| {
                TidalError::Timeout(format!(
                    "the dual write of tenant {tenant} did not reach node {} within \
                     {}; it is applied on node {} and will be reconciled",
                    other.0,
                    crate::schema::format_duration(timeout),
                    written_on.0
                ))
            })
    }

    pub fn tenant_score(&self, tenant: TenantId, entity: EntityId, signal: &str) -> Result<f64> {
        self.tenant_score_in(Scope::tenant(tenant), entity, signal)
    }

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
        let signal = self.layout().schema.resolve(signal)?;
        self.read_scoped(scope, entity, |n, now| {
            n.ledger().decay_score(signal, entity, now)
        })
    }

    /// Events of `signal` that `tenant`'s replicas in `region` hold, over their shards.
    pub fn total_signal_count_for_tenant(
        &self,
        region: RegionId,
        tenant: TenantId,
        signal: &str,
    ) -> Result<u64> {
        let signal = self.layout().schema.resolve(signal)?;
        self.driver.view(|v| {
            if tenant != TenantId::DEFAULT {
                check_tenant(v, tenant)?;
            }
            let mut total = 0;
            for r in v
                .control()
                .replicas()
                .filter(|r| r.tenant == tenant && r.region == region)
            {
                total += v.node(r.node)?.ledger().total_signal_count(signal)?;
            }
            Ok(total)
        })
    }

    /// The rate limiter that `tenant`'s replica in `region` serving `entity` admits with.
    pub fn rate_limiter_for(
        &self,
        tenant: TenantId,
        region: RegionId,
        entity: EntityId,
    ) -> Result<Option<Arc<TenantRateLimiter>>> {
        self.driver.view(|v| {
            let scope = Scope::tenant(tenant).in_region(Some(region));
            let node = node_serving(self.layout(), v, scope, entity)?;
            Ok(v.node(node)?
                .config()
                .quotas
                .as_ref()
                .and_then(|q| q.rate_limiter().cloned()))
        })
    }

    pub fn tenant_replicas(&self, tenant: TenantId) -> Vec<(NodeId, ShardAssignment)> {
        self.driver.view(|v| {
            v.control()
                .replicas()
                .filter(|r| r.tenant == tenant)
                .map(|r| (r.node, r.host()))
                .collect()
        })
    }
}
