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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    },
    Hide {
        user: EntityId,
        item: EntityId,
    },
    Unhide {
        user: EntityId,
        item: EntityId,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub hlc: HlcTimestamp,
    pub tenant: TenantId,
    pub body: EventBody,
}
