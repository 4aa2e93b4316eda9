//! What a retrieval returns.

use std::time::Duration;

use crate::schema::{EntityId, RegionId, ShardId};

/// One replica of one shard: the shard's copy in one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaAddr {
    pub region: RegionId,
    pub shard: ShardId,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredItem {
    pub item: EntityId,
    pub score: f64,
}

/// How a query went. `degraded` is true when some shard or replica could not be reached
/// (or was stale); the answer then covers only `shards_reached`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryStats {
    pub candidates_considered: usize,
    pub candidates_after_filter: usize,
    pub hidden_filtered: usize,
    pub returned: usize,
    pub elapsed: Duration,
    pub degraded: bool,
    pub shards_reached: Vec<ShardId>,
    pub shards_unreachable: Vec<ShardId>,
    /// Replicas the answering nodes could not hear from: their writes since the partition
    /// may be missing from the answer.
    pub replicas_unreachable: Vec<ReplicaAddr>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    /// Best first; ties broken by ascending item id, so results are deterministic.
    pub items: Vec<ScoredItem>,
    pub stats: QueryStats,
}
