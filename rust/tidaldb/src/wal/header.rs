//! The 64-byte batch header, format v3.
//!
//! ```text
//! offset size field
//!      0    4 magic "TIDA"
//!      4    2 format version (3 in the log, 2 on the wire; 1 reads as 2 with shard 0 / region 0)
//!      6    2 flags (v3): bit 0 set on the last batch of a commit group; zero before v3
//!      8    8 first seq (log sequence number of the first record)
//!     16    8 last seq
//!     24    4 event count
//!     28    4 payload length in bytes
//!     32    8 timestamp (ns since the epoch, when the batch was written)
//!     40    4 crc32c of the header (bytes 40..48 zeroed) followed by the payload
//!     44    4 crc32c of the header alone (bytes 44..48 zeroed); zero in v1
//!     48    8 first seq of the commit group the batch was synced with (zero in v1)
//!     56    4 schema fingerprint (v3): crc32c of the schema the events were written under
//!     60    2 shard id   (zero in v1)
//!     62    2 region id  (zero in v1)
//! ```
//! All integers are little-endian. The header's own checksum means a damaged length field
//! is detected before it is trusted. The commit group tells recovery whether damage can be
//! an interrupted append: only the last group, the one not yet synced, can be torn. The
//! flag on a group's last batch tells recovery the group is whole, so a group whose last
//! batch never reached the disk is cut as a whole, like a torn one. Versions 1 and 2 carry
//! neither flag nor fingerprint: each of their batches counts as ending its group, and no
//! schema is checked, which is what those versions promised.
//!
//! Replication frames keep version 2 ([`WIRE_VERSION`]), so that replicas of the previous
//! release still read them during a rolling upgrade.

use crate::schema::{RegionId, ShardId};

pub const HEADER_LEN: usize = 64;
pub const MAGIC: [u8; 4] = *b"TIDA";
/// The version the log is written in.
pub const FORMAT_VERSION: u16 = 3;
/// The version replication frames are written in: they need neither the group flag nor
/// the schema fingerprint, and older replicas read it.
pub const WIRE_VERSION: u16 = 2;
/// The first version whose headers carry the checksum of the header alone.
const HEADER_CHECKSUM_SINCE: u16 = 2;
/// Set in `flags` on the last batch of a commit group.
const ENDS_GROUP: u16 = 1;
const CHECKSUM_AT: usize = 40;
const HEADER_CHECKSUM_AT: usize = 44;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub version: u16,
    pub first_seq: u64,
    pub last_seq: u64,
    pub event_count: u32,
    pub payload_len: u32,
    pub timestamp_ns: u64,
    pub checksum: u32,
    /// The first seq of the group of batches written and synced together.
    pub group_first: u64,
    /// Bit 0: the last batch of its commit group (v3; zero before).
    pub flags: u16,
    /// crc32c of the schema the events were written under (v3; zero before).
    pub schema_fingerprint: u32,
    pub shard: ShardId,
    pub region: RegionId,
}

/// Why 64 bytes did not parse as a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    BadMagic,
    UnknownVersion(u16),
    BadHeaderChecksum,
}

fn u16_at(b: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn header_checksum(b: &[u8; HEADER_LEN]) -> u32 {
    let mut zeroed = *b;
    zeroed[HEADER_CHECKSUM_AT..HEADER_CHECKSUM_AT + 4].fill(0);
    crc32c::crc32c(&zeroed)
}

/// Where a logged batch sits in its commit group, and the schema its events belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogMark {
    /// The first seq of the commit group.
    pub group_first: u64,
    /// The batch is the group's last: once it is on disk, the whole group is.
    pub ends_group: bool,
    /// See [`schema_fingerprint`](super::schema_fingerprint).
    pub schema: u32,
}

