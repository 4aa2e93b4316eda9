//! Walking a segment batch by batch and reporting every damaged spot, for `tidaldb
//! verify`.
//!
//! Recovery ([`scan_segment`](super::scan_segment)) stops at the first damage, since it
//! must not replay past a hole. An operator checking a directory wants the whole picture
//! instead: every damaged batch, each with its byte offset, and whether recovery would
//! cut it as the torn tail of an interrupted append or refuse it as corruption. The walk
//! uses the same batch parser and the same torn-tail rule as recovery, so the two never
//! disagree about what is damaged; after damage it resynchronises at the next batch that
//! parses whole, and carries on.

use super::header::{BatchHeader, HEADER_LEN, MAGIC};
use super::segment::{a_later_group_follows, parse_batch};

/// One step of a walk through a segment's bytes.
#[derive(Debug)]
pub enum Walked {
    /// A whole batch: header and payload checksums pass and every record decodes.
    Batch {
        offset: u64,
        header: BatchHeader,
        records: u64,
    },
    /// Damage that recovery refuses: bytes that were synced and are now wrong.
    Corruption { offset: u64, detail: String },
    /// The end of the last segment from `offset` on: an append the crash interrupted
    /// (nothing synced later follows it), which recovery cuts off. `bytes` long.
    TornTail {
        offset: u64,
        bytes: u64,
        detail: String,
    },
}

/// A commit group whose last batch has not been seen yet.
struct OpenGroup {
    first_seq: u64,
    first_offset: usize,
    last_offset: usize,
}

/// Walks the bytes of a segment whose name says its first record is `first_seq`.
/// `is_last` says whether it is its log's last segment, the only one that may end in a
/// torn tail. Every step comes back in file order; nothing here can panic on any input.
pub fn walk_segment(bytes: &[u8], first_seq: u64, is_last: bool) -> Vec<Walked> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut expected = first_seq;
    // Set after damage: the damaged batch's record count is unknown, so the next whole
    // batch's position cannot be checked against it.
    let mut resynced = false;
    let mut open: Option<OpenGroup> = None;
    while at < bytes.len() {
        let damage = match parse_batch(bytes, at) {
            Ok(batch) => {
                let h = batch.header;
                if let Some(g) = open.take_if(|g| g.first_seq != h.group_first) {
                    out.push(unfinished_group(&g, "a later group follows"));
                }
                if h.first_seq != expected && !resynced {
                    out.push(Walked::Corruption {
                        offset: at as u64,
                        detail: format!(
                            "expected log seq {expected}, found {}: records are missing",
                            h.first_seq
                        ),
                    });
                }
                resynced = false;
                let records = batch.events.len() as u64;
                expected = h.first_seq.saturating_add(records);
                open = match open {
                    _ if h.ends_group() => None,
                    Some(g) => Some(OpenGroup {
                        last_offset: at,
                        ..g
                    }),
                    None => Some(OpenGroup {
                        first_seq: h.group_first,
                        first_offset: at,
                        last_offset: at,
                    }),
                };
                out.push(Walked::Batch {
                    offset: at as u64,
                    header: h,
                    records,
                });
                at += HEADER_LEN + h.payload_len as usize;
                continue;
            }
            Err(damage) => damage,
        };
        if is_last && damage.can_be_torn() && !a_later_group_follows(bytes, at + 1, expected) {
            // Recovery cuts an unfinished group whole, so the tail starts with it.
            let (start, what) = match open.take() {
                Some(g) => (
                    g.first_offset,
                    "an unfinished commit group and the torn bytes after it",
                ),
                None => (at, "the bytes of an interrupted append"),
            };
            let (_, detail) = damage.describe(at);
            out.push(torn_tail(bytes, start, format!("{what} ({detail})")));
            return out;
        }
        let (offset, detail) = damage.describe(at);
        let detail = if is_last {
            format!("{detail}; a later commit group follows, so this is not a torn write")
        } else {
            detail
        };
        out.push(Walked::Corruption {
            offset: offset as u64,
            detail,
        });
        // The damaged batch's length cannot be trusted: carry on at the next batch that
        // parses whole, or stop if none does.
        match next_whole_batch(bytes, at + 1) {
            Some(next) => {
                at = next;
                resynced = true;
            }
            None => return out,
        }
    }
    if let Some(g) = open {
        out.push(if is_last {
            torn_tail(
                bytes,
                g.first_offset,
                format!(
                    "the commit group starting at seq {} ends without its last batch \
                     (it was never acknowledged)",
                    g.first_seq
                ),
            )
        } else {
            unfinished_group(&g, "a later segment follows")
        });
    }
    out
}

