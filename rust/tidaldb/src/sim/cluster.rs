//! `SimulatedCluster`: N regions × M shards of real [`Node`]s on the simulator, with the
//! API the acceptance scenarios use. Every shard is replicated in every region.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::client::Scope;
use super::engine::{Sim, SimDurability, SimStats};
use super::faults::NetworkPartition;
use super::network::{LinkConfig, Network, PartitionId};
use super::node_ref::SimNodeRef;
use crate::control::{ControlPlane, Replica};
use crate::error::{Result, TidalError};
use crate::event::{ClientTag, VersionVector};
use crate::node::{
    ClientOp, Input, Node, NodeConfig, NodeRole, PeerAddr, RoutingStrategy, ShardRouter, WriteAck,
    WriteConcern,
};
use crate::query::{Results, Retrieve};
use crate::schema::{EntityId, NodeId, RegionId, Schema, ShardId, Timestamp};

/// Protocol timings, all in virtual time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    /// The control plane promotes a new leader after this much leader silence.
    pub election_timeout: Duration,
    pub peer_timeout: Duration,
    pub repair_after: Duration,
    /// How often nodes and the control plane are ticked.
    pub tick: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            peer_timeout: Duration::from_millis(250),
            repair_after: Duration::from_millis(200),
            tick: Duration::from_millis(10),
        }
    }
}

/// A write concern counted in the replica group that serves each write, so that it
/// means the same for a tenant kept in one region as for one kept in every region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupConcern {
    /// A majority of the group's replicas, the writer included: ⌊n/2⌋ others.
    Majority,
    /// Every other replica of the group.
    All,
}