impl BatchHeader {
    /// The header bytes without either checksum field.
    fn encode_fields(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.last_seq.to_le_bytes());
        b[24..28].copy_from_slice(&self.event_count.to_le_bytes());
        b[28..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b[48..56].copy_from_slice(&self.group_first.to_le_bytes());
        b[56..60].copy_from_slice(&self.schema_fingerprint.to_le_bytes());
        b[60..62].copy_from_slice(&self.shard.0.to_le_bytes());
        b[62..64].copy_from_slice(&self.region.0.to_le_bytes());
        b
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = self.encode_fields();
        b[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&self.checksum.to_le_bytes());
        if self.version >= HEADER_CHECKSUM_SINCE {
            let h = header_checksum(&b);
            b[HEADER_CHECKSUM_AT..HEADER_CHECKSUM_AT + 4].copy_from_slice(&h.to_le_bytes());
        }
        b
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, HeaderError> {
        if b[0..4] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16_at(b, 4);
        let checksum_ok = header_checksum(b) == u32_at(b, HEADER_CHECKSUM_AT);
        match version {
            1 => {}
            HEADER_CHECKSUM_SINCE..=FORMAT_VERSION if checksum_ok => {}
            // A newer writer keeps the header checksum; without it, this is damage.
            v if v > FORMAT_VERSION && checksum_ok => return Err(HeaderError::UnknownVersion(v)),
            _ => return Err(HeaderError::BadHeaderChecksum),
        }
        // v1 headers have zeros where v2 keeps the shard and region: they read as 0 / 0.
        Ok(BatchHeader {
            version,
            first_seq: u64_at(b, 8),
            last_seq: u64_at(b, 16),
            event_count: u32_at(b, 24),
            payload_len: u32_at(b, 28),
            timestamp_ns: u64_at(b, 32),
            checksum: u32_at(b, CHECKSUM_AT),
            group_first: u64_at(b, 48),
            flags: u16_at(b, 6),
            schema_fingerprint: u32_at(b, 56),
            shard: ShardId(u16_at(b, 60)),
            region: RegionId(u16_at(b, 62)),
        })
    }

    /// crc32c over the header with both checksum fields zeroed, then the payload.
    pub fn compute_checksum(&self, payload: &[u8]) -> u32 {
        let crc = crc32c::crc32c(&self.encode_fields());
        crc32c::crc32c_append(crc, payload)
    }

    /// True when this batch is the last of its commit group. Before v3 nothing marked
    /// the end of a group, so every batch of those versions counts as ending one.
    pub fn ends_group(&self) -> bool {
        self.version < FORMAT_VERSION || self.flags & ENDS_GROUP != 0
    }

    /// The fingerprint of the schema the batch was written under; `None` before v3.
    pub fn schema(&self) -> Option<u32> {
        (self.version >= FORMAT_VERSION).then_some(self.schema_fingerprint)
    }

    /// A log header for `payload`, with its checksums filled in.
    pub fn seal_logged(
        first_seq: u64,
        event_count: u32,
        mark: LogMark,
        payload: &[u8],
        timestamp_ns: u64,
        place: (ShardId, RegionId),
    ) -> Self {
        let mut h = BatchHeader::seal(
            first_seq,
            event_count,
            mark.group_first,
            payload,
            timestamp_ns,
            place.0,
            place.1,
        );
        h.version = FORMAT_VERSION;
        h.flags = if mark.ends_group { ENDS_GROUP } else { 0 };
        h.schema_fingerprint = mark.schema;
        h.checksum = h.compute_checksum(payload);
        h
    }

    /// A wire (v2) header for `payload`, with its checksums filled in.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        first_seq: u64,
        event_count: u32,
        group_first: u64,
        payload: &[u8],
        timestamp_ns: u64,
        shard: ShardId,
        region: RegionId,
    ) -> Self {
        let mut h = BatchHeader {
            version: WIRE_VERSION,
            first_seq,
            last_seq: first_seq + event_count.saturating_sub(1) as u64,
            event_count,
            payload_len: payload.len() as u32,
            timestamp_ns,
            checksum: 0,
            group_first,
            flags: 0,
            schema_fingerprint: 0,
            shard,
            region,
        };
        h.checksum = h.compute_checksum(payload);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_shard_and_region_in_the_last_four_bytes() {
        let h = BatchHeader::seal(10, 3, 10, b"abc", 99, ShardId(7), RegionId(2));
        let b = h.encode();
        assert_eq!(&b[60..64], &[7, 0, 2, 0]);
        assert_eq!(BatchHeader::decode(&b).unwrap(), h);
        assert_eq!(h.last_seq, 12);
        assert_eq!(h.compute_checksum(b"abc"), h.checksum);
        assert_ne!(h.compute_checksum(b"abd"), h.checksum);
    }

    #[test]
    fn any_flipped_header_bit_is_detected() {
        let b = BatchHeader::seal(10, 3, 10, b"abc", 99, ShardId(7), RegionId(2)).encode();
        for byte in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut damaged = b;
                damaged[byte] ^= 1 << bit;
                assert!(
                    BatchHeader::decode(&damaged).is_err(),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn v1_headers_read_as_shard_zero_region_zero() {
        let mut h = BatchHeader::seal(1, 1, 0, b"x", 0, ShardId(0), RegionId(0));
        h.version = 1;
        h.group_first = 0;
        h.checksum = h.compute_checksum(b"x");
        let mut b = h.encode();
        assert_eq!(&b[44..48], &[0, 0, 0, 0], "v1 has no header checksum");
        let read = BatchHeader::decode(&b).unwrap();
        assert_eq!(
            (read.version, read.shard, read.region),
            (1, ShardId(0), RegionId(0))
        );
        b[4..6].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(
            BatchHeader::decode(&b),
            Err(HeaderError::BadHeaderChecksum),
            "damage, not a version"
        );
        let mut newer = BatchHeader::seal(1, 1, 1, b"x", 0, ShardId(0), RegionId(0));
        newer.version = FORMAT_VERSION + 1;
        assert_eq!(
            BatchHeader::decode(&newer.encode()),
            Err(HeaderError::UnknownVersion(FORMAT_VERSION + 1))
        );
        b[0] = b'X';
        assert_eq!(BatchHeader::decode(&b), Err(HeaderError::BadMagic));
    }

    #[test]
    fn log_headers_carry_the_group_end_and_schema_and_older_ones_end_every_group() {
        let place = (ShardId(1), RegionId(2));
        for ends_group in [false, true] {
            let mark = LogMark {
                group_first: 5,
                ends_group,
                schema: 0xdead_beef,
            };
            let h = BatchHeader::seal_logged(7, 2, mark, b"ab", 1, place);
            let read = BatchHeader::decode(&h.encode()).unwrap();
            assert_eq!(read, h);
            assert_eq!(read.version, FORMAT_VERSION);
            assert_eq!(read.ends_group(), ends_group);
            assert_eq!(read.schema(), Some(0xdead_beef));
            assert_eq!(read.compute_checksum(b"ab"), read.checksum);
        }
        let wire = BatchHeader::decode(
            &BatchHeader::seal(7, 2, 7, b"ab", 1, ShardId(1), RegionId(2)).encode(),
        )
        .unwrap();
        assert_eq!(wire.version, WIRE_VERSION);
        assert!(wire.ends_group());
        assert_eq!(wire.schema(), None);
    }
}
