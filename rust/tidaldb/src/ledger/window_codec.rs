//! The byte form of a window ring's older buckets: 5-8 bytes a bucket for ordinary
//! weights, where the fixed layout takes 16, so that an entity whose rings are full keeps
//! its windows in well under 1 KB.
//!
//! A ring is its buckets in order, each as three LEB128 varints: the granule's difference
//! from the previous bucket's (zigzag; the first bucket's from zero), the count, and the
//! sum of millionths (zigzag). Encoding is lossless for every bucket, sorted or not, so a
//! ring decodes to exactly the buckets it was encoded from; `is_well_formed` judges them.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// A ring's buckets decoded: at most a window's granule count (60) plus the one a ring
/// holds briefly while it takes its old head and prunes.
pub type RingBuf<B> = SmallVec<[B; 64]>;

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

fn put(out: &mut SmallVec<[u8; 512]>, mut v: u64) {
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

/// The bytes of a ring holding `buckets`, in order.
pub fn encode(buckets: impl IntoIterator<Item = Bucket>) -> SmallVec<[u8; 512]> {
    let mut out = SmallVec::new();
    let mut previous = 0i64;
    for b in buckets {
        put(&mut out, zigzag(i64::from(b.granule) - previous));
        put(&mut out, u64::from(b.count));
        put(&mut out, zigzag(b.micros));
        previous = i64::from(b.granule);
    }
    out
}

/// The buckets of an encoded ring, in order. It stops early on bytes no encoder wrote;
/// [`decode_all`] says whether it did.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
    previous: i64,
}

pub fn decode(bytes: &[u8]) -> Decoder<'_> {
    Decoder {
        bytes,
        at: 0,
        previous: 0,
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

impl Decoder<'_> {
    fn bucket(&mut self) -> Option<Bucket> {
        let granule = self
            .previous
            .checked_add(unzigzag(take(self.bytes, &mut self.at)?))?;
        let count = take(self.bytes, &mut self.at)?;
        let micros = unzigzag(take(self.bytes, &mut self.at)?);
        let fields = Bucket {
            granule: u32::try_from(granule).ok()?,
            count: u32::try_from(count).ok()?,
            micros,
        };
        self.previous = granule;
        Some(fields)
    }
}

/// Every bucket of an encoded ring, or `None` if the bytes are not a whole ring.
pub fn decode_all(bytes: &[u8]) -> Option<RingBuf<Bucket>> {
    let mut d = decode(bytes);
    let out: RingBuf<Bucket> = d.by_ref().collect();
    (d.at == bytes.len()).then_some(out)
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
        let bytes = encode(ring.iter().copied());
        assert_eq!(decode_all(&bytes).unwrap().to_vec(), ring);
        assert_eq!(decode_all(&[]).unwrap().len(), 0);
        assert!(
            decode_all(&bytes[..bytes.len() - 1]).is_none(),
            "a cut ring"
        );
        assert!(decode_all(&[0xff; 11]).is_none(), "an overlong varint");
    }

    #[test]
    fn an_ordinary_minute_bucket_takes_five_bytes() {
        let minute = |granule| Bucket {
            granule,
            count: 1,
            micros: 1_000_000,
        };
        let full = encode((29_000_000..29_000_059).map(minute));
        assert_eq!(
            full.len(),
            8 + 58 * 5,
            "the first granule whole, then deltas of 1"
        );
    }
}
