//! Client calls scoped to a tenant and optionally a region: the routing behind Python's
//! `tidaldb.Cluster` and `tidaldb.Tenant`, the same under both drivers.
//!
//! Bulk calls are grouped by the replica that serves each entity, so a million writes are
//! a handful of client requests (one per shard), not a million.

use std::collections::BTreeMap;

use super::routing::{Scope, node_serving, replica_for_shard, shard_in_scope, shards_in_scope};
use super::{Cluster, ClusterDriver};
use crate::error::{Result, TidalError};
use crate::event::{ClientTag, EventId, TenantId, VersionVector};
use crate::ledger::ItemErrors;
use crate::node::{ClientOp, Node, WriteAck, WriteConcern};
use crate::query::{self, Results, Retrieve};
use crate::schema::{EntityId, NodeId, RegionId, ShardId, Timestamp};

impl<D: ClusterDriver> Cluster<D> {
    /// The replica that serves `entity` in `scope`.
    pub fn node_serving(&self, scope: Scope, entity: EntityId) -> Result<NodeId> {
        self.driver
            .view(|v| node_serving(self.layout(), v, scope, entity))
    }

    /// One client request for `entity` in `scope`, with the cluster's write concern. A
    /// tenant's write during a migration's dual write waits for the other side too.
    pub fn write_scoped(
        &self,
        scope: Scope,
        entity: EntityId,
        ops: &[ClientOp],
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        let node = self.node_serving(scope, entity)?;
        self.check_takes_writes(node)?;
        let ack = self.driver.submit(node, ops, self.concern_for(node), tag)?;
        if scope.tenant != TenantId::DEFAULT {
            self.await_dual_write(scope.tenant, node, last_event(ack))?;
        }
        Ok(ack)
    }

    /// Writes to the leader of `entity`'s shard with the configured write concern, stamped
    /// with the driver's time now.
    pub fn write_signal(&self, signal: &str, entity: EntityId, weight: f64) -> Result<WriteAck> {
        let signal = self.layout().schema.resolve(signal)?;
        let op = ClientOp::Signal {
            signal,
            entity,
            weight,
            ts: None,
        };
        self.write_scoped(Scope::LEADER, entity, &[op], None)
    }

