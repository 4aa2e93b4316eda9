//! `SimulatedCluster`: the cluster layer over the simulator's driver. N regions × M shards
//! of real [`Node`]s on virtual time, every shard replicated in every region. Everything a
//! cluster does (routing, tenants, migration, upgrades, failover) is the driver-neutral
//! [`Cluster`]; this file is what only a simulation has: its configuration, its seed, and
//! stepping, partitioning and counting its network.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::engine::{Sim, SimDurability, SimStats};
use super::faults::NetworkPartition;
use super::network::{LinkConfig, Network, PartitionId};
use crate::cluster::{
    Cluster, ClusterDriver, ClusterSpec, ClusterView, GroupConcern, Layout, NodeRef, Timing,
    initial_replicas,
};
use crate::control::{Command, ControlPlane};
use crate::error::{Result, TidalError};
use crate::event::ClientTag;
use crate::interrupt;
use crate::node::{ClientOp, Input, Node, WriteAck, WriteConcern};
use crate::schema::{NodeId, RegionId, Schema, ShardId, Timestamp};

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
    /// How far ahead of a node's (virtual) clock a write's timestamp may be.
    pub max_future_skew: Duration,
    /// Virtual time at the start of the run.
    pub start: Timestamp,
    /// How long a replicated write waits for its acknowledgements (virtual time).
    pub write_timeout: Duration,
}

/// 2026-01-01T00:00:00Z: a fixed start, so that runs do not depend on the wall clock.
pub const DEFAULT_START_NS: i64 = 1_767_225_600_000_000_000;

impl ClusterConfig {
    /// The driver-neutral part of this configuration.
    pub fn spec(&self) -> ClusterSpec {
        ClusterSpec {
            regions: self.regions.clone(),
            shards_per_region: self.shards_per_region,
            leader: self.leader,
            schema: self.schema.clone(),
            write_concern: self.write_concern,
            group_concern: self.group_concern,
            timing: self.timing,
            max_retained: self.max_retained,
            max_retained_own: self.max_retained_own,
            max_future_skew: self.max_future_skew,
            write_timeout: self.write_timeout,
        }
    }

    /// Three regions, one shard each, led from region 0, seed 0, default links.
    pub fn new(schema: Schema) -> Self {
        Self::simulating(ClusterSpec::new(schema))
    }

    /// `spec` on the simulator, with seed 0, default links and every write synced.
    pub fn simulating(spec: ClusterSpec) -> Self {
        ClusterConfig {
            regions: spec.regions,
            shards_per_region: spec.shards_per_region,
            leader: spec.leader,
            schema: spec.schema,
            seed: 0,
            links: LinkConfig::default(),
            durability: SimDurability::Immediate,
            write_concern: spec.write_concern,
            group_concern: spec.group_concern,
            timing: spec.timing,
            max_retained: spec.max_retained,
            max_retained_own: spec.max_retained_own,
            max_future_skew: spec.max_future_skew,
            start: Timestamp::from_nanos(DEFAULT_START_NS).unwrap_or(Timestamp::EPOCH),
            write_timeout: spec.write_timeout,
        }
    }
}

/// The simulator as a [`ClusterDriver`]: one lock around the whole simulation, which is
/// single-threaded and moves only when the cluster layer waits or advances.
#[derive(Clone, Debug)]
pub struct SimDriver {
    pub(super) sim: Arc<Mutex<Sim>>,
    config: Arc<ClusterConfig>,
    layout: Arc<Layout>,
}

impl SimDriver {
    pub(super) fn lock(&self) -> MutexGuard<'_, Sim> {
        // The simulator never panics while holding its lock in normal operation; if a test
        // panicked mid-step, its state is still the best evidence there is.
        self.sim
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ClusterView for Sim {
    fn now(&self) -> Timestamp {
        self.now
    }

    fn control(&self) -> &ControlPlane {
        &self.control
    }

    fn node(&self, id: NodeId) -> Result<&Node> {
        Sim::node(self, id)
    }
}

impl ClusterDriver for SimDriver {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn view<T>(&self, f: impl FnOnce(&dyn ClusterView) -> T) -> T {
        let sim = self.lock();
        f(&*sim)
    }

