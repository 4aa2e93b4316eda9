//! What the replica remembers about client-named writes: the idempotency store and the
//! session high-water marks. Both are derived from applied events (the tag travels inside
//! the event), so a write retried on another replica after a failover is recognised there.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::event::{ClientTag, EventId, IdempotencyKey, SessionId, SessionSeqNo};

/// Keys and sessions remembered at most, each; the oldest is forgotten first. A retry that
/// arrives after a million newer keys is applied again, which is the bound's documented cost.
pub const DEFAULT_CLIENT_CAPACITY: usize = 1 << 20;

/// A bounded map from idempotency key to the event that first carried it. Eviction is
/// first-in first-out by the order keys were applied on this replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyStore {
    capacity: usize,
    by_key: FxHashMap<IdempotencyKey, EventId>,
    order: VecDeque<IdempotencyKey>,
}

impl IdempotencyStore {
    pub fn with_capacity(capacity: usize) -> Self {
        IdempotencyStore {
            capacity: capacity.max(1),
            by_key: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, key: IdempotencyKey) -> Option<EventId> {
        self.by_key.get(&key).copied()
    }

    /// Remembers the earliest event (by id) that carried `key`. Two replicas may each have
    /// applied a write of the same key before hearing of the other's; keeping the least id,
    /// not the first one applied, makes every replica that applied both remember the same.
    pub fn record(&mut self, key: IdempotencyKey, id: EventId) {
        if let Some(first) = self.by_key.get_mut(&key) {
            *first = (*first).min(id);
            return;
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_key.remove(&oldest);
        }
        self.by_key.insert(key, id);
        self.order.push_back(key);
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn is_well_formed(&self) -> bool {
        self.order.len() == self.by_key.len()
            && self.order.len() <= self.capacity
            && self.order.iter().all(|k| self.by_key.contains_key(k))
    }
}

/// The client-side dedup state of one tenant on one replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientTable {
    keys: IdempotencyStore,
    /// The highest seq applied per session, with the event that carried it.
    sessions: FxHashMap<SessionId, (SessionSeqNo, EventId)>,
    session_order: VecDeque<SessionId>,
}

impl Default for ClientTable {
    fn default() -> Self {
        ClientTable::with_capacity(DEFAULT_CLIENT_CAPACITY)
    }
}

impl ClientTable {
    pub fn with_capacity(capacity: usize) -> Self {
        ClientTable {
            keys: IdempotencyStore::with_capacity(capacity),
            sessions: FxHashMap::default(),
            session_order: VecDeque::new(),
        }
    }

    /// The event that already carries this write, if the write was applied before.
    pub fn already_applied(&self, tag: ClientTag) -> Option<EventId> {
        match tag {
            ClientTag::Key(key) => self.keys.get(key),
            ClientTag::Session { session, seq } => self
                .sessions
                .get(&session)
                .filter(|(high, _)| seq <= *high)
                .map(|(_, id)| *id),
        }
    }

    pub fn record(&mut self, tag: ClientTag, id: EventId) {
        match tag {
            ClientTag::Key(key) => self.keys.record(key, id),
            ClientTag::Session { session, seq } => {
                if let Some(entry) = self.sessions.get_mut(&session) {
                    // The highest seq, and for equal seqs the least id: the same whatever
                    // order the events were applied in.
                    if seq > entry.0 || (seq == entry.0 && id < entry.1) {
                        *entry = (seq, id);
                    }
                    return;
                }
                if self.session_order.len() >= self.keys.capacity
                    && let Some(oldest) = self.session_order.pop_front()
                {
                    self.sessions.remove(&oldest);
                }
                self.sessions.insert(session, (seq, id));
                self.session_order.push_back(session);
            }
        }
    }

    /// The session's high-water mark: every seq at or below it has been applied.
    pub fn session_high_water(&self, session: SessionId) -> Option<SessionSeqNo> {
        self.sessions.get(&session).map(|(seq, _)| *seq)
    }

    pub fn keys(&self) -> &IdempotencyStore {
        &self.keys
    }

    /// Every remembered key with the event that first carried it, in no particular order.
    pub fn key_entries(&self) -> impl Iterator<Item = (IdempotencyKey, EventId)> + '_ {
        self.keys.by_key.iter().map(|(k, id)| (*k, *id))
    }

    /// Every session's high-water mark with the event that carried it, in no particular
    /// order.
    pub fn session_entries(&self) -> impl Iterator<Item = (SessionId, SessionSeqNo, EventId)> + '_ {
        self.sessions.iter().map(|(s, (seq, id))| (*s, *seq, *id))
    }

    /// Checks what `record` maintains, for a table read back from a snapshot.
    pub fn is_well_formed(&self) -> bool {
        self.keys.is_well_formed()
            && self.session_order.len() == self.sessions.len()
            && self
                .session_order
                .iter()
                .all(|s| self.sessions.contains_key(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::NodeId;

    fn id(seq: u64) -> EventId {
        EventId {
            origin: NodeId(1),
            seq,
        }
    }

    #[test]
    fn a_key_is_remembered_with_its_first_event_until_evicted() {
        let mut t = ClientTable::with_capacity(2);
        let k = |n| ClientTag::Key(IdempotencyKey(n));
        t.record(k(7), id(1));
        t.record(k(7), id(2));
        assert_eq!(t.already_applied(k(7)), Some(id(1)));
        t.record(k(8), id(3));
        t.record(k(9), id(4));
        assert_eq!(t.already_applied(k(7)), None, "the oldest key is evicted");
        assert_eq!(t.already_applied(k(9)), Some(id(4)));
        assert_eq!(t.keys().len(), 2);
        assert!(t.is_well_formed());
    }

    #[test]
    fn two_events_of_one_key_or_session_seq_are_remembered_alike_in_either_order() {
        let other = EventId {
            origin: NodeId(2),
            seq: 1,
        };
        let key = ClientTag::Key(IdempotencyKey(7));
        let session = ClientTag::Session {
            session: SessionId(5),
            seq: SessionSeqNo(3),
        };
        let mut a = ClientTable::default();
        let mut b = ClientTable::default();
        for tag in [key, session] {
            a.record(tag, id(9));
            a.record(tag, other);
            b.record(tag, other);
            b.record(tag, id(9));
            assert_eq!(a.already_applied(tag), Some(id(9)), "the least id");
            assert_eq!(b.already_applied(tag), Some(id(9)), "the least id");
        }
        assert_eq!(a, b);
    }

    #[test]
    fn a_session_seq_at_or_below_the_high_water_mark_is_a_retry() {
        let mut t = ClientTable::default();
        let s = |seq| ClientTag::Session {
            session: SessionId(5),
            seq: SessionSeqNo(seq),
        };
        t.record(s(3), id(10));
        t.record(s(2), id(11));
        assert_eq!(t.session_high_water(SessionId(5)), Some(SessionSeqNo(3)));
        assert_eq!(t.already_applied(s(1)), Some(id(10)));
        assert_eq!(t.already_applied(s(3)), Some(id(10)));
        assert_eq!(t.already_applied(s(4)), None);
    }
}
