//! Client calls on the simulated cluster, scoped to a tenant and optionally to a region:
//! the routing behind Python's `tidaldb.Cluster` and `tidaldb.Tenant`.
//!
//! Bulk calls are grouped by the replica that serves each entity, so a million writes are
//! a handful of client requests (one per shard), not a million.

use std::collections::BTreeMap;

use super::SimulatedCluster;
use super::engine::Sim;
use crate::error::{Result, TidalError};
use crate::event::{ClientTag, EventId, TenantId};
use crate::node::{ClientOp, Node, WriteAck, WriteConcern};
use crate::query::{self, Results, Retrieve};
use crate::schema::{EntityId, NodeId, RegionId, ShardId, Timestamp};
use crate::tenancy::ShardAssignment;

/// Whose data a client call touches, and where it is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub tenant: TenantId,
    /// `None`: the replica that serves the entity now. For the default tenant that is its
    /// shard's leader (`Unavailable` while none is live); for a registered tenant, its
    /// group's leader, or the best other replica while the leader is down or drained.
    /// `Some`: that region's replica, which accepts writes too (active-active) and
    /// answers reads from what it holds.
    pub region: Option<RegionId>,
}

impl Scope {
    /// The default tenant, served by each shard's leader.
    pub const LEADER: Scope = Scope {
        tenant: TenantId::DEFAULT,
        region: None,
    };

    pub fn tenant(tenant: TenantId) -> Self {
        Scope {
            tenant,
            region: None,
        }
    }

    pub fn in_region(self, region: Option<RegionId>) -> Self {
        Scope { region, ..self }
    }
}

impl SimulatedCluster {
    /// The shard that holds `entity` for `scope`'s tenant.
    fn shard_in_scope(&self, sim: &Sim, scope: Scope, entity: EntityId) -> Result<ShardId> {
        if scope.tenant == TenantId::DEFAULT {
            Ok(self.shard_of(entity))
        } else {
            Ok(sim.control.router().route(scope.tenant, entity)?.shard_id)
        }
    }

    /// The shards `scope`'s tenant keeps data on.
    fn shards_in_scope(&self, sim: &Sim, scope: Scope) -> Result<Vec<ShardId>> {
        if scope.tenant == TenantId::DEFAULT {
            return Ok((0..self.config().shards_per_region).map(ShardId).collect());
        }
        let mut shards: Vec<ShardId> = sim
            .control
            .router()
            .placement(scope.tenant)?
            .iter()
            .map(|a| a.shard_id)
            .collect();
        shards.sort_unstable();
        shards.dedup();
        Ok(shards)
    }

    /// The replica that serves `shard` for `scope`. It may be down: using it then fails
    /// with `Unavailable`, which is what the caller should see.
    pub(super) fn replica_for_shard(
        &self,
        sim: &Sim,
        scope: Scope,
        shard: ShardId,
    ) -> Result<NodeId> {
        match (scope.tenant == TenantId::DEFAULT, scope.region) {
            (true, Some(region)) => {
                self.check_region(region)?;
                sim.node_at(region, shard)
            }
            (true, None) => sim
                .control
                .leader_of(shard)
                .filter(|n| sim.node(*n).is_ok())
                .ok_or_else(|| {
                    TidalError::Unavailable(format!(
                        "shard {} has no live leader; run the simulation until the control \
                         plane promotes one, or write to a region",
                        shard.0
                    ))
                }),
            (false, Some(region)) => {
                self.check_region(region)?;
                self.check_tenant(sim, scope.tenant)?;
                let host = ShardAssignment {
                    shard_id: shard,
                    region_id: region,
                };
                sim.control
                    .replica_on(scope.tenant, host)
                    .map(|r| r.node)
                    .ok_or_else(|| {
                        TidalError::NotFound(format!(
                            "tenant {} keeps no replica of shard {} in region {}",
                            scope.tenant, shard.0, region.0
                        ))
                    })
            }
            (false, None) => self.serving_replica(sim, scope.tenant, shard),
        }
    }

    /// The replica that serves `entity` for `scope`.
    pub fn node_serving(&self, scope: Scope, entity: EntityId) -> Result<NodeId> {
        let sim = self.lock();
        self.node_serving_in(&sim, scope, entity)
    }

    pub(super) fn node_serving_in(
        &self,
        sim: &Sim,
        scope: Scope,
        entity: EntityId,
    ) -> Result<NodeId> {
        let shard = self.shard_in_scope(sim, scope, entity)?;
        self.replica_for_shard(sim, scope, shard)
    }

