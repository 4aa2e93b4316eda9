//! A batch of events as bytes on the wire: the same 64-byte BatchHeader v2 and record codec
//! as the log, so a replica verifies what it receives exactly as recovery verifies a segment.

use super::codec::{Reader, decode_event, encode_event};
use super::header::{BatchHeader, HEADER_LEN};
use crate::error::{Result, TidalError};
use crate::event::Event;
use crate::schema::{RegionId, ShardId};

/// Encodes `events` behind a sealed header. `first_seq` in the header is the first event's
/// seq within its origin; the events of one frame need not share an origin.
pub fn encode_frame(events: &[Event], shard: ShardId, region: RegionId, now_ns: u64) -> Vec<u8> {
    let mut payload = Vec::with_capacity(events.len() * 56);
    for e in events {
        encode_event(e, &mut payload);
    }
    let first = events.first().map_or(0, |e| e.id.seq);
    let header = BatchHeader::seal(
        first,
        events.len() as u32,
        first,
        &payload,
        now_ns,
        shard,
        region,
    );
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&header.encode());
    bytes.extend_from_slice(&payload);
    bytes
}

/// Verifies and decodes a frame. Any damage is `Corruption`: a replica never applies bytes
/// it cannot vouch for, and the sender retransmits.
pub fn decode_frame(bytes: &[u8]) -> Result<(BatchHeader, Vec<Event>)> {
    let damaged = |offset: usize, detail: String| TidalError::Corruption {
        path: "<replication frame>".into(),
        offset: offset as u64,
        detail,
    };
    let head = bytes
        .first_chunk::<HEADER_LEN>()
        .ok_or_else(|| damaged(0, format!("{} bytes is shorter than a header", bytes.len())))?;
    let header =
        BatchHeader::decode(head).map_err(|e| damaged(0, format!("bad batch header: {e:?}")))?;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != header.payload_len as usize {
        return Err(damaged(
            28,
            format!(
                "the header promises {} payload bytes, the frame has {}",
                header.payload_len,
                payload.len()
            ),
        ));
    }
    if header.compute_checksum(payload) != header.checksum {
        return Err(damaged(40, "checksum mismatch".into()));
    }
    let mut reader = Reader::new(payload);
    let mut events = Vec::with_capacity(header.event_count as usize);
    while !reader.is_empty() {
        let at = HEADER_LEN + reader.pos;
        events.push(decode_event(&mut reader).map_err(|d| damaged(at, d))?);
    }
    if events.len() != header.event_count as usize {
        return Err(damaged(
            24,
            format!(
                "the header promises {} events, the payload holds {}",
                header.event_count,
                events.len()
            ),
        ));
    }
    Ok((header, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::HlcTimestamp;
    use crate::event::{ClientTag, EventBody, EventId, IdempotencyKey, TenantId};
    use crate::schema::{EntityId, NodeId, SignalIdx, Timestamp};

    fn events() -> Vec<Event> {
        (1..=3)
            .map(|seq| Event {
                id: EventId {
                    origin: NodeId(2),
                    seq,
                },
                hlc: HlcTimestamp {
                    wall_ns: seq * 10,
                    logical: 0,
                    node_id: 2,
                },
                tenant: TenantId(9),
                body: EventBody::Signal {
                    claims_entity: false,
                    signal: SignalIdx(0),
                    entity: EntityId(seq),
                    weight: 1.5,
                    ts: Timestamp::from_nanos(seq as i64).unwrap(),
                },
                client: (seq == 2).then_some(ClientTag::Key(IdempotencyKey(77))),
            })
            .collect()
    }

    #[test]
    fn round_trips_with_shard_and_region_and_refuses_any_flipped_bit() {
        let bytes = encode_frame(&events(), ShardId(3), RegionId(1), 5);
        let (header, decoded) = decode_frame(&bytes).unwrap();
        assert_eq!(decoded, events());
        assert_eq!((header.shard, header.region), (ShardId(3), RegionId(1)));
        for byte in (0..bytes.len()).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[byte] ^= 0x10;
            assert!(decode_frame(&damaged).is_err(), "flip at byte {byte}");
        }
        assert!(decode_frame(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_frame(&bytes[..10]).is_err());
    }
}
