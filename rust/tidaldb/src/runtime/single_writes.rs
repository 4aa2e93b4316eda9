//! Writes of one event per call: a signal, a hide, an unhide. Each takes the database's
//! state for its one event; [`TidalDb::try_signal_at`] is the variant for a caller that
//! holds a lock of its own and must not wait for the state while it does.

use std::sync::{MutexGuard, TryLockError};

use super::TidalDb;
use super::db::{if_open, poisoned};
use super::state::State;
use crate::error::Result;
use crate::event::EventId;
use crate::node::ClientOp;
use crate::schema::{EntityId, SignalIdx, Timestamp};

impl TidalDb {
    /// Records one signal. `ts = None` means now. Returns the event's id once it is
    /// applied and, under `Durability::Immediate`, synced. A lone in-memory database
    /// returns once the write is admitted and applies it with later ones, before any other
    /// call reaches the database (see `staged.rs`), so every read still sees it.
    pub fn signal(
        &self,
        name: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
    ) -> Result<EventId> {
        self.signal_at(self.resolve(name)?, entity, weight, ts)
    }

    /// [`signal`](Self::signal) by the signal's index in the schema (see
    /// [`Schema::resolve`]), for callers that resolve a name once and write it many times.
    /// An index outside the schema is refused.
    pub fn signal_at(
        &self,
        signal: SignalIdx,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
    ) -> Result<EventId> {
        self.write(ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        })
    }

    /// Hides `item` from `user`'s retrievals until an unhide later in event time.
    /// `ts = None` stamps the hide with the current time; a backfilled hide passes the
    /// time it happened, so that it does not override a later unhide.
    pub fn hide_item(
        &self,
        user: EntityId,
        item: EntityId,
        ts: Option<Timestamp>,
    ) -> Result<EventId> {
        self.write(ClientOp::Hide { user, item, ts })
    }

    /// Undoes a hide that is earlier in event time (see [`hide_item`](Self::hide_item)).
    pub fn unhide_item(
        &self,
        user: EntityId,
        item: EntityId,
        ts: Option<Timestamp>,
    ) -> Result<EventId> {
        self.write(ClientOp::Unhide { user, item, ts })
    }

    /// [`signal_at`](Self::signal_at) for a caller that must not wait: `None`, having
    /// done nothing, when another thread holds the database. A binding that holds a
    /// lock of its own (an interpreter's) tries this first, and waits only after
    /// letting its lock go.
    pub fn try_signal_at(
        &self,
        signal: SignalIdx,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
    ) -> Option<Result<EventId>> {
        let st = match self.shared.state.try_lock() {
            Ok(st) => if_open(st),
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(_)) => Err(poisoned()),
        };
        let op = ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        };
        Some(st.and_then(|st| write_locked(st, op)))
    }

    fn write(&self, op: ClientOp) -> Result<EventId> {
        write_locked(self.lock_staged()?, op)
    }
}

/// One single write, with the state held: staged in a lone in-memory database, submitted
/// (after the staged ones) otherwise.
fn write_locked(mut st: MutexGuard<'_, State>, op: ClientOp) -> Result<EventId> {
    if st.writes_stay_in_memory() {
        return st.stage(op);
    }
    st.apply_staged()?;
    st.submit_local(&[op], None).map(|ack| ack.event_id())
}
