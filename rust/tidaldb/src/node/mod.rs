//! The sans-IO replica: admission, stamping and applying events. It never reads a clock,
//! spawns a thread or touches a file; drivers hand it the time and persist what it returns.

use std::time::Duration;

use crate::crdt::{HlcTimestamp, HybridClock};
use crate::error::{Result, TidalError};
use crate::event::{Event, EventBody, EventId, TenantId};
use crate::ledger::{Applied, Ledger, validate_weight};
use crate::schema::{EntityId, NodeId, SignalIdx, Timestamp};

/// A write as a client asks for it, before it has an id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClientOp {
    /// `ts = None` stamps the event with the node's current time.
    Signal {
        signal: SignalIdx,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
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

#[derive(Clone, Copy, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    pub tenant: TenantId,
    /// How far ahead of the local clock a remote HLC may be before it is refused.
    pub max_clock_drift: Duration,
    /// How far ahead of the node's clock a client-given event timestamp may be. Scores read
    /// before an event grow back exponentially, so an event dated years ahead would make
    /// its entity's score overflow; a little skew between machines is fine.
    pub max_future_skew: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: NodeId(0),
            tenant: TenantId::DEFAULT,
            max_clock_drift: HybridClock::DEFAULT_MAX_DRIFT,
            max_future_skew: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    clock: HybridClock,
    ledger: Ledger,
}

impl Node {
    /// A node over a (possibly recovered) ledger; `clock_floor` is the newest HLC in it.
    pub fn new(cfg: NodeConfig, ledger: Ledger, clock_floor: HlcTimestamp) -> Self {
        let mut clock = HybridClock::new(cfg.id, cfg.max_clock_drift);
        clock.observe(clock_floor);
        Node { cfg, clock, ledger }
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn clock(&self) -> HlcTimestamp {
        self.clock.last()
    }

    /// Validates a client write; on success the event is stamped, applied, and returned
    /// for the driver to persist. On error nothing has changed.
    #[inline]
    pub fn write(&mut self, now: Timestamp, op: ClientOp) -> Result<Event> {
        let body = self.admit(now, op)?;
        Ok(self.stamp_and_apply(now, body))
    }

    /// Validates every op first, then stamps and applies them all: a batch is written whole
    /// or not at all. Returns the events for the driver to persist.
    pub fn write_all(&mut self, now: Timestamp, ops: &[ClientOp]) -> Result<Vec<Event>> {
        let mut events = Vec::with_capacity(ops.len());
        let first_seq = self.ledger.version_vector().get(self.cfg.id) + 1;
        for (i, op) in ops.iter().enumerate() {
            let body = self.admit(now, *op)?;
            events.push(Event {
                id: EventId {
                    origin: self.cfg.id,
                    seq: first_seq + i as u64,
                },
                hlc: HlcTimestamp::default(),
                tenant: self.cfg.tenant,
                body,
            });
        }
        for e in &mut events {
            e.hlc = self.clock.now(now);
        }
        self.ledger.apply_batch(&events)?;
        Ok(events)
    }

    fn admit(&self, now: Timestamp, op: ClientOp) -> Result<EventBody> {
        Ok(match op {
            ClientOp::Signal {
                signal,
                entity,
                weight,
                ts,
            } => {
                self.ledger.schema().checked(signal)?;
                EventBody::Signal {
                    signal,
                    entity,
                    weight: validate_weight(weight)?,
                    ts: self.check_not_future(now, ts.unwrap_or(now))?,
                }
            }
            ClientOp::Hide { user, item } => EventBody::Hide { user, item },
            ClientOp::Unhide { user, item } => EventBody::Unhide { user, item },
        })
    }

    fn check_not_future(&self, now: Timestamp, ts: Timestamp) -> Result<Timestamp> {
        let ahead = ts.as_nanos() - now.as_nanos();
        let max = i64::try_from(self.cfg.max_future_skew.as_nanos()).unwrap_or(i64::MAX);
        if ahead > max {
            return Err(TidalError::TimestampInFuture {
                ts_ns: ts.as_nanos(),
                ahead_ns: ahead,
                max_skew_ns: max,
            });
        }
        Ok(ts)
    }

    #[inline]
    fn stamp_and_apply(&mut self, now: Timestamp, body: EventBody) -> Event {
        let seq = self.ledger.version_vector().get(self.cfg.id) + 1;
        let event = Event {
            id: EventId {
                origin: self.cfg.id,
                seq,
            },
            hlc: self.clock.now(now),
            tenant: self.cfg.tenant,
            body,
        };
        // Admission validated the body, and the seq is the next in order, so this applies.
        let _ = self.ledger.apply(&event);
        event
    }

    /// Applies an event from another replica (or a replay). Its HLC advances our clock, so
    /// that our later hides and unhides order after it.
    pub fn apply_remote(&mut self, now: Timestamp, event: &Event) -> Result<Applied> {
        if event.tenant != self.cfg.tenant {
            return Err(TidalError::InvalidArgument {
                name: "tenant",
                reason: format!(
                    "event of tenant {} sent to a node of tenant {}",
                    event.tenant, self.cfg.tenant
                ),
            });
        }
        self.clock.update(event.hlc, now)?;
        self.ledger.apply(event)
    }
}
