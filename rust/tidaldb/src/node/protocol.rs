//! What goes into a [`Node`](super::Node) and what comes out: the whole contract between the
//! state machine and the two drivers (the simulator and the tokio runtime).

use std::sync::Arc;

use super::PeerAddr;
use super::admission::ClientOp;
use super::hard_state::HardState;
use super::routing::NodeRole;
use crate::error::Result;
use crate::event::{CapKind, ClientTag, Event, EventId, VersionVector};
use crate::schema::NodeId;

/// The driver's name for a client write, echoed in its reply.
pub type RequestId = u64;

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WriteConcern {
    /// After the local log append: fast, but lost if this replica dies before shipping it.
    #[default]
    Local,
    /// After this many *other* replicas have made the write durable, so it survives the
    /// loss of this one.
    Replicated(u8),
}

impl std::fmt::Display for WriteConcern {
    /// As a user gives it: `write_concern="local"`, or `write_concern=k` other replicas.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteConcern::Local => f.write_str("write_concern=\"local\""),
            WriteConcern::Replicated(k) => write!(f, "write_concern={k}"),
        }
    }
}

/// One client request: the ops are validated together and written whole or not at all.
#[derive(Clone, Copy, Debug)]
pub struct WriteRequest<'a> {
    pub id: RequestId,
    pub ops: &'a [ClientOp],
    pub concern: WriteConcern,
    /// Names the request for deduplication; recorded on its first event.
    pub tag: Option<ClientTag>,
}

/// Orders from the control plane, which alone decides leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlCommand {
    /// Take `role` in `term`. Ignored when the node already knows a later term.
    SetRole { term: u64, role: NodeRole },
    /// A replica joins the group (a migration's target).
    AddPeer(PeerAddr),
    /// A replica leaves the group for good (a migration's collected source).
    RemovePeer(NodeId),
    /// Give every right of the tenant's hard caps this replica holds to another (a
    /// migration's source, to its target, before it is collected).
    HandOverRights(NodeId),
    /// Take no client write from now on, for good (a migration's source once its target
    /// serves the tenant). Peers' events still apply and the node still ships its own, so
    /// once a peer holds the version vector read right after this order, it holds every
    /// write this replica acknowledged. Kept in the hard state, so a restart keeps it.
    StopServing,
}

#[derive(Clone, Debug)]
pub enum Input<'a> {
    Write(WriteRequest<'a>),
    Peer {
        from: NodeId,
        msg: Message,
    },
    /// Time passed; the node sends heartbeats and repairs replication when due.
    Tick,
    /// Everything the node asked to persist so far is durable.
    Synced,
    /// Exchange version vectors with every peer now and ship what each lacks, as after a
    /// partition heals.
    Reconcile,
    Control(ControlCommand),
    /// The node was restarted from its files: this is the hard state it last persisted,
    /// `None` if it never stored one (its configured membership then stands). It comes
    /// back as a follower in its old term and reconciles with every peer.
    Rejoin(Option<HardState>),
    /// The client stopped waiting for this replicated write (it timed out). The write stays
    /// applied and keeps replicating; only the pending reply is dropped.
    Cancel(RequestId),
    /// The driver's answer to a [`LogRead`] it was asked for: the events of `read.origin`
    /// from `read.after + 1` on, read back from the durable log, consecutive and at most
    /// `read.len()` of them. Fewer than asked (or none) means the log no longer holds the
    /// rest; the peer then gets a snapshot instead.
    LogRead {
        read: LogRead,
        events: &'a [Event],
    },
}

/// A request to the driver: read back the events of `origin` with seq in
/// `after+1 ..= upto` from the durable log, for shipping to `peer`, and hand them in with
/// [`Input::LogRead`]. The node asks for these when they have left its bounded in-memory
/// log; a range never holds more than `max_frame_events` events, so a read is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRead {
    pub peer: NodeId,
    pub origin: NodeId,
    pub after: u64,
    pub upto: u64,
}

impl LogRead {
    /// How many events the read asks for.
    pub fn len(&self) -> usize {
        self.upto.saturating_sub(self.after) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.upto <= self.after
    }
}

/// A message between replicas. Every message carries the sender's term; one from an
/// earlier term than the receiver's is fenced off (answered with [`Message::Fenced`]).
/// Between processes it travels postcard-encoded (see `runtime::net`); its byte fields
/// go as one byte string each (see [`bytes_field`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    /// Events the receiver lacks, as a BatchHeader-v2 frame (see `wal::encode_frame`).
    Push {
        term: u64,
        #[serde(with = "bytes_field")]
        frame: Arc<[u8]>,
    },
    /// The receiver's durable version vector, sent once pushed events are durable.
    Ack {
        term: u64,
        vv: VersionVector,
    },
    Heartbeat {
        term: u64,
        vv: VersionVector,
        role: NodeRole,
    },
    /// "Ship me what I lack": sent on rejoin, on reconnect and on explicit reconciliation.
    SyncRequest {
        term: u64,
        vv: VersionVector,
    },
    /// A full resync: the sender's whole state (see `wal::snapshot::encode_state`), sent
    /// when the events the receiver lacks have left the sender's log.
    Snapshot {
        term: u64,
        vv: VersionVector,
        #[serde(with = "bytes_field")]
        state: Arc<[u8]>,
    },
    Fenced {
        term: u64,
    },
    /// "I am short of `need` `kind` rights": the receiver may grant part of its spare,
    /// as an event of its own (see `node::escrow`).
    RightsRequest {
        term: u64,
        kind: CapKind,
        need: u64,
    },
}