    /// One client write of `ops` (which concern `entity`), acknowledged with the
    /// configured write concern. While the tenant is in a migration's dual write, it is
    /// acknowledged once the other side holds it too (when that side is up).
    pub fn write_scoped(
        &self,
        scope: Scope,
        entity: EntityId,
        ops: &[ClientOp],
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        let node = self.node_serving(scope, entity)?;
        let ack = self.submit(node, ops, self.concern_for(node), tag)?;
        if scope.tenant != TenantId::DEFAULT {
            self.await_dual_write(scope.tenant, node, last_event(ack))?;
        }
        Ok(ack)
    }

    /// Writes `weights[i]` of `signal` to `entities[i]`, stamped `ts[i]` (virtual now when
    /// `ts` is `None`). Returns how many events were written.
    ///
    /// Everything the cluster can check up front is checked before anything is written:
    /// lengths, the signal, every op as admission checks it (weights, timestamps), and
    /// that every serving replica is up. Each shard's part is then one client request,
    /// written whole or not at all. With several shards, a quota or a timeout that stops a
    /// later part leaves the earlier parts written: the error is then
    /// [`TidalError::PartlyWritten`], which says how many events landed.
    pub fn write_batch(
        &self,
        scope: Scope,
        signal: &str,
        entities: &[EntityId],
        weights: &[f64],
        ts: Option<&[Timestamp]>,
    ) -> Result<usize> {
        if weights.len() != entities.len() || ts.is_some_and(|t| t.len() != entities.len()) {
            return Err(TidalError::InvalidArgument {
                name: "weights",
                reason: format!(
                    "{} entities, {} weights and {} timestamps; give one of each per entity",
                    entities.len(),
                    weights.len(),
                    ts.map_or(entities.len(), <[Timestamp]>::len)
                ),
            });
        }
        let signal = self.config().schema.resolve(signal)?;
        if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
            return Err(TidalError::InvalidArgument {
                name: "weights",
                reason: format!("element {i} is {}; weights must be finite", weights[i]),
            });
        }
        let parts = {
            let sim = self.lock();
            let now = sim.now;
            let mut node_of_shard: BTreeMap<ShardId, NodeId> = BTreeMap::new();
            let mut parts: BTreeMap<NodeId, Vec<ClientOp>> = BTreeMap::new();
            for (i, &entity) in entities.iter().enumerate() {
                let shard = self.shard_in_scope(&sim, scope, entity)?;
                let node = match node_of_shard.get(&shard) {
                    Some(n) => *n,
                    None => {
                        let n = self.replica_for_shard(&sim, scope, shard)?;
                        sim.node(n)?;
                        node_of_shard.insert(shard, n);
                        n
                    }
                };
                let op = ClientOp::Signal {
                    signal,
                    entity,
                    weight: weights[i],
                    ts: ts.map(|t| t[i]),
                };
                // Every op passes admission's own checks (weight range, -0.0, future
                // timestamps) before any shard's part is written.
                sim.node(node)?.check_op(now, op)?;
                parts.entry(node).or_default().push(op);
            }
            parts
        };
        let mut written = 0;
        let partly = |written: usize, cause: TidalError| {
            if written == 0 {
                cause
            } else {
                TidalError::PartlyWritten {
                    written,
                    total: entities.len(),
                    cause: Box::new(cause),
                }
            }
        };
        for (node, ops) in parts {
            let ack = self
                .submit(node, &ops, self.concern_for(node), None)
                .map_err(|e| partly(written, e))?;
            // From here on this part is applied, whatever the dual-write wait says.
            written += ops.len();
            if scope.tenant != TenantId::DEFAULT {
                self.await_dual_write(scope.tenant, node, last_event(ack))
                    .map_err(|e| partly(written, e))?;
            }
        }
        Ok(written)
    }

    /// The write concern of a client write served by `node`: the configured one, or the
    /// configured share of `node`'s replica group.
    pub fn concern_for(&self, node: NodeId) -> WriteConcern {
        match self.config().group_concern {
            None => self.config().write_concern,
            Some(share) => {
                let peers = self.lock().node(node).map_or(0, |n| n.peers().len());
                share.for_peers(peers)
            }
        }
    }

    /// Runs `f` on the replica that serves `entity` for `scope`, with the virtual time now.
    pub fn read_scoped<T>(
        &self,
        scope: Scope,
        entity: EntityId,
        f: impl FnOnce(&Node, Timestamp) -> Result<T>,
    ) -> Result<T> {
        let sim = self.lock();
        let node = self.node_serving_in(&sim, scope, entity)?;
        f(sim.node(node)?, sim.now)
    }

    /// Decayed scores of `entities` at `at` (virtual now when `None`), each read from the
    /// replica that serves it for `scope`.
    pub fn scores_scoped(
        &self,
        scope: Scope,
        signal: &str,
        entities: &[EntityId],
        at: Option<Timestamp>,
        out: &mut [f64],
    ) -> Result<()> {
        if out.len() != entities.len() {
            return Err(TidalError::InvalidArgument {
                name: "out",
                reason: format!(
                    "room for {} scores, but {} entities",
                    out.len(),
                    entities.len()
                ),
            });
        }
        let signal = self.config().schema.resolve(signal)?;
        let sim = self.lock();
        let at = at.unwrap_or(sim.now);
        let mut by_node: BTreeMap<NodeId, (Vec<usize>, Vec<EntityId>)> = BTreeMap::new();
        for (i, &entity) in entities.iter().enumerate() {
            let node = self.node_serving_in(&sim, scope, entity)?;
            let (index, ids) = by_node.entry(node).or_default();
            index.push(i);
            ids.push(entity);
        }
        for (node, (index, ids)) in by_node {
            sim.node(node)?
                .ledger()
                .decay_scores_with(signal, &ids, at, |k, score| out[index[k]] = score)?;
        }
        Ok(())
    }

    /// A query for `scope`: each of the tenant's shards is answered by the replica that
    /// serves it. A replica that is down, or that cannot hear some of its peers, makes the
    /// answer degraded; the stats name what was and was not reached.
    pub fn retrieve_scoped(&self, scope: Scope, q: &Retrieve) -> Result<Results> {
        let sim = self.lock();
        let mut merged = Results::default();
        for shard in self.shards_in_scope(&sim, scope)? {
            let node = match self
                .replica_for_shard(&sim, scope, shard)
                .and_then(|id| sim.node(id))
            {
                Ok(node) => node,
                Err(e) if e.kind() == crate::ErrorKind::Unavailable => {
                    merged.stats.shards_unreachable.push(shard);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut part = q.clone();
            let mut keep = Vec::with_capacity(part.candidates.len());
            for c in &part.candidates {
                if self.shard_in_scope(&sim, scope, *c)? == shard {
                    keep.push(*c);
                }
            }
            part.candidates = keep;
            let r = query::execute(node.ledger(), &part, sim.now, shard)?;
            merged.items.extend(r.items);
            let st = &mut merged.stats;
            st.candidates_considered += r.stats.candidates_considered;
            st.candidates_after_filter += r.stats.candidates_after_filter;
            st.hidden_filtered += r.stats.hidden_filtered;
            st.shards_reached.push(shard);
            st.replicas_unreachable
                .extend(node.unreachable_replicas(sim.now));
        }
        query::top_k(&mut merged.items, q.limit());
        let st = &mut merged.stats;
        st.returned = merged.items.len();
        st.degraded = !st.shards_unreachable.is_empty() || !st.replicas_unreachable.is_empty();
        Ok(merged)
    }

    /// The version vector of `scope`'s replica of `shard` (in `scope.region`, or the one
    /// that serves it).
    pub fn version_vector_scoped(
        &self,
        scope: Scope,
        shard: ShardId,
    ) -> Result<crate::event::VersionVector> {
        let sim = self.lock();
        let node = self.replica_for_shard(&sim, scope, shard)?;
        Ok(sim.node(node)?.ledger().version_vector().clone())
    }

    /// Events each region's replicas of `tenant` lack, as the control plane last measured
    /// it, summed over the region's shards; every region of the cluster is listed.
    pub fn lag_by_region(&self, tenant: TenantId) -> Result<Vec<(RegionId, u64)>> {
        let sim = self.lock();
        if tenant != TenantId::DEFAULT {
            self.check_tenant(&sim, tenant)?;
        }
        let mut lag: BTreeMap<RegionId, u64> = self.regions().iter().map(|r| (*r, 0)).collect();
        for r in sim.control.replicas().filter(|r| r.tenant == tenant) {
            *lag.entry(r.region).or_default() += sim.control.lag_for(r.node).events;
        }
        Ok(lag.into_iter().collect())
    }
}

/// The last event a write carries: a dual write waits until the other side holds it.
fn last_event(ack: WriteAck) -> EventId {
    match ack {
        WriteAck::Applied { first, count } => EventId {
            seq: first.seq + (count.max(1) as u64 - 1),
            ..first
        },
        WriteAck::Duplicate { original } => original,
    }
}
