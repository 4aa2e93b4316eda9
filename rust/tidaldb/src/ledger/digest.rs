//! A digest of a ledger's materialized state, for comparing replicas without copying them.
//!
//! Each entry of the state (a signal's state for one entity, one hide register, one
//! remembered client key or session) is encoded whole, hashed on its own, and the hashes
//! are added with wrapping arithmetic. Addition does not depend on order, so two ledgers
//! that hold the same entries give the same digest whatever order their hash maps iterate
//! in, and an entry that differs in any bit changes its hash, and so the sum, with
//! overwhelming probability.

use serde::Serialize;

use super::Ledger;
use crate::event::CapKind;

/// Entry kinds, hashed into each entry so that equal bytes of two kinds never cancel.
const SIGNAL: u8 = 0;
const HIDE: u8 = 1;
const KEY: u8 = 2;
const SESSION: u8 = 3;
const TRANSFER: u8 = 4;
const CONSUMED: u8 = 5;

/// The sum of the entries' hashes, with a buffer reused to encode each entry.
#[derive(Default)]
struct Sum {
    total: u64,
    buf: Vec<u8>,
}

impl Sum {
    fn add(&mut self, entry: &impl Serialize) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let h = match postcard::to_extend(entry, buf) {
            Ok(bytes) => {
                let h = hash_bytes(&bytes);
                self.buf = bytes;
                h
            }
            // The state's types always encode; were one not to, both replicas would fail
            // alike, so a fixed stand-in keeps the digest deterministic.
            Err(_) => hash_bytes(b"unencodable"),
        };
        self.total = self.total.wrapping_add(h);
    }
}

/// MurmurHash3's 64-bit finalizer: a bijection whose every input bit flips about half of
/// the output bits.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A 64-bit hash of `bytes`: eight bytes at a time, each word folded in through `mix`, so
/// that a change to any one word changes the running state, and the length last.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word)).wrapping_add(0x632b_e59b_d9b4_e019);
    }
    mix(h ^ bytes.len() as u64)
}

