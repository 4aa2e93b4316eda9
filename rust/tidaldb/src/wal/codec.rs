//! The byte encoding of events inside a batch payload. Fixed-width little-endian fields:
//! the payload is checksummed as a whole, so the codec only has to be unambiguous.

use crate::crdt::{HideStamp, HlcTimestamp};
use crate::event::{
    CapKind, ClientTag, Event, EventBody, EventId, IdempotencyKey, SessionId, SessionSeqNo,
    TenantId,
};
use crate::schema::{EntityId, NodeId, SignalIdx, Timestamp};

const TAG_SIGNAL: u8 = 1;
/// Hides written before hides carried their own time; their HLC's wall clock stands in.
const TAG_HIDE_UNTIMED: u8 = 2;
const TAG_UNHIDE_UNTIMED: u8 = 3;
const TAG_HIDE: u8 = 4;
const TAG_UNHIDE: u8 = 5;
/// A signal whose origin claimed its entity (older records never did: [`TAG_SIGNAL`]).
const TAG_SIGNAL_CLAIM: u8 = 6;
const TAG_GRANT: u8 = 7;
const CAP_ENTITIES: u8 = 1;
const CAP_STORAGE: u8 = 2;
/// Or'ed into the record tag when a client tag follows the body.
const FLAG_CLIENT: u8 = 0x80;
const CLIENT_KEY: u8 = 1;
const CLIENT_SESSION: u8 = 2;

pub fn encode_event(e: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.id.origin.0.to_le_bytes());
    out.extend_from_slice(&e.id.seq.to_le_bytes());
    out.extend_from_slice(&e.hlc.wall_ns.to_le_bytes());
    out.extend_from_slice(&e.hlc.logical.to_le_bytes());
    out.extend_from_slice(&e.hlc.node_id.to_le_bytes());
    out.extend_from_slice(&e.tenant.0.to_le_bytes());
    let flag = if e.client.is_some() { FLAG_CLIENT } else { 0 };
    match e.body {
        EventBody::Signal {
            signal,
            entity,
            weight,
            ts,
            claims_entity,
        } => {
            let tag = if claims_entity {
                TAG_SIGNAL_CLAIM
            } else {
                TAG_SIGNAL
            };
            out.push(tag | flag);
            out.extend_from_slice(&signal.0.to_le_bytes());
            out.extend_from_slice(&entity.0.to_le_bytes());
            out.extend_from_slice(&weight.to_bits().to_le_bytes());
            out.extend_from_slice(&ts.as_nanos().to_le_bytes());
        }
        EventBody::Hide { user, item, ts } | EventBody::Unhide { user, item, ts } => {
            let tag = if matches!(e.body, EventBody::Hide { .. }) {
                TAG_HIDE
            } else {
                TAG_UNHIDE
            };
            out.push(tag | flag);
            out.extend_from_slice(&user.0.to_le_bytes());
            out.extend_from_slice(&item.0.to_le_bytes());
            out.extend_from_slice(&ts.as_nanos().to_le_bytes());
        }
        EventBody::Grant { kind, to, amount } => {
            out.push(TAG_GRANT | flag);
            out.push(match kind {
                CapKind::Entities => CAP_ENTITIES,
                CapKind::Storage => CAP_STORAGE,
            });
            out.extend_from_slice(&to.0.to_le_bytes());
            out.extend_from_slice(&amount.to_le_bytes());
        }
    }
    match e.client {
        None => {}
        Some(ClientTag::Key(key)) => {
            out.push(CLIENT_KEY);
            out.extend_from_slice(&key.0.to_le_bytes());
        }
        Some(ClientTag::Session { session, seq }) => {
            out.push(CLIENT_SESSION);
            out.extend_from_slice(&session.0.to_le_bytes());
            out.extend_from_slice(&seq.0.to_le_bytes());
        }
    }
}

/// Reads fields off the front of a byte slice; every read is bounds-checked.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.pos + N;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| format!("record truncated at payload byte {}", self.pos))?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