    /// Writes one signal per entity, grouped into one request per serving replica. Every
    /// element is checked first, so bad input writes nothing; a part that fails after
    /// others landed is reported as `PartlyWritten`.
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
        let signal = self.layout().schema.resolve(signal)?;
        if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
            return Err(TidalError::InvalidArgument {
                name: "weights",
                reason: format!("element {i} is {}; weights must be finite", weights[i]),
            });
        }
        let layout = self.layout();
        let parts = self.driver.view(|v| {
            let now = v.now();
            let mut node_of_shard: BTreeMap<ShardId, NodeId> = BTreeMap::new();
            let mut parts: BTreeMap<NodeId, Vec<ClientOp>> = BTreeMap::new();
            for (i, &entity) in entities.iter().enumerate() {
                let shard = shard_in_scope(layout, v, scope, entity)?;
                let node = match node_of_shard.get(&shard) {
                    Some(n) => *n,
                    None => {
                        let n = replica_for_shard(layout, v, scope, shard)?;
                        v.node(n)?;
                        refuse_if_retiring(v, n)?;
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
                v.node(node)?.check_op(now, op)?;
                parts.entry(node).or_default().push(op);
            }
            Ok::<_, TidalError>(parts)
        })?;
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
                .driver
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

    /// `Unavailable` for a replica a finalized migration is about to collect: a write
    /// it took would be deleted with it.
    fn check_takes_writes(&self, node: NodeId) -> Result<()> {
        self.driver.view(|v| refuse_if_retiring(v, node))
    }

    /// The write concern for a write that `node` takes: the cluster's, or its group
    /// share counted in `node`'s group.
    pub fn concern_for(&self, node: NodeId) -> WriteConcern {
        let layout = self.layout();
        match layout.group_concern {
            None => layout.write_concern,
            Some(share) => {
                let peers = self
                    .driver
                    .view(|v| v.node(node).map_or(0, |n| n.hard_state().peers.len()));
                share.for_peers(peers)
            }
        }
    }

    /// Runs `f` on the replica that serves `entity` in `scope`, with the driver's time.
    pub fn read_scoped<T>(
        &self,
        scope: Scope,
        entity: EntityId,
        f: impl FnOnce(&Node, Timestamp) -> Result<T>,
    ) -> Result<T> {
        self.driver.view(|v| {
            let node = node_serving(self.layout(), v, scope, entity)?;
            f(v.node(node)?, v.now())
        })
    }

    /// The decayed score of `entity` now, read in `region`.
    pub fn read_decay_score(
        &self,
        region: RegionId,
        entity: EntityId,
        signal: &str,
    ) -> Result<f64> {
        let signal = self.layout().schema.resolve(signal)?;
        let scope = Scope::LEADER.in_region(Some(region));
        self.read_scoped(scope, entity, |n, now| {
            n.ledger().decay_score(signal, entity, now)
        })
    }

    /// Scores of `entities` at `at` (default: now), each read where it is served, into
    /// `out`.
    pub fn scores_scoped(
        &self,
        scope: Scope,
        signal: &str,
        entities: &[EntityId],
        at: Option<Timestamp>,
        out: &mut [f64],
    ) -> Result<()> {
        self.scores_scoped_on_error(scope, signal, entities, at, ItemErrors::Raise, out)
    }

    /// [`Self::scores_scoped`], with NaN for the entities whose score cannot be read when
    /// `on_error` is [`ItemErrors::Nan`].
    pub fn scores_scoped_on_error(
        &self,
        scope: Scope,
        signal: &str,
        entities: &[EntityId],
        at: Option<Timestamp>,
        on_error: ItemErrors,
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
        let signal = self.layout().schema.resolve(signal)?;
        let layout = self.layout();
        self.driver.view(|v| {
            let at = at.unwrap_or(v.now());
            let mut by_node: BTreeMap<NodeId, (Vec<usize>, Vec<EntityId>)> = BTreeMap::new();
            for (i, &entity) in entities.iter().enumerate() {
                let node = node_serving(layout, v, scope, entity)?;
                let (index, ids) = by_node.entry(node).or_default();
                index.push(i);
                ids.push(entity);
            }
            for (node, (index, ids)) in by_node {
                v.node(node)?.ledger().decay_scores_on_error(
                    signal,
                    &ids,
                    at,
                    on_error,
                    |k, score| out[index[k]] = score,
                )?;
            }
            Ok(())
        })
    }

    /// A query of the default tenant answered in `region`.
    pub fn retrieve(&self, region: RegionId, q: &Retrieve) -> Result<Results> {
        self.retrieve_scoped(Scope::LEADER.in_region(Some(region)), q)
    }

    /// A query over every shard of `scope`: each shard's serving replica scores its own
    /// candidates, and the parts merge into one top-k. Shards with no replica up, and
    /// replicas cut off from their peers, make the answer degraded, and are named.
    pub fn retrieve_scoped(&self, scope: Scope, q: &Retrieve) -> Result<Results> {
        let layout = self.layout();
        self.driver.view(|v| {
            let now = v.now();
            let mut merged = Results::default();
            for shard in shards_in_scope(layout, v, scope)? {
                let node =
                    match replica_for_shard(layout, v, scope, shard).and_then(|id| v.node(id)) {
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
                    if shard_in_scope(layout, v, scope, *c)? == shard {
                        keep.push(*c);
                    }
                }
                part.candidates = keep;
                let r = query::execute(node.ledger(), &part, now, shard)?;
                merged.items.extend(r.items);
                let st = &mut merged.stats;
                st.candidates_considered += r.stats.candidates_considered;
                st.candidates_after_filter += r.stats.candidates_after_filter;
                st.hidden_filtered += r.stats.hidden_filtered;
                st.shards_reached.push(shard);
                st.replicas_unreachable
                    .extend(node.unreachable_replicas(now));
            }
            query::top_k(&mut merged.items, q.limit());
            let st = &mut merged.stats;
            st.returned = merged.items.len();
            st.degraded = !st.shards_unreachable.is_empty() || !st.replicas_unreachable.is_empty();
            Ok(merged)
        })
    }

    /// The version vector of the replica that answers for `shard` in `scope`.
    pub fn version_vector_scoped(&self, scope: Scope, shard: ShardId) -> Result<VersionVector> {
        self.driver.view(|v| {
            let node = replica_for_shard(self.layout(), v, scope, shard)?;
            Ok(v.node(node)?.ledger().version_vector().clone())
        })
    }

    /// The state digest ([`crate::ledger::Ledger::state_digest`]) of the replica that
    /// answers for `shard` in `scope`.
    pub fn state_digest_scoped(&self, scope: Scope, shard: ShardId) -> Result<u64> {
        self.driver.view(|v| {
            let node = replica_for_shard(self.layout(), v, scope, shard)?;
            Ok(v.node(node)?.ledger().state_digest())
        })
    }

    /// Events each region's replicas of `tenant` lack, as the control plane last heard.
    pub fn lag_by_region(&self, tenant: TenantId) -> Result<Vec<(RegionId, u64)>> {
        self.driver.view(|v| {
            if tenant != TenantId::DEFAULT {
                super::routing::check_tenant(v, tenant)?;
            }
            let mut lag: BTreeMap<RegionId, u64> = self.regions().iter().map(|r| (*r, 0)).collect();
            for r in v.control().replicas().filter(|r| r.tenant == tenant) {
                *lag.entry(r.region).or_default() += v.control().lag_for(r.node).events;
            }
            Ok(lag.into_iter().collect())
        })
    }
}

fn refuse_if_retiring(v: &dyn super::ClusterView, node: NodeId) -> Result<()> {
    if !v.control().is_retiring(node) {
        return Ok(());
    }
    let region = v.control().replica(node).map_or(0, |r| r.region.0);
    Err(TidalError::Unavailable(format!(
        "the replica in region {region} is being collected after its tenant's migration \
         was finalized; write without a region, or to the migration's target"
    )))
}

/// The last event a write's acknowledgement covers.
pub(super) fn last_event(ack: WriteAck) -> EventId {
    match ack {
        WriteAck::Applied { first, count } => EventId {
            seq: first.seq + (count.max(1) as u64 - 1),
            ..first
        },
        WriteAck::Duplicate { original } => original,
    }
}
