//! The client protocol: what a client asks a node, and what the node answers. Each request
//! is one frame and gets exactly one reply frame with the same `id`, so a client may
//! pipeline.
//!
//! Names travel as strings (signals, windows) and are resolved by the node, against its
//! schema, with the same errors an embedded database gives.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, TidalError};
use crate::event::{EventId, TenantId};
use crate::schema::NodeId;

/// When a write is acknowledged, as the wire carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Concern {
    /// After the append to the answering node's log.
    #[default]
    Local,
    /// After this many other replicas hold the write durably.
    Replicated(u8),
    /// After a majority of the replica group, the answering node included.
    Majority,
    /// After every other replica of the group.
    All,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub tenant: TenantId,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Signals of one kind, validated as a whole and written whole or not at all.
    /// `ts_ns` is `None` for "now on the node", else one timestamp per entity.
    Write {
        signal: String,
        entities: Vec<u64>,
        weights: Vec<f64>,
        ts_ns: Option<Vec<i64>>,
        concern: Concern,
        /// Names the write, so that a retry on another node is recognised there.
        idempotency_key: Option<u64>,
    },
    Hide {
        user: u64,
        item: u64,
        hidden: bool,
        concern: Concern,
        idempotency_key: Option<u64>,
    },
    Scores {
        signal: String,
        entities: Vec<u64>,
        at_ns: Option<i64>,
    },
    Window {
        signal: String,
        entity: u64,
        window: String,
        at_ns: Option<i64>,
    },
    IsHidden {
        user: u64,
        item: u64,
    },
    Retrieve {
        user: Option<u64>,
        candidates: Vec<u64>,
        rank_by: Vec<(String, f64)>,
        limit: u32,
        at_ns: Option<i64>,
    },
    /// This node's replication lag behind each peer.
    Lag,
    /// The node's view of its replica group, as `ClusterHealth` JSON.
    Health,
    /// The schema this node serves, as JSON.
    Schema,
    /// The cluster's region names, indexed by region id, as a JSON list.
    Regions,
}

impl Op {
    /// Whether the op writes: a write is not retried on another node once sent.
    pub fn is_write(&self) -> bool {
        matches!(self, Op::Write { .. } | Op::Hide { .. })
    }
}

/// Which node answered, and whether its answer may miss writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub node: NodeId,
    /// The answering node's region, by name.
    pub region: String,
    /// Some replica of the shard has not been heard within its peer timeout: the answer
    /// stands for what reached this node.
    pub degraded: bool,
    pub unreachable: Vec<NodeId>,
}

/// One ranked item of a retrieve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub item: u64,
    pub score: f64,
}

/// Replication lag of one peer as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerLag {
    pub peer: NodeId,
    /// Events this node holds that the peer has not acknowledged.
    pub events: u64,
    /// Age of the oldest of those events, in seconds.
    pub seconds: f64,
    pub reachable: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Written {
        count: u64,
        /// The first event written, or the original when this was a recognised retry.
        first: EventId,
        duplicate: bool,
    },
    Scores(Vec<f64>),
    Window {
        count: u64,
        weight: f64,
    },
    Bool(bool),
    Ranked {
        items: Vec<Ranked>,
        hidden_filtered: u64,
        candidates: u64,
    },
    Lag(Vec<PeerLag>),
    Json(String),
}

/// A refusal: the error's class (which picks the client's exception) and its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<&TidalError> for Refused {
    fn from(e: &TidalError) -> Refused {
        Refused {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub served: Served,
    pub result: Result<Answer, Refused>,
}