impl GroupConcern {
    /// The concern for a group in which the writer has `peers` other replicas.
    pub fn for_peers(self, peers: usize) -> WriteConcern {
        let others = match self {
            GroupConcern::Majority => peers.div_ceil(2),
            GroupConcern::All => peers,
        };
        match u8::try_from(others) {
            Ok(0) => WriteConcern::Local,
            Ok(k) => WriteConcern::Replicated(k),
            Err(_) => WriteConcern::Replicated(u8::MAX),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub regions: Vec<RegionId>,
    pub shards_per_region: u16,
    /// Every shard's first leader is its replica in `leader.0`; `leader.1` names the shard
    /// that [`SimulatedCluster::leader`] reports.
    pub leader: (RegionId, ShardId),
    pub schema: Schema,
    pub seed: u64,
    pub links: LinkConfig,
    pub durability: SimDurability,
    /// The concern of every client write, unless `group_concern` is set.
    pub write_concern: WriteConcern,
    /// When set, each write waits for this share of the group that serves it instead.
    pub group_concern: Option<GroupConcern>,
    pub timing: Timing,
    /// Bound on each node's retained log of relayed events.
    pub max_retained: usize,
    /// Bound on each node's retained log of its own events.
    pub max_retained_own: usize,
    /// Virtual time at the start of the run.
    pub start: Timestamp,
    /// How long a replicated write waits for its acknowledgements (virtual time).
    pub write_timeout: Duration,
}

/// 2026-01-01T00:00:00Z: a fixed start, so that runs do not depend on the wall clock.
pub const DEFAULT_START_NS: i64 = 1_767_225_600_000_000_000;

impl ClusterConfig {
    /// Three regions, one shard each, led from region 0, seed 0, default links.
    pub fn new(schema: Schema) -> Self {
        ClusterConfig {
            regions: vec![RegionId(0), RegionId(1), RegionId(2)],
            shards_per_region: 1,
            leader: (RegionId(0), ShardId(0)),
            schema,
            seed: 0,
            links: LinkConfig::default(),
            durability: SimDurability::Immediate,
            write_concern: WriteConcern::Local,
            group_concern: None,
            timing: Timing::default(),
            max_retained: crate::node::DEFAULT_MAX_RETAINED,
            max_retained_own: crate::node::DEFAULT_MAX_RETAINED_OWN,
            start: Timestamp::from_nanos(DEFAULT_START_NS).unwrap_or(Timestamp::EPOCH),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// A node's configuration from the cluster's timings and log bounds.
pub(super) fn replica_config(
    config: &ClusterConfig,
    id: NodeId,
    region: RegionId,
    shard: ShardId,
    role: NodeRole,
    peers: Vec<PeerAddr>,
) -> NodeConfig {
    NodeConfig {
        id,
        region,
        shard,
        role,
        peers,
        heartbeat_interval: config.timing.heartbeat_interval,
        peer_timeout: config.timing.peer_timeout,
        repair_after: config.timing.repair_after,
        max_retained: config.max_retained,
        max_retained_own: config.max_retained_own,
        ..NodeConfig::default()
    }
}

/// A simulated cluster. Clones share it; every method takes `&self`.
#[derive(Clone, Debug)]
pub struct SimulatedCluster {
    pub(super) sim: Arc<Mutex<Sim>>,
    router: Arc<ShardRouter>,
    config: Arc<ClusterConfig>,
}

impl SimulatedCluster {
    pub fn build(config: ClusterConfig) -> Result<SimulatedCluster> {
        let regions = &config.regions;
        let mut sorted = regions.clone();
        sorted.sort();
        sorted.dedup();
        if regions.is_empty() || sorted.len() != regions.len() {
            return Err(TidalError::InvalidArgument {
                name: "regions",
                reason: "give at least one region, each once".into(),
            });
        }
        if !regions.contains(&config.leader.0) || config.leader.1.0 >= config.shards_per_region {
            return Err(TidalError::InvalidArgument {
                name: "leader",
                reason: format!(
                    "({}, {}) is not a replica of this cluster",
                    config.leader.0.0, config.leader.1.0
                ),
            });
        }
        let shards = config.shards_per_region;
        if regions.len() * usize::from(shards) > super::engine::MAX_NODES {
            return Err(TidalError::InvalidArgument {
                name: "shards_per_region",
                reason: format!(
                    "{} regions x {shards} shards is more replicas than the simulator's \
                     16-bit node ids can name ({})",
                    regions.len(),
                    super::engine::MAX_NODES
                ),
            });
        }
        let router = ShardRouter::new(if shards <= 1 {
            RoutingStrategy::Single
        } else {
            RoutingStrategy::Hash { num_shards: shards }
        })?;
        let id_of = |r: usize, s: u16| NodeId((r * usize::from(shards) + usize::from(s)) as u16);
        let mut configs = Vec::new();
        let mut replicas = Vec::new();
        let mut leaders = Vec::new();
        for (r, &region) in regions.iter().enumerate() {
            for s in 0..shards {
                let id = id_of(r, s);
                let leads = region == config.leader.0;
                if leads {
                    leaders.push((ShardId(s), id));
                }
                replicas.push(Replica {
                    node: id,
                    region,
                    shard: ShardId(s),
                    tenant: crate::event::TenantId::DEFAULT,
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
                configs.push(replica_config(&config, id, region, ShardId(s), role, peers));
            }
        }
        let control = ControlPlane::new(replicas, &leaders, config.timing.election_timeout);
        let sim = Sim::new(
            config.start,
            config.seed,
            Network::new(config.links),
            configs,
            control,
            Arc::new(config.schema.clone()),
            config.durability,
            config.timing.tick,
        );
        Ok(SimulatedCluster {
            sim: Arc::new(Mutex::new(sim)),
            router: Arc::new(router),
            config: Arc::new(config),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Sim> {
        // The simulator never panics while holding its lock in normal operation; if a test
        // panicked mid-step, its state is still the best evidence there is.
        self.sim
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn regions(&self) -> &[RegionId] {
        &self.config.regions
    }

    pub fn shard_of(&self, entity: EntityId) -> ShardId {
        self.router.route(entity)
    }

    /// The virtual time now.
    pub fn now(&self) -> Timestamp {
        self.lock().now
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// Runs `f` on the control plane as it is now, with the virtual time, without copying
    /// it: a question about one tenant should not clone every tenant's state and the
    /// whole command log.
    pub fn with_control<T>(&self, f: impl FnOnce(&ControlPlane, Timestamp) -> T) -> T {
        let sim = self.lock();
        f(&sim.control, sim.now)
    }

    /// A copy of the control plane as it is now.
    pub fn control_plane(&self) -> ControlPlane {
        self.lock().control.clone()
    }

    pub(super) fn check_region(&self, region: RegionId) -> Result<()> {
        if self.config.regions.contains(&region) {
            Ok(())
        } else {
            Err(TidalError::NotFound(format!(
                "region {} is not in this cluster (regions: {:?})",
                region.0,
                self.config.regions.iter().map(|r| r.0).collect::<Vec<_>>()
            )))
        }
    }

    /// The replica of `shard` in `region`.
    pub fn node_id(&self, region: RegionId, shard: ShardId) -> Result<NodeId> {
        self.check_region(region)?;
        self.lock().node_at(region, shard)
    }

    /// The replica in `region` of the shard that holds `entity`.
    pub fn node_for(&self, region: RegionId, entity: EntityId) -> Result<NodeId> {
        self.node_id(region, self.shard_of(entity))
    }

    /// The current leader of `shard`, as the control plane sees it.
    pub fn leader_of(&self, shard: ShardId) -> Result<NodeId> {
        let sim = self.lock();
        sim.control
            .leader_of(shard)
            .filter(|n| sim.node(*n).is_ok())
            .ok_or_else(|| {
                TidalError::Unavailable(format!(
                    "shard {} has no live leader; wait for the control plane to promote one",
                    shard.0
                ))
            })
    }

    /// A handle on the leader of the configured leader shard.
    pub fn leader(&self) -> Result<SimNodeRef> {
        Ok(self.handle(self.leader_of(self.config.leader.1)?))
    }

    /// True while every shard has a leader that is up and heard within the election timeout.
    pub fn has_leader(&self) -> bool {
        let sim = self.lock();
        (0..self.config.shards_per_region).all(|s| {
            sim.control.has_live_leader(ShardId(s), sim.now)
                && sim
                    .control
                    .leader_of(ShardId(s))
                    .is_some_and(|n| sim.node(n).is_ok())
        })
    }

    /// A handle on the replica in `region` of the configured leader shard.
    pub fn node(&self, region: RegionId) -> Result<SimNodeRef> {
        Ok(self.handle(self.node_id(region, self.config.leader.1)?))
    }

    /// A replica in `region` that is not its shard's leader, if any.
    pub fn follower_in(&self, region: RegionId) -> Option<SimNodeRef> {
        let id = self.node_id(region, self.config.leader.1).ok()?;
        let sim = self.lock();
        let leads = sim.control.leader_of(self.config.leader.1) == Some(id);
        drop(sim);
        (!leads).then(|| self.handle(id))
    }

    pub fn handle(&self, id: NodeId) -> SimNodeRef {
        SimNodeRef::new(self.clone(), id)
    }

    /// Writes to the leader of `entity`'s shard with the configured write concern, stamped
    /// with the virtual time now.
    pub fn write_signal(&self, signal: &str, entity: EntityId, weight: f64) -> Result<WriteAck> {
        let leader = self.leader_of(self.shard_of(entity))?;
        self.handle(leader).write_signal(
            signal,
            entity,
            weight,
            None,
            self.concern_for(leader),
            None,
        )
    }

    /// Runs one client write on `node`, waiting for replicas as `concern` asks.
    pub fn submit(
        &self,
        node: NodeId,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        self.lock()
            .submit(node, ops, concern, tag, self.config.write_timeout)
    }

    pub(super) fn with_node<T>(
        &self,
        id: NodeId,
        f: impl FnOnce(&Node, Timestamp) -> Result<T>,
    ) -> Result<T> {
        let sim = self.lock();
        f(sim.node(id)?, sim.now)
    }

    /// The decayed score of `entity` now, read in `region`.
    pub fn read_decay_score(
        &self,
        region: RegionId,
        entity: EntityId,
        signal: &str,
    ) -> Result<f64> {
        let id = self.node_for(region, entity)?;
        self.handle(id).read_decay_score(entity, signal, None)
    }

    /// Events applied by the replicas in `region`, summed over its shards.
    pub fn applied_seqno(&self, region: RegionId) -> Result<u64> {
        self.check_region(region)?;
        let sim = self.lock();
        let mut total = 0;
        for s in 0..self.config.shards_per_region {
            let id = sim.node_at(region, ShardId(s))?;
            total += sim.node(id)?.ledger().version_vector().sum();
        }
        Ok(total)
    }

    /// A query of the default tenant answered in `region`: each shard's replica there
    /// scores its candidates. See [`SimulatedCluster::retrieve_scoped`].
    pub fn retrieve(&self, region: RegionId, q: &Retrieve) -> Result<Results> {
        self.retrieve_scoped(Scope::LEADER.in_region(Some(region)), q)
    }

    /// The version vector of the replica of `shard` in `region`.
    pub fn version_vector(&self, region: RegionId, shard: ShardId) -> Result<VersionVector> {
        let id = self.node_id(region, shard)?;
        self.with_node(id, |n, _| Ok(n.ledger().version_vector().clone()))
    }

    /// Runs the simulation for `d` of virtual time.
    pub fn run_for(&self, d: Duration) {
        let mut sim = self.lock();
        let deadline = sim.now.as_nanos().saturating_add(d.as_nanos() as i64);
        if let Ok(t) = Timestamp::from_nanos(deadline) {
            sim.run_until(t);
        }
    }

    /// Runs one scheduled happening (a delivery or a tick).
    pub fn step(&self) -> bool {
        self.lock().step()
    }

    /// True when, in every replica group (each tenant's copies of each shard), the
    /// replicas that are up hold the same events with nothing buffered, and the control
    /// plane sees no lag among them.
    pub fn is_converged(&self) -> bool {
        let sim = self.lock();
        let mut groups: Vec<crate::control::GroupId> =
            sim.control.replicas().map(|r| r.group()).collect();
        groups.sort_unstable();
        groups.dedup();
        groups.into_iter().all(|g| {
            let live: Vec<&Node> = sim
                .control
                .replicas()
                .filter(|r| r.group() == g)
                .filter_map(|r| sim.node(r.node).ok())
                .collect();
            live.windows(2)
                .all(|w| w[0].ledger().version_vector() == w[1].ledger().version_vector())
                && live.iter().all(|n| {
                    n.ledger().pending_len() == 0
                        && n.early_events() == 0
                        && n.durable() == n.ledger().version_vector()
                        && sim.control.lag_for(n.id()).events == 0
                })
        })
    }

    /// Steps virtual time until the cluster converges; returns how long that took. An
    /// error names the replicas that still differ.
    pub fn await_full_convergence(&self, timeout: Duration) -> Result<Duration> {
        let start = self.now();
        let step = self.config.timing.tick;
        loop {
            if self.is_converged() {
                return Ok(Duration::from_nanos(
                    (self.now().as_nanos() - start.as_nanos()) as u64,
                ));
            }
            let waited = self.now().as_nanos() - start.as_nanos();
            if waited >= timeout.as_nanos() as i64 {
                return Err(TidalError::Timeout(format!(
                    "the cluster did not converge within {timeout:?} of virtual time: {}",
                    self.divergence_report()
                )));
            }
            self.run_for(step);
        }
    }

    /// Each live replica's version vector, for error messages.
    pub fn divergence_report(&self) -> String {
        let sim = self.lock();
        let mut parts = Vec::new();
        for (i, n) in sim.nodes.iter().enumerate() {
            let state = match &n.node {
                None => "down".to_string(),
                Some(node) => format!(
                    "vv {:?}, pending {}, lag {}",
                    node.ledger().version_vector().iter().collect::<Vec<_>>(),
                    node.ledger().pending_len(),
                    sim.control.lag_for(node.id()).events
                ),
            };
            parts.push(format!(
                "node {i} (tenant {}, region {}, shard {}): {state}",
                n.cfg.tenant, n.cfg.region.0, n.cfg.shard.0
            ));
        }
        parts.join("; ")
    }

    /// Every replica asks its peers for what it lacks and ships what they lack.
    pub fn reconcile_all(&self) {
        let mut sim = self.lock();
        for i in 0..sim.nodes.len() {
            sim.drive(NodeId(i as u16), Input::Reconcile);
        }
    }

    /// Cuts `a` off from `b` in both directions until the handle is dropped or healed.
    pub fn inject_partition(&self, a: RegionId, b: RegionId) -> Result<NetworkPartition> {
        self.partition(a, b, false)
    }

    /// Drops messages from `from` to `to` only.
    pub fn inject_one_way_partition(
        &self,
        from: RegionId,
        to: RegionId,
    ) -> Result<NetworkPartition> {
        self.partition(from, to, true)
    }

    fn partition(&self, a: RegionId, b: RegionId, one_way: bool) -> Result<NetworkPartition> {
        self.check_region(a)?;
        self.check_region(b)?;
        if a == b {
            return Err(TidalError::InvalidArgument {
                name: "to",
                reason: "a region cannot be partitioned from itself".into(),
            });
        }
        let id = self.lock().net.partition(a, b, one_way);
        Ok(NetworkPartition::new(Arc::downgrade(&self.sim), id))
    }

    /// Heals partition `id`; healing one that is gone does nothing.
    pub fn heal_partition(&self, id: PartitionId) {
        self.lock().net.heal(id);
    }

    /// True while partition `id` is in place.
    pub fn is_partition_active(&self, id: PartitionId) -> bool {
        self.lock().net.is_active(id)
    }

    /// True while any partition is in place.
    pub fn is_partitioned(&self) -> bool {
        self.lock().net.is_partitioned()
    }

    pub fn heal_all_partitions(&self) {
        self.lock().net.heal_all();
    }

    /// Crashes the host of `shard` in `region`: every tenant's replica on it. Returns the
    /// events their disks lost.
    pub fn crash(&self, region: RegionId, shard: ShardId, lose_unsynced: bool) -> Result<usize> {
        let id = self.node_id(region, shard)?;
        let mut sim = self.lock();
        let mut lost = sim.crash(id, lose_unsynced)?;
        for other in sim.nodes_on(region, shard) {
            if other != id && sim.node(other).is_ok() {
                lost += sim.crash(other, lose_unsynced)?;
            }
        }
        Ok(lost)
    }

    /// Restarts the host of `shard` in `region`: every tenant's replica on it.
    pub fn restart(&self, region: RegionId, shard: ShardId) -> Result<()> {
        let id = self.node_id(region, shard)?;
        let mut sim = self.lock();
        sim.restart(id)?;
        for other in sim.nodes_on(region, shard) {
            if other != id && sim.node(other).is_err() {
                sim.restart(other)?;
            }
        }
        Ok(())
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.lock().node(id).is_ok()
    }
}
