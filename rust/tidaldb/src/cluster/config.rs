//! The cluster's timings and write-concern policy, shared by both drivers.

use std::sync::Arc;
use std::time::Duration;

use super::bootstrap::shard_router;
use super::driver::Layout;
use crate::error::Result;
use crate::node::{
    DEFAULT_MAX_FUTURE_SKEW, DEFAULT_MAX_RETAINED, DEFAULT_MAX_RETAINED_OWN, WriteConcern,
};
use crate::schema::{RegionId, Schema, ShardId};

/// Protocol timings: virtual time in the simulator, the wall clock in the runtime.
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

/// What either driver needs to lay a cluster out, and its client policy: the part of a
/// cluster's configuration that does not depend on clock, network or disk.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub regions: Vec<RegionId>,
    pub shards_per_region: u16,
    /// Every shard's first leader is its replica in `leader.0`; `leader.1` names the shard
    /// whose leader [`Cluster::leader`](super::Cluster::leader) reports.
    pub leader: (RegionId, ShardId),
    pub schema: Schema,
    /// The concern of every client write, unless `group_concern` is set.
    pub write_concern: WriteConcern,
    /// When set, each write waits for this share of the group that serves it instead.
    pub group_concern: Option<GroupConcern>,
    pub timing: Timing,
    /// Bound on each node's in-memory log of relayed events.
    pub max_retained: usize,
    /// Bound on each node's in-memory log of its own events.
    pub max_retained_own: usize,
    /// How far ahead of a node's clock a write's timestamp may be.
    pub max_future_skew: Duration,
    /// How long a replicated write, or a dual write, waits for its acknowledgements.
    pub write_timeout: Duration,
}

impl ClusterSpec {
    /// Three regions, one shard each, led from region 0, local write concern.
    pub fn new(schema: Schema) -> Self {
        ClusterSpec {
            regions: vec![RegionId(0), RegionId(1), RegionId(2)],
            shards_per_region: 1,
            leader: (RegionId(0), ShardId(0)),
            schema,
            write_concern: WriteConcern::Local,
            group_concern: None,
            timing: Timing::default(),
            max_retained: DEFAULT_MAX_RETAINED,
            max_retained_own: DEFAULT_MAX_RETAINED_OWN,
            max_future_skew: DEFAULT_MAX_FUTURE_SKEW,
            write_timeout: Duration::from_secs(5),
        }
    }

    /// The validated layout the cluster layer runs on.
    pub fn layout(&self) -> Result<Layout> {
        let router = shard_router(&self.regions, self.shards_per_region, self.leader)?;
        Ok(Layout {
            regions: self.regions.clone(),
            shards_per_region: self.shards_per_region,
            leader_shard: self.leader.1,
            schema: Arc::new(self.schema.clone()),
            router: Arc::new(router),
            write_concern: self.write_concern,
            group_concern: self.group_concern,
            timing: self.timing,
            max_retained: self.max_retained,
            max_retained_own: self.max_retained_own,
            max_future_skew: self.max_future_skew,
            write_timeout: self.write_timeout,
        })
    }
}