impl Message {
    pub fn term(&self) -> u64 {
        match self {
            Message::Push { term, .. }
            | Message::Ack { term, .. }
            | Message::Heartbeat { term, .. }
            | Message::SyncRequest { term, .. }
            | Message::Snapshot { term, .. }
            | Message::Fenced { term }
            | Message::RightsRequest { term, .. } => *term,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Push { .. } => "push",
            Message::Ack { .. } => "ack",
            Message::Heartbeat { .. } => "heartbeat",
            Message::SyncRequest { .. } => "sync-request",
            Message::Snapshot { .. } => "snapshot",
            Message::Fenced { .. } => "fenced",
            Message::RightsRequest { .. } => "rights-request",
        }
    }
}

/// Serde for a message's `Arc<[u8]>` fields as one byte string, not a sequence of `u8`s.
/// Serde's own impl goes element by element: postcard then called one serializer and one
/// visitor per byte of every pushed frame (12-19% of the servers' CPU when ingesting over
/// TCP). In postcard both are a varint length and the raw bytes, so the bytes on the
/// wire are the same; formats without byte strings get a sequence, as before.
pub(crate) mod bytes_field {
    use std::fmt;
    use std::sync::Arc;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        d.deserialize_bytes(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Arc<[u8]>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Arc<[u8]>, E> {
            Ok(Arc::from(v))
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Arc<[u8]>, E> {
            Ok(Arc::from(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Arc<[u8]>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(Arc::from(out))
        }
    }
}

/// How a write was acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteAck {
    /// Applied as `count` events from `first` on (seqs are consecutive).
    Applied { first: EventId, count: usize },
    /// A retry of a write already applied as `original`; nothing was written.
    Duplicate { original: EventId },
}

impl WriteAck {
    /// The event that carries the write, new or original.
    pub fn event_id(&self) -> EventId {
        match self {
            WriteAck::Applied { first, .. } => *first,
            WriteAck::Duplicate { original } => *original,
        }
    }
}

/// What a node tells the control plane on every heartbeat.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeReport {
    pub node: NodeId,
    pub term: u64,
    pub role: NodeRole,
    /// Events the driver has confirmed durable (`Synced`): a migration lets its source go
    /// once the target's report holds everything the source acknowledged.
    pub vv: VersionVector,
    /// Distinct entities in the ledger, for health reporting.
    pub entities: u64,
    /// Peers that lack events which have left this node's in-memory log: they catch up
    /// from its durable log (or a snapshot), and health says they need a resync until then.
    pub behind_log: Vec<NodeId>,
}

/// Everything one `handle` call asks of the driver, in the order it must be done:
/// 1. store `hard_state` if set; append `persist` to the log (and, if `install_snapshot`,
///    first replace the stored state with a snapshot of the node's ledger);
/// 2. send `messages`; 3. deliver `replies`; 4. forward `reports` to the control plane;
/// 5. carry out `log_reads`, each answered with an [`Input::LogRead`] (at once or later).
///
/// Buffers are reused across calls: the driver drains them and hands them back.
#[derive(Debug, Default)]
pub struct Outputs {
    pub install_snapshot: bool,
    pub persist: Vec<Event>,
    pub messages: Vec<(NodeId, Message)>,
    pub replies: Vec<(RequestId, Result<WriteAck>)>,
    pub reports: Vec<NodeReport>,
    /// The node's term or membership changed: persist this before sending `messages`, so
    /// that a restart rejoins with it (see [`HardState`]).
    pub hard_state: Option<HardState>,
    pub log_reads: Vec<LogRead>,
}

impl Outputs {
    pub fn clear(&mut self) {
        self.install_snapshot = false;
        self.persist.clear();
        self.messages.clear();
        self.replies.clear();
        self.reports.clear();
        self.hard_state = None;
        self.log_reads.clear();
    }

    /// Clears the buffers and gives back what a large input grew them past `keep`
    /// entries, so that one big write does not keep its peak allocated for as long as the
    /// buffers are reused.
    pub fn clear_and_release(&mut self, keep: usize) {
        self.clear();
        self.persist.shrink_to(keep);
        self.messages.shrink_to(keep);
        self.replies.shrink_to(keep);
    }

    pub fn is_empty(&self) -> bool {
        !self.install_snapshot
            && self.persist.is_empty()
            && self.messages.is_empty()
            && self.replies.is_empty()
            && self.reports.is_empty()
            && self.hard_state.is_none()
            && self.log_reads.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Message` as it was derived before `bytes_field`: serde's element-by-element impl.
    #[derive(serde::Serialize)]
    enum SeqMessage {
        Push {
            term: u64,
            frame: Arc<[u8]>,
        },
        Ack,
        Heartbeat,
        SyncRequest,
        Snapshot {
            term: u64,
            vv: VersionVector,
            state: Arc<[u8]>,
        },
    }

    #[test]
    fn byte_fields_keep_their_postcard_bytes_and_round_trip() {
        let bytes: Arc<[u8]> = (0..=255u8).cycle().take(1000).collect();
        let vv = VersionVector::default();
        let pairs = [
            (
                Message::Push {
                    term: 7,
                    frame: bytes.clone(),
                },
                SeqMessage::Push {
                    term: 7,
                    frame: bytes.clone(),
                },
            ),
            (
                Message::Snapshot {
                    term: 2,
                    vv: vv.clone(),
                    state: bytes.clone(),
                },
                SeqMessage::Snapshot {
                    term: 2,
                    vv,
                    state: bytes,
                },
            ),
        ];
        for (msg, old) in pairs {
            let new = postcard::to_stdvec(&msg).unwrap();
            assert_eq!(
                new,
                postcard::to_stdvec(&old).unwrap(),
                "wire bytes changed"
            );
            assert_eq!(postcard::from_bytes::<Message>(&new).unwrap(), msg);
        }
        let _ = (
            SeqMessage::Ack,
            SeqMessage::Heartbeat,
            SeqMessage::SyncRequest,
        );
    }
}
