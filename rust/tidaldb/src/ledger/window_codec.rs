//! The byte form of a window ring's older buckets: 5-8 bytes a bucket for ordinary
//! weights, where the fixed layout takes 16, so that an entity whose rings are full keeps
//! its windows in well under 1 KB.
//!
//! A ring is its buckets oldest first, each as three LEB128 varints: the gap from its
//! granule to the next newer one's (the newest bucket's to the ring's head; zigzag), the
//! count, and the sum of millionths (zigzag). The oldest granule is kept beside the bytes.
//! Both frequent changes then touch one end only: a head that moves on appends its old
//! self with the gap to the new head (no other gap changes), and dropping the oldest
//! buckets cuts bytes from the front. Encoding is lossless for every bucket, sorted or
//! not, so a ring decodes to exactly the buckets it was encoded from; `is_well_formed`
//! judges them.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// A ring's buckets decoded: at most a window's granule count (60), or the 255 a snapshot
/// can name (it is refused afterwards).
pub type RingBuf<B> = SmallVec<[B; 64]>;

/// Bytes of one encoded ring (a ring of 60 ordinary buckets takes about 300).
pub type RingBytes = SmallVec<[u8; 512]>;

/// 16 bytes in memory (a ring's head), 5-8 encoded. An `i64` of millionths holds any
/// `MAX_EXACT_EVENTS` events, whatever their weights and order; a bucket with more refuses
/// reads rather than answer wrongly. Whether it has more depends only on its count, so
/// replicas agree on it, and its sum wraps (wrapping addition is order-independent too) so
/// that nothing panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub granule: u32,
    pub count: u32,
    pub micros: i64,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put(out: &mut RingBytes, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The next varint at `*at`, or `None` if the bytes end inside one or it overflows.
fn take(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One bucket's bytes, `gap` granules before the next newer bucket (or the head).
pub fn record(out: &mut RingBytes, bucket: Bucket, gap: i64) {
    put(out, zigzag(gap));
    put(out, u64::from(bucket.count));
    put(out, zigzag(bucket.micros));
}

/// The bytes of a ring holding `buckets` (oldest first) under a head at `head`.
pub fn encode(buckets: &[Bucket], head: u32) -> RingBytes {
    let mut out = SmallVec::new();
    for (i, b) in buckets.iter().enumerate() {
        let next = buckets.get(i + 1).map_or(head, |n| n.granule);
        record(&mut out, *b, i64::from(next) - i64::from(b.granule));
    }
    out
}

/// The buckets of an encoded ring whose oldest granule is `oldest`, oldest first. It stops
/// early on bytes no encoder wrote; [`decode_all`] says whether it did.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
    granule: i64,
}

pub fn decode(bytes: &[u8], oldest: u32) -> Decoder<'_> {
    Decoder {
        bytes,
        at: 0,
        granule: i64::from(oldest),
    }
}

impl Decoder<'_> {
    /// Bytes consumed so far: the end of the last bucket returned.
    pub fn position(&self) -> usize {
        self.at
    }

    fn bucket(&mut self) -> Option<Bucket> {
        let gap = unzigzag(take(self.bytes, &mut self.at)?);
        let count = take(self.bytes, &mut self.at)?;
        let micros = unzigzag(take(self.bytes, &mut self.at)?);
        let bucket = Bucket {
            granule: u32::try_from(self.granule).ok()?,
            count: u32::try_from(count).ok()?,
            micros,
        };
        self.granule = self.granule.checked_add(gap)?;
        Some(bucket)
    }
}

impl Iterator for Decoder<'_> {
    type Item = Bucket;

    #[inline]
    fn next(&mut self) -> Option<Bucket> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let bucket = self.bucket();
        if bucket.is_none() {
            // Past the end, so that iteration stops and `decode_all` sees the failure.
            self.at = usize::MAX;
        }
        bucket
    }
}

/// Every bucket of an encoded ring and the granule its gaps lead to (the head's, for a
/// well-formed ring), or `None` if the bytes are not a whole ring.
pub fn decode_all(bytes: &[u8], oldest: u32) -> Option<(RingBuf<Bucket>, i64)> {
    let mut d = decode(bytes, oldest);
    let out: RingBuf<Bucket> = d.by_ref().collect();
    (d.at == bytes.len()).then_some((out, d.granule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_round_trip_whatever_their_values() {
        let extremes = [
            (0, 0, 0),
            (u32::MAX, u32::MAX, i64::MAX),
            (7, 1, i64::MIN),
            (3, 2, -1),
            (29_000_000, 60, 60_000_000),
        ];
        let ring: Vec<Bucket> = extremes
            .iter()
            .map(|&(granule, count, micros)| Bucket {
                granule,
                count,
                micros,
            })
            .collect();
        let bytes = encode(&ring, 9);
        let (decoded, head) = decode_all(&bytes, 0).unwrap();
        assert_eq!((decoded.to_vec(), head), (ring, 9));
        assert_eq!(decode_all(&[], 5).unwrap().0.len(), 0);
        assert!(
            decode_all(&bytes[..bytes.len() - 1], 0).is_none(),
            "a cut ring"
        );
        assert!(decode_all(&[0xff; 11], 0).is_none(), "an overlong varint");
    }

    #[test]
    fn an_ordinary_minute_bucket_takes_five_bytes() {
        let minute = |granule| Bucket {
            granule,
            count: 1,
            micros: 1_000_000,
        };
        let ring: Vec<Bucket> = (29_000_000..29_000_059).map(minute).collect();
        assert_eq!(
            encode(&ring, 29_000_059).len(),
            59 * 5,
            "gaps of one granule"
        );
    }
}
