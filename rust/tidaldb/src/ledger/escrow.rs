//! The tenant's hard caps as bounded counters (see [`BoundedCounter`]), derived from the
//! applied events like the rest of the ledger: a signal that claims an entity spends one
//! entity right of its origin, every event spends one storage right of its origin, and a
//! grant moves rights from its origin to another replica. Replicas that applied the same
//! events hold the same counters.

use serde::{Deserialize, Serialize};

use crate::crdt::BoundedCounter;
use crate::event::{CapKind, Event, EventBody, VersionVector};
use crate::schema::NodeId;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escrow {
    entities: BoundedCounter,
    /// Consumption here is each origin's event count, so it always equals the version
    /// vector; it is kept as a counter so that both caps have one shape.
    storage: BoundedCounter,
}

impl Escrow {
    /// The counters of a ledger restored from a snapshot written before they existed: no
    /// grant had been made and no entity claimed, and every event took its storage.
    pub fn before_caps(vv: &VersionVector) -> Self {
        let mut escrow = Escrow::default();
        for (origin, seq) in vv.iter() {
            escrow.storage.consume(origin, seq);
        }
        escrow
    }

    pub fn counter(&self, kind: CapKind) -> &BoundedCounter {
        match kind {
            CapKind::Entities => &self.entities,
            CapKind::Storage => &self.storage,
        }
    }

    /// Records what `event` spends or moves; called once per applied event.
    #[inline]
    pub fn record(&mut self, event: &Event) {
        self.storage.consume(event.id.origin, 1);
        self.record_body(event);
    }

    /// [`Escrow::record`] for a run of one origin's events: storage is spent once for
    /// the run, so that uncapped ingest pays one map update per batch, not per event.
    pub fn record_run(&mut self, events: &[Event]) {
        let Some(first) = events.first() else { return };
        self.storage.consume(first.id.origin, events.len() as u64);
        for e in events {
            debug_assert_eq!(e.id.origin, first.id.origin, "a run has one origin");
            self.record_body(e);
        }
    }

    /// [`record_run`](Self::record_run) of `n` signals of one origin that claim no entity.
    pub fn record_unclaimed_run(&mut self, origin: NodeId, n: u64) {
        self.storage.consume(origin, n);
    }

    #[inline]
    fn record_body(&mut self, event: &Event) {
        let origin = event.id.origin;
        match event.body {
            EventBody::Signal {
                claims_entity: true,
                ..
            } => self.entities.consume(origin, 1),
            EventBody::Grant { kind, to, amount } => match kind {
                CapKind::Entities => self.entities.transfer(origin, to, amount),
                CapKind::Storage => self.storage.transfer(origin, to, amount),
            },
            _ => {}
        }
    }

    /// True when the storage counter spent exactly one right per applied event.
    pub fn storage_matches(&self, vv: &VersionVector) -> bool {
        vv.iter().all(|(o, seq)| self.storage.consumed(o) == seq)
            && self.storage.consumption().count() <= vv.iter().count()
    }
}