/// Decodes one event. An error is a description; the caller adds the file and offset.
pub fn decode_event(r: &mut Reader<'_>) -> Result<Event, String> {
    let origin = NodeId(r.u16()?);
    let seq = r.u64()?;
    let hlc = HlcTimestamp {
        wall_ns: r.u64()?,
        logical: r.u32()?,
        node_id: r.u16()?,
    };
    let tenant = TenantId(r.u64()?);
    let tag = r.u8()?;
    let body = match tag & !FLAG_CLIENT {
        TAG_SIGNAL | TAG_SIGNAL_CLAIM => {
            let signal = SignalIdx(r.u16()?);
            let entity = EntityId(r.u64()?);
            let weight = f64::from_bits(r.u64()?);
            let ts = Timestamp::from_nanos(r.u64()? as i64).map_err(|e| e.to_string())?;
            EventBody::Signal {
                signal,
                entity,
                weight,
                ts,
                claims_entity: tag & !FLAG_CLIENT == TAG_SIGNAL_CLAIM,
            }
        }
        TAG_GRANT => {
            let kind = match r.u8()? {
                CAP_ENTITIES => CapKind::Entities,
                CAP_STORAGE => CapKind::Storage,
                k => return Err(format!("unknown cap kind {k} in a grant")),
            };
            EventBody::Grant {
                kind,
                to: NodeId(r.u16()?),
                amount: r.u64()?,
            }
        }
        TAG_HIDE | TAG_HIDE_UNTIMED | TAG_UNHIDE | TAG_UNHIDE_UNTIMED => {
            let kind = tag & !FLAG_CLIENT;
            let user = EntityId(r.u64()?);
            let item = EntityId(r.u64()?);
            let ts = if kind == TAG_HIDE || kind == TAG_UNHIDE {
                Timestamp::from_nanos(r.u64()? as i64).map_err(|e| e.to_string())?
            } else {
                HideStamp::from_hlc(hlc).at
            };
            if kind == TAG_HIDE || kind == TAG_HIDE_UNTIMED {
                EventBody::Hide { user, item, ts }
            } else {
                EventBody::Unhide { user, item, ts }
            }
        }
        _ => return Err(format!("unknown record tag {tag}")),
    };
    let client = if tag & FLAG_CLIENT == 0 {
        None
    } else {
        Some(match r.u8()? {
            CLIENT_KEY => ClientTag::Key(IdempotencyKey(r.u64()?)),
            CLIENT_SESSION => ClientTag::Session {
                session: SessionId(r.u64()?),
                seq: SessionSeqNo(r.u64()?),
            },
            kind => return Err(format!("unknown client tag kind {kind}")),
        })
    };
    Ok(Event {
        id: EventId { origin, seq },
        hlc,
        tenant,
        body,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hide(ts_ns: i64) -> Event {
        Event {
            id: EventId {
                origin: NodeId(3),
                seq: 9,
            },
            hlc: HlcTimestamp {
                wall_ns: 5_000,
                logical: 2,
                node_id: 3,
            },
            tenant: TenantId(4),
            body: EventBody::Unhide {
                user: EntityId(11),
                item: EntityId(12),
                ts: Timestamp::from_nanos(ts_ns).unwrap(),
            },
            client: Some(ClientTag::Key(IdempotencyKey(77))),
        }
    }

    #[test]
    fn claiming_signals_and_grants_round_trip() {
        for body in [
            EventBody::Signal {
                signal: SignalIdx(1),
                entity: EntityId(8),
                weight: 2.5,
                ts: Timestamp::from_nanos(77).unwrap(),
                claims_entity: true,
            },
            EventBody::Grant {
                kind: CapKind::Storage,
                to: NodeId(4),
                amount: 1 << 40,
            },
            EventBody::Grant {
                kind: CapKind::Entities,
                to: NodeId(2),
                amount: 3,
            },
        ] {
            assert_round_trips(&Event { body, ..hide(1) });
        }
    }

    /// Decoding the encoding gives the event back, and consumes every byte.
    fn assert_round_trips(event: &Event) {
        let mut bytes = Vec::new();
        encode_event(event, &mut bytes);
        let mut r = Reader::new(&bytes);
        assert_eq!(&decode_event(&mut r).unwrap(), event);
        assert!(r.is_empty());
    }

    #[test]
    fn a_timed_hide_round_trips() {
        assert_round_trips(&hide(1_234));
    }

    /// A record written before hides carried their time: the untimed tag, no time field.
    /// Its HLC wall clock stands in for the time.
    #[test]
    fn an_untimed_hide_reads_with_its_clock_as_its_time() {
        let event = hide(1_234);
        let mut bytes = Vec::new();
        encode_event(&event, &mut bytes);
        let tag_at = 2 + 8 + 8 + 4 + 2 + 8;
        assert_eq!(bytes[tag_at], TAG_UNHIDE | FLAG_CLIENT);
        bytes[tag_at] = TAG_UNHIDE_UNTIMED | FLAG_CLIENT;
        let time_at = tag_at + 1 + 16;
        bytes.drain(time_at..time_at + 8);
        let decoded = decode_event(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(decoded, hide(5_000), "the time is the HLC's wall clock");
    }
}