impl Ledger {
    /// An order-independent digest of the materialized state: every signal's decay state
    /// (per-origin partials, bit for bit) and window buckets per entity, every hide
    /// register, every remembered idempotency key and session, and the hard caps' rights
    /// (transfers and consumption per replica). Two ledgers that
    /// applied the same set of events give the same digest, in whatever order they applied
    /// them; ledgers whose states differ give different digests with overwhelming
    /// probability. The version vector is not part of it: compare that on its own.
    ///
    /// It walks the whole state, so compare cheaper things first.
    pub fn state_digest(&self) -> u64 {
        let mut sum = Sum::default();
        for (signal, ledger) in self.signal_ledgers().iter().enumerate() {
            let parts = ledger.parts();
            for (slot, entity) in parts.keys.iter().enumerate() {
                let windows = parts.window_sets.get(slot);
                let entry = (SIGNAL, signal as u32, entity);
                match (parts.exp.get(slot), parts.linear.get(slot)) {
                    (Some(state), _) => sum.add(&(entry, state, windows)),
                    (None, Some(state)) => sum.add(&(entry, state, windows)),
                    (None, None) => sum.add(&(entry, windows)),
                }
            }
        }
        for (user, item, register) in self.hidden().registers() {
            sum.add(&(HIDE, user, item, register));
        }
        for (key, first) in self.clients().key_entries() {
            sum.add(&(KEY, key, first));
        }
        for (session, seq, id) in self.clients().session_entries() {
            sum.add(&(SESSION, session, seq, id));
        }
        for kind in [CapKind::Entities, CapKind::Storage] {
            let counter = self.escrow().counter(kind);
            for (pair, n) in counter.transfers() {
                sum.add(&(TRANSFER, kind, pair, n));
            }
            for (node, n) in counter.consumption() {
                sum.add(&(CONSUMED, kind, node, n));
            }
        }
        sum.total
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::crdt::HlcTimestamp;
    use crate::event::{ClientTag, Event, EventBody, EventId, IdempotencyKey, SessionId};
    use crate::event::{SessionSeqNo, TenantId};
    use crate::schema::{DecaySpec, EntityId, EntityKind, NodeId, Schema, SignalIdx};
    use crate::schema::{Timestamp, Window};

    fn schema() -> Arc<Schema> {
        let exp = DecaySpec::Exponential {
            half_life: Duration::from_secs(3600),
        };
        let linear = DecaySpec::Linear {
            lifetime: Duration::from_secs(86_400),
        };
        Arc::new(
            Schema::builder()
                .signal("view", EntityKind::Item, exp)
                .windows(&[Window::OneHour, Window::TwentyFourHours])
                .add()
                .signal("like", EntityKind::Item, linear)
                .add()
                .build()
                .expect("a valid schema"),
        )
    }

    /// Event `seq` of `origin`: mostly signals on both signals, some late, with hides,
    /// unhides, idempotency keys and sessions among them.
    fn event(origin: u16, seq: u64) -> Event {
        let n = u64::from(origin) * 1_000 + seq;
        let ts = 1_000_000_000_000 + ((n * 7_919) % 10_000) as i64 * 1_000_000_000;
        let at = Timestamp::from_nanos(ts).expect("a valid timestamp");
        let body = match n % 7 {
            5 => EventBody::Hide {
                user: EntityId(n % 3),
                item: EntityId(n % 11),
                ts: at,
            },
            6 => EventBody::Unhide {
                user: EntityId(n % 3),
                item: EntityId(n % 11),
                ts: at,
            },
            k => EventBody::Signal {
                signal: SignalIdx((k % 2) as u16),
                entity: EntityId(n % 13),
                weight: 0.25 + (n % 5) as f64,
                ts: Timestamp::from_nanos(ts).expect("a valid timestamp"),
                claims_entity: n.is_multiple_of(3),
            },
        };
        let client = match n % 4 {
            1 => Some(ClientTag::Key(IdempotencyKey(n))),
            2 => Some(ClientTag::Session {
                session: SessionId(u64::from(origin)),
                seq: SessionSeqNo(seq),
            }),
            _ => None,
        };
        Event {
            id: EventId {
                origin: NodeId(origin),
                seq,
            },
            hlc: HlcTimestamp {
                wall_ns: ts as u64,
                logical: 0,
                node_id: origin,
            },
            tenant: TenantId::DEFAULT,
            body,
            client,
        }
    }

    fn events() -> Vec<Event> {
        (1..=3u16)
            .flat_map(|origin| (1..=40).map(move |seq| event(origin, seq)))
            .collect()
    }

    /// A ledger that applied `events` in the order given; out-of-order seqs wait for
    /// their gaps, so every permutation applies the whole set.
    fn applied(events: &[Event]) -> Ledger {
        let mut ledger = Ledger::new(schema());
        for e in events {
            ledger.apply(e).expect("a valid event");
        }
        assert_eq!(ledger.pending_len(), 0, "every gap filled");
        ledger
    }

    /// `events` shuffled by a fixed seed (a Fisher-Yates over an LCG).
    fn shuffled(mut events: Vec<Event>, seed: u64) -> Vec<Event> {
        let mut x = seed;
        for i in (1..events.len()).rev() {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            events.swap(i, (x >> 33) as usize % (i + 1));
        }
        events
    }

    #[test]
    fn the_same_events_in_any_order_give_the_same_digest() {
        let reference = applied(&events()).state_digest();
        assert_ne!(reference, Ledger::new(schema()).state_digest());
        let mut reversed = events();
        reversed.reverse();
        assert_eq!(applied(&reversed).state_digest(), reference);
        for seed in 1..20 {
            let order = shuffled(events(), seed);
            assert_eq!(applied(&order).state_digest(), reference, "seed {seed}");
        }
    }

    #[test]
    fn one_differing_event_changes_the_digest() {
        let reference = applied(&events()).state_digest();
        let last = events().len() - 1;
        let with = |change: &dyn Fn(&mut Event)| {
            let mut evs = events();
            change(&mut evs[last]);
            applied(&evs).state_digest()
        };
        // The smallest change of the weight that reaches the stored state: a score that
        // differs in its last bit.
        let EventBody::Signal { entity, weight, .. } = events()[last].body else {
            panic!("the changed event is a signal");
        };
        let at = Timestamp::from_nanos(11_000_000_000_000).expect("a valid timestamp");
        let score = |l: &Ledger| l.decay_score(SignalIdx(0), entity, at).expect("a score");
        let reference_score = score(&applied(&events()));
        assert!(reference_score > 0.0, "read where the score is not 0");
        let mut bits = weight.to_bits();
        let weight_bit = loop {
            bits += 1;
            assert!(
                bits < weight.to_bits() + (1 << 20),
                "some weight changes the score"
            );
            let mut evs = events();
            if let EventBody::Signal { weight, .. } = &mut evs[last].body {
                *weight = f64::from_bits(bits);
            }
            let changed = applied(&evs);
            if score(&changed).to_bits() != reference_score.to_bits() {
                break changed.state_digest();
            }
        };
        let ts_ns = with(&|e| {
            if let EventBody::Signal { ts, .. } = &mut e.body {
                *ts = Timestamp::from_nanos(ts.as_nanos() + 1).expect("a valid timestamp");
            }
        });
        let entity = with(&|e| {
            if let EventBody::Signal { entity, .. } = &mut e.body {
                entity.0 += 100;
            }
        });
        let hide_at = |ns: i64| {
            with(&|e| {
                e.body = EventBody::Hide {
                    user: EntityId(7),
                    item: EntityId(7),
                    ts: Timestamp::from_nanos(ns).expect("a valid timestamp"),
                }
            })
        };
        let (hide, hide_later) = (hide_at(5), hide_at(6));
        let key = with(&|e| e.client = Some(ClientTag::Key(IdempotencyKey(u64::MAX))));
        let digests = [reference, weight_bit, ts_ns, entity, hide, hide_later, key];
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b, "digests {digests:x?}");
            }
        }

        let mut missing = events();
        missing.pop();
        assert_ne!(applied(&missing).state_digest(), reference);
    }
}
