//! The seam between the cluster layer and a driver.
//!
//! The cluster layer decides (where a write goes, when a migration step may advance, when
//! a drained host has caught up); a driver carries out (hands inputs to nodes, lets time
//! pass, starts and stops replicas). The simulator drives on virtual time over a seeded
//! network; the runtime on the wall clock over real files and a transport. Everything
//! above this trait is the same code under both.

use std::sync::Arc;
use std::time::Duration;

use super::config::{GroupConcern, Timing};
use crate::control::{Command, ControlPlane};
use crate::error::Result;
use crate::event::ClientTag;
use crate::node::{
    ClientOp, Input, Node, NodeConfig, NodeRole, PeerAddr, ShardRouter, WriteAck, WriteConcern,
};
use crate::schema::{NodeId, RegionId, Schema, ShardId, Timestamp};

/// The fixed shape of a cluster and its client policy, as the cluster layer needs it.
#[derive(Clone, Debug)]
pub struct Layout {
    pub regions: Vec<RegionId>,
    pub shards_per_region: u16,
    /// The shard whose leader [`ClusterOps::leader`](super::ClusterOps) reports.
    pub leader_shard: ShardId,
    pub schema: Arc<Schema>,
    /// Routes the default tenant's entities to shards.
    pub router: Arc<ShardRouter>,
    /// The concern of every client write, unless `group_concern` is set.
    pub write_concern: WriteConcern,
    /// When set, each write waits for this share of the group that serves it instead.
    pub group_concern: Option<GroupConcern>,
    pub timing: Timing,
    pub max_retained: usize,
    pub max_retained_own: usize,
    pub max_future_skew: Duration,
    /// How long a replicated write, or a dual write, waits for its acknowledgements.
    pub write_timeout: Duration,
}

impl Layout {
    /// A node's configuration from the cluster's timings and log bounds.
    pub fn replica_config(
        &self,
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
            heartbeat_interval: self.timing.heartbeat_interval,
            peer_timeout: self.timing.peer_timeout,
            repair_after: self.timing.repair_after,
            max_retained: self.max_retained,
            max_retained_own: self.max_retained_own,
            max_future_skew: self.max_future_skew,
            ..NodeConfig::default()
        }
    }
}

/// One consistent look at the cluster: the control plane, the replicas that are up, and
/// the driver's time, all as of the same instant.
pub trait ClusterView {
    fn now(&self) -> Timestamp;
    fn control(&self) -> &ControlPlane;
    /// A replica that is up; `Unavailable` for one that is down, retired or unknown.
    fn node(&self, id: NodeId) -> Result<&Node>;
}

/// What a driver carries out for the cluster layer. Every method takes `&self`: drivers
/// are shared handles with their own locking, and none of them calls back into the
/// cluster layer.
pub trait ClusterDriver {
    fn layout(&self) -> &Layout;

    /// Runs `f` on a consistent view of the cluster.
    fn view<T>(&self, f: impl FnOnce(&dyn ClusterView) -> T) -> T;

    /// Applies a command to the control plane at the driver's time.
    fn apply_command(&self, command: Command) -> Result<()>;

    /// Hands an input to a replica and carries out its outputs; dropped if it is down.
    /// The cluster layer sends only orders ([`Input::Control`]) and [`Input::Reconcile`].
    fn input(&self, node: NodeId, input: Input<'_>);

    /// A client write to `node`, waiting up to the layout's write timeout for the reply
    /// its concern asks for.
    fn submit(
        &self,
        node: NodeId,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck>;

    /// Lets time pass until `done` holds, or fails with `Timeout` after `timeout`.
    fn wait_until(
        &self,
        timeout: Duration,
        done: &mut dyn FnMut(&dyn ClusterView) -> bool,
    ) -> Result<()>;

    /// Lets `d` pass. Fails only when an [`interrupt`](crate::interrupt) scope's check
    /// stops it, with the time that passed until then kept.
    fn advance(&self, d: Duration) -> Result<()>;

    /// The first of `count` unused node ids.
    fn next_node_ids(&self, count: usize) -> Result<NodeId>;

    /// Starts a new, empty replica with its own storage.
    fn start_node(&self, cfg: NodeConfig) -> Result<()>;

    /// Stops a replica for good and removes its storage: its data was collected.
    fn retire_node(&self, node: NodeId);

    /// Stops a replica as a crash would; with `lose_unsynced`, its unsynced tail is lost.
    /// Returns the events lost.
    fn crash_node(&self, node: NodeId, lose_unsynced: bool) -> Result<usize>;

    /// Starts a crashed replica from its storage; it rejoins with its stored hard state.
    fn restart_node(&self, node: NodeId) -> Result<()>;

    fn is_up(&self, node: NodeId) -> bool {
        self.view(|v| v.node(node).is_ok())
    }
}
