//! The 64-byte batch header, format v2.
//!
//! ```text
//! offset size field
//!      0    4 magic "TIDA"
//!      4    2 format version (2; 1 is read as v2 with shard 0 / region 0)
//!      6    2 reserved, zero
//!      8    8 first seq (log sequence number of the first record)
//!     16    8 last seq
//!     24    4 event count
//!     28    4 payload length in bytes
//!     32    8 timestamp (ns since the epoch, when the batch was written)
//!     40    4 crc32c over the header (this field zeroed) and the payload
//!     44   16 reserved, zero
//!     60    2 shard id   (zero in v1)
//!     62    2 region id  (zero in v1)
//! ```
//! All integers are little-endian.

use crate::schema::{RegionId, ShardId};

pub const HEADER_LEN: usize = 64;
pub const MAGIC: [u8; 4] = *b"TIDA";
pub const FORMAT_VERSION: u16 = 2;
const CHECKSUM_AT: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub version: u16,
    pub first_seq: u64,
    pub last_seq: u64,
    pub event_count: u32,
    pub payload_len: u32,
    pub timestamp_ns: u64,
    pub checksum: u32,
    pub shard: ShardId,
    pub region: RegionId,
}

/// Why 64 bytes did not parse as a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    BadMagic,
    UnknownVersion(u16),
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

impl BatchHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.last_seq.to_le_bytes());
        b[24..28].copy_from_slice(&self.event_count.to_le_bytes());
        b[28..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&self.checksum.to_le_bytes());
        b[60..62].copy_from_slice(&self.shard.0.to_le_bytes());
        b[62..64].copy_from_slice(&self.region.0.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, HeaderError> {
        if b[0..4] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16_at(b, 4);
        if version != 1 && version != FORMAT_VERSION {
            return Err(HeaderError::UnknownVersion(version));
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
            shard: ShardId(u16_at(b, 60)),
            region: RegionId(u16_at(b, 62)),
        })
    }

    /// crc32c over the header with the checksum field zeroed, then the payload.
    pub fn compute_checksum(&self, payload: &[u8]) -> u32 {
        let mut h = *self;
        h.checksum = 0;
        let crc = crc32c::crc32c(&h.encode());
        crc32c::crc32c_append(crc, payload)
    }

    /// A header for `payload`, with its checksum filled in.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        first_seq: u64,
        event_count: u32,
        payload: &[u8],
        timestamp_ns: u64,
        shard: ShardId,
        region: RegionId,
    ) -> Self {
        let mut h = BatchHeader {
            version: FORMAT_VERSION,
            first_seq,
            last_seq: first_seq + event_count.saturating_sub(1) as u64,
            event_count,
            payload_len: payload.len() as u32,
            timestamp_ns,
            checksum: 0,
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
        let h = BatchHeader::seal(10, 3, b"abc", 99, ShardId(7), RegionId(2));
        let b = h.encode();
        assert_eq!(&b[60..64], &[7, 0, 2, 0]);
        assert_eq!(BatchHeader::decode(&b).unwrap(), h);
        assert_eq!(h.last_seq, 12);
        assert_eq!(h.compute_checksum(b"abc"), h.checksum);
        assert_ne!(h.compute_checksum(b"abd"), h.checksum);
    }

    #[test]
    fn v1_headers_read_as_shard_zero_region_zero() {
        let mut b = BatchHeader::seal(1, 1, b"x", 0, ShardId(0), RegionId(0)).encode();
        b[4..6].copy_from_slice(&1u16.to_le_bytes());
        let h = BatchHeader::decode(&b).unwrap();
        assert_eq!((h.version, h.shard, h.region), (1, ShardId(0), RegionId(0)));
        b[4..6].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(BatchHeader::decode(&b), Err(HeaderError::UnknownVersion(9)));
        b[0] = b'X';
        assert_eq!(BatchHeader::decode(&b), Err(HeaderError::BadMagic));
    }
}