    fn apply_command(&self, command: Command) -> Result<()> {
        let mut sim = self.lock();
        let now = sim.now;
        sim.control.apply(now, command)
    }

    fn input(&self, node: NodeId, input: Input<'_>) {
        self.lock().drive(node, input);
    }

    fn submit(
        &self,
        node: NodeId,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        self.lock()
            .submit(node, ops, concern, tag, self.config.write_timeout)
    }

    fn wait_until(
        &self,
        timeout: Duration,
        done: &mut dyn FnMut(&dyn ClusterView) -> bool,
    ) -> Result<()> {
        let mut sim = self.lock();
        let deadline = sim.now.saturating_add(timeout);
        loop {
            if done(&*sim) {
                return Ok(());
            }
            if sim.now >= deadline || !sim.step() {
                return Err(TidalError::Timeout(format!(
                    "not done within {} of virtual time",
                    crate::schema::format_duration(timeout)
                )));
            }
            if interrupt::due() {
                // The caller's check may run code that uses this cluster.
                drop(sim);
                interrupt::checkpoint()?;
                sim = self.lock();
            }
        }
    }

    fn advance(&self, d: Duration) -> Result<()> {
        let mut sim = self.lock();
        // Saturating, never wrapping: a duration past the clock's range runs to its end
        // (`Cluster::try_run_for` refuses one instead).
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let deadline = sim
            .now
            .as_nanos()
            .saturating_add(ns)
            .min(Timestamp::MAX_NANOS);
        let Ok(t) = Timestamp::from_nanos(deadline) else {
            return Ok(());
        };
        while !sim.run_until_paused(t, interrupt::due) {
            drop(sim);
            interrupt::checkpoint()?;
            sim = self.lock();
        }
        Ok(())
    }

    fn next_node_ids(&self, count: usize) -> Result<NodeId> {
        self.lock().next_node_ids(count)
    }

    fn start_node(&self, cfg: crate::node::NodeConfig) -> Result<()> {
        self.lock().add_node(cfg).map(drop)
    }

    fn retire_node(&self, node: NodeId) {
        self.lock().retire(node);
    }

    fn crash_node(&self, node: NodeId, lose_unsynced: bool) -> Result<usize> {
        self.lock().crash(node, lose_unsynced)
    }

    fn restart_node(&self, node: NodeId) -> Result<()> {
        self.lock().restart(node)
    }
}

/// A simulated cluster. Clones share it; every method takes `&self`.
pub type SimulatedCluster = Cluster<SimDriver>;

/// A handle on one replica of a [`SimulatedCluster`].
pub type SimNodeRef = NodeRef<SimDriver>;

impl Cluster<SimDriver> {
    pub fn build(config: ClusterConfig) -> Result<SimulatedCluster> {
        let layout = config.spec().layout()?;
        let (configs, control) = initial_replicas(&layout, config.leader.0);
        let sim = Sim::new(
            config.start,
            config.seed,
            Network::new(config.links),
            configs,
            control,
            layout.schema.clone(),
            config.durability,
            config.timing.tick,
        )?;
        Ok(Cluster::from_driver(SimDriver {
            sim: Arc::new(Mutex::new(sim)),
            config: Arc::new(config),
            layout: Arc::new(layout),
        }))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Sim> {
        self.driver.lock()
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.driver.config
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// Runs one client write on `node`, waiting (in virtual time) for replicas as
    /// `concern` asks.
    pub fn submit(
        &self,
        node: NodeId,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        self.driver.submit(node, ops, concern, tag)
    }

    /// Runs one scheduled happening (a delivery or a tick).
    pub fn step(&self) -> bool {
        self.lock().step()
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
        crate::cluster::check_region(self.layout(), a)?;
        crate::cluster::check_region(self.layout(), b)?;
        if a == b {
            return Err(TidalError::InvalidArgument {
                name: "to",
                reason: "a region cannot be partitioned from itself".into(),
            });
        }
        let id = self.lock().net.partition(a, b, one_way);
        Ok(NetworkPartition::new(Arc::downgrade(&self.driver.sim), id))
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
}