fn torn_tail(bytes: &[u8], start: usize, detail: String) -> Walked {
    Walked::TornTail {
        offset: start as u64,
        bytes: bytes.len().saturating_sub(start) as u64,
        detail,
    }
}

fn unfinished_group(g: &OpenGroup, yet: &str) -> Walked {
    Walked::Corruption {
        offset: g.last_offset as u64,
        detail: format!(
            "the commit group starting at seq {} ends without its last batch, yet {yet}",
            g.first_seq
        ),
    }
}

/// The offset of the first batch at or after `from` that parses whole.
fn next_whole_batch(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(found) = bytes
        .get(at..)
        .and_then(|rest| rest.windows(MAGIC.len()).position(|w| w == MAGIC))
    {
        let candidate = at + found;
        if parse_batch(bytes, candidate).is_ok() {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::HlcTimestamp;
    use crate::event::{Event, EventBody, EventId, TenantId};
    use crate::schema::{EntityId, NodeId, RegionId, ShardId, SignalIdx, Timestamp};
    use crate::wal::encode_event;
    use crate::wal::header::LogMark;

    fn event(seq: u64) -> Event {
        Event {
            id: EventId {
                origin: NodeId(1),
                seq,
            },
            hlc: HlcTimestamp::default(),
            tenant: TenantId::DEFAULT,
            body: EventBody::Signal {
                claims_entity: false,
                signal: SignalIdx(0),
                entity: EntityId(seq),
                weight: 1.0,
                ts: Timestamp::EPOCH,
            },
            client: None,
        }
    }

    /// One batch of `n` events from `first`, ending its own group unless `open`.
    fn batch(first: u64, n: u64, open: bool) -> Vec<u8> {
        let mut payload = Vec::new();
        for seq in first..first + n {
            encode_event(&event(seq), &mut payload);
        }
        let mark = LogMark {
            group_first: first,
            ends_group: !open,
            schema: 7,
        };
        let place = (ShardId(0), RegionId(0));
        let h = BatchHeader::seal_logged(first, n as u32, mark, &payload, 0, place);
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&payload);
        bytes
    }

    fn damage(walked: &[Walked]) -> Vec<(&'static str, u64)> {
        walked
            .iter()
            .filter_map(|w| match w {
                Walked::Batch { .. } => None,
                Walked::Corruption { offset, .. } => Some(("corruption", *offset)),
                Walked::TornTail { offset, .. } => Some(("torn", *offset)),
            })
            .collect()
    }

    #[test]
    fn a_flipped_byte_mid_segment_is_corruption_and_the_walk_goes_on() {
        let (a, b, c) = (batch(1, 2, false), batch(3, 2, false), batch(5, 1, false));
        let mut bytes = [a.clone(), b.clone(), c].concat();
        let flipped = a.len() + HEADER_LEN + 5;
        bytes[flipped] ^= 0x40;
        let walked = walk_segment(&bytes, 1, true);
        assert_eq!(damage(&walked), vec![("corruption", a.len() as u64)]);
        let batches = walked
            .iter()
            .filter(|w| matches!(w, Walked::Batch { .. }))
            .count();
        assert_eq!(batches, 2, "the batches either side still count");
    }

    #[test]
    fn a_cut_last_batch_is_a_torn_tail_only_in_the_last_segment() {
        let (a, b) = (batch(1, 2, false), batch(3, 2, false));
        let bytes = [a.clone(), b[..b.len() - 3].to_vec()].concat();
        assert_eq!(
            damage(&walk_segment(&bytes, 1, true)),
            vec![("torn", a.len() as u64)]
        );
        assert_eq!(
            damage(&walk_segment(&bytes, 1, false)),
            vec![("corruption", a.len() as u64)]
        );
    }

    #[test]
    fn an_unfinished_group_is_torn_at_its_first_batch() {
        let (a, b) = (batch(1, 1, false), batch(2, 1, true));
        let bytes = [a.clone(), b].concat();
        assert_eq!(
            damage(&walk_segment(&bytes, 1, true)),
            vec![("torn", a.len() as u64)]
        );
    }

    #[test]
    fn no_input_panics() {
        let whole = [batch(1, 3, false), batch(4, 2, false)].concat();
        for cut in 0..whole.len() {
            walk_segment(&whole[..cut], 1, true);
            walk_segment(&whole[cut..], 1, false);
        }
        for at in 0..whole.len() {
            let mut bytes = whole.clone();
            bytes[at] ^= 0xff;
            assert!(!damage(&walk_segment(&bytes, 1, false)).is_empty(), "{at}");
        }
        assert!(walk_segment(&[], 1, true).is_empty());
    }
}
