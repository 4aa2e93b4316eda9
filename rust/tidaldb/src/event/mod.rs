//! The spine: every write is an [`Event`], and every replica's state is a function of the
//! set of events it has applied.

mod version_vector;

pub use version_vector::VersionVector;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::crdt::HlcTimestamp;
use crate::schema::{EntityId, NodeId, SignalIdx, Timestamp};

/// A tenant. Each tenant is an island with its own log, seq space and state; 0 is the
/// default tenant.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct TenantId(pub u64);

impl TenantId {
    pub const DEFAULT: TenantId = TenantId(0);
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// `seq` is dense per (tenant, origin): 1, 2, 3, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId {
    pub origin: NodeId,
    pub seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventBody {
    Signal {
        signal: SignalIdx,
        entity: EntityId,
        weight: f64,
        ts: Timestamp,
        /// Its origin held no event of `entity` when it admitted this one, so the event
        /// spends one of the origin's entity rights (see [`CapKind::Entities`]). Set only
        /// for tenants with an entity cap.
        claims_entity: bool,
    },
    /// `ts` is when the user hid the item; it orders hides against unhides (see
    /// [`HideRegister`](crate::crdt::HideRegister)).
    Hide {
        user: EntityId,
        item: EntityId,
        ts: Timestamp,
    },
    Unhide {
        user: EntityId,
        item: EntityId,
        ts: Timestamp,
    },
    /// The origin gives `amount` of its `kind` rights to replica `to`. Only a replica
    /// giving rights it holds originates one, so no replica can give what it lacks.
    Grant {
        kind: CapKind,
        to: NodeId,
        amount: u64,
    },
}

/// A tenant hard cap that replicas spend from rights they hold (a bounded counter, see
/// [`BoundedCounter`](crate::crdt::BoundedCounter)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CapKind {
    /// `max_entities`: a right is one entity.
    Entities,
    /// `max_storage_bytes`: a right is one event of the log, as storage is accounted.
    Storage,
}

/// A client-chosen key that names one logical write, so that a retry of it (to the same
/// replica or, after a failover, to another) is applied once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(pub u64);

/// A client session: its writes carry rising [`SessionSeqNo`]s, so one high-water mark per
/// session recognises every retry without remembering each write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionSeqNo(pub u64);

/// How a client names a write for deduplication. It travels inside the event, so every
/// replica learns it when it applies the event, and a retry after a failover is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientTag {
    Key(IdempotencyKey),
    Session {
        session: SessionId,
        seq: SessionSeqNo,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub hlc: HlcTimestamp,
    pub tenant: TenantId,
    pub body: EventBody,
    /// Set when the client named the write for deduplication.
    pub client: Option<ClientTag>,
}
