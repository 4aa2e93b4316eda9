//! Small builders shared by the node's unit tests.

use crate::crdt::HlcTimestamp;
use crate::event::{Event, EventBody, EventId, TenantId, VersionVector};
use crate::schema::{EntityId, NodeId, Timestamp};

/// Event `seq` of `origin`: a hide, the cheapest body.
pub fn event(origin: u16, seq: u64) -> Event {
    Event {
        id: EventId {
            origin: NodeId(origin),
            seq,
        },
        hlc: HlcTimestamp::default(),
        tenant: TenantId::DEFAULT,
        body: EventBody::Hide {
            user: EntityId(1),
            item: EntityId(seq),
            ts: Timestamp::EPOCH,
        },
        client: None,
    }
}

pub fn vv(entries: &[(u16, u64)]) -> VersionVector {
    let mut v = VersionVector::new();
    for &(origin, seq) in entries {
        v.advance(NodeId(origin), seq);
    }
    v
}
