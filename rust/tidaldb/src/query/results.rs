//! What a retrieval returns.

use std::time::Duration;

use crate::schema::{EntityId, ShardId};

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
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    /// Best first; ties broken by ascending item id, so results are deterministic.
    pub items: Vec<ScoredItem>,
    pub stats: QueryStats,
}
