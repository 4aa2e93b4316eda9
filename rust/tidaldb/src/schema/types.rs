//! Identities and time: the vocabulary every other module speaks.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TidalError};

/// An entity (item, user, creator) named by the caller's own 64-bit id.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[repr(transparent)]
pub struct EntityId(pub u64);

// SAFETY: `EntityId` is `repr(transparent)` over `u64`, which is what the trait requires.
unsafe impl bytemuck::TransparentWrapper<u64> for EntityId {}

// SAFETY: all zeroes is `EntityId(0)`, a valid id.
unsafe impl bytemuck::Zeroable for EntityId {}

impl EntityId {
    /// Views a slice of raw ids (a numpy `uint64` array, say) as entity ids, without a copy.
    pub fn from_raw_slice(ids: &[u64]) -> &[EntityId] {
        <EntityId as bytemuck::TransparentWrapper<u64>>::wrap_slice(ids)
    }

    pub const fn new(id: u64) -> Self {
        EntityId(id)
    }
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A replica: the origin of the events it accepts. Ties in failover break by this id.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct NodeId(pub u16);

/// A region (us-east, eu-west, ...). Python names regions by string; the core by number.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct RegionId(pub u16);

/// A shard: one slice of the entity space, replicated in every region.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ShardId(pub u16);

/// What kind of entity a signal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityKind {
    Item,
    User,
    Creator,
}

impl EntityKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "item" => Ok(EntityKind::Item),
            "user" => Ok(EntityKind::User),
            "creator" => Ok(EntityKind::Creator),
            other => Err(TidalError::InvalidArgument {
                name: "kind",
                reason: format!(
                    "unknown entity kind {other:?}; use \"item\", \"user\" or \"creator\""
                ),
            }),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Item => "item",
            EntityKind::User => "user",
            EntityKind::Creator => "creator",
        }
    }
}

/// Nanoseconds since the Unix epoch.
///
/// The range is `[0, 2^62]` (up to the year 2116), which leaves headroom so that the
/// difference of any two timestamps never overflows an `i64`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[repr(transparent)]
pub struct Timestamp(i64);

// SAFETY: all zeroes is `Timestamp::EPOCH`, in range.
unsafe impl bytemuck::Zeroable for Timestamp {}

impl Timestamp {
    pub const MAX_NANOS: i64 = 1 << 62;
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Validates the range; the only way to build a `Timestamp` from untrusted input.
    pub fn from_nanos(ns: i64) -> Result<Self> {
        if (0..=Self::MAX_NANOS).contains(&ns) {
            Ok(Timestamp(ns))
        } else {
            Err(TidalError::TimestampOutOfRange {
                ns: ns as i128,
                max: Self::MAX_NANOS,
            })
        }
    }

    /// Seconds since the epoch, as Python passes them. NaN and infinities are out of range.
    pub fn from_secs_f64(secs: f64) -> Result<Self> {
        let ns = secs * 1e9;
        if !ns.is_finite() || ns < 0.0 || ns > Self::MAX_NANOS as f64 {
            return Err(TidalError::TimestampOutOfRange {
                ns: if ns.is_finite() {
                    ns as i128
                } else {
                    i128::MAX
                },
                max: Self::MAX_NANOS,
            });
        }
        Ok(Timestamp(ns.round() as i64))
    }

    /// [`Self::from_secs_f64`] of every element of `secs` into `out`, of the same length:
    /// the same values, in a loop without branches or calls that the compiler can
    /// vectorize (rounding the exact way `f64::round` does, which is a call on baseline
    /// x86-64). On the first element out of range, the error and its index; `out` then
    /// holds unspecified timestamps.
    pub fn fill_from_secs_f64(
        out: &mut [Timestamp],
        secs: &[f64],
    ) -> Result<(), (usize, TidalError)> {
        debug_assert_eq!(out.len(), secs.len(), "one timestamp per element");
        let max = Self::MAX_NANOS as f64;
        let mut in_range = true;
        for (t, &s) in out.iter_mut().zip(secs) {
            let ns = s * 1e9;
            // NaN fails both comparisons, and an infinity the second.
            in_range &= (ns >= 0.0) & (ns <= max);
            *t = Timestamp(round_non_negative(ns));
        }
        if in_range {
            debug_assert!(
                out.iter()
                    .zip(secs)
                    .all(|(t, &s)| Self::from_secs_f64(s).ok() == Some(*t))
            );
            return Ok(());
        }
        Err(Self::first_out_of_range(secs))
    }

    /// What [`Self::fill_from_secs_f64`] checks, storing nothing: the latest of the times
    /// (`None` for no times), or the first element out of range, with its error.
    pub fn latest_of_secs_f64(secs: &[f64]) -> Result<Option<Timestamp>, (usize, TidalError)> {
        let max = Self::MAX_NANOS as f64;
        // Eight independent lanes, and a comparison instead of `f64::max` (whose NaN rule
        // costs a blend per element): the compiler keeps this in vector registers. A NaN
        // never wins a comparison, and it fails the range check anyway.
        let mut in_range = [true; 8];
        let mut latest = [f64::NEG_INFINITY; 8];
        let lanes = secs.chunks_exact(8);
        let tail = lanes.remainder();
        for lane in lanes {
            for k in 0..8 {
                let ns = lane[k] * 1e9;
                in_range[k] &= (ns >= 0.0) & (ns <= max);
                latest[k] = if ns > latest[k] { ns } else { latest[k] };
            }
        }
        for (k, &s) in tail.iter().enumerate() {
            let ns = s * 1e9;
            in_range[k] &= (ns >= 0.0) & (ns <= max);
            latest[k] = if ns > latest[k] { ns } else { latest[k] };
        }
        let in_range = in_range.iter().all(|&ok| ok);
        let latest = latest
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        if in_range {
            // Rounding is monotonic, so the latest rounded time is the latest time rounded.
            return Ok((!secs.is_empty()).then(|| Timestamp(round_non_negative(latest))));
        }
        Err(Self::first_out_of_range(secs))
    }

    /// The first element of a column that a range check refused, with its error.
    #[cold]
    fn first_out_of_range(secs: &[f64]) -> (usize, TidalError) {
        let bad = secs
            .iter()
            .enumerate()
            .find_map(|(i, &s)| Self::from_secs_f64(s).err().map(|e| (i, e)));
        debug_assert!(bad.is_some(), "some element is out of range");
        bad.unwrap_or((
            0,
            TidalError::TimestampOutOfRange {
                ns: i128::MAX,
                max: Self::MAX_NANOS,
            },
        ))
    }

    /// [`Self::from_secs_f64`] of a time already checked in range (by
    /// [`Self::latest_of_secs_f64`]); meaningless otherwise.
    #[inline]
    pub(crate) fn from_checked_secs_f64(secs: f64) -> Timestamp {
        debug_assert!(Self::from_secs_f64(secs).is_ok(), "{secs} was checked");
        Timestamp(round_non_negative(secs * 1e9))
    }

    /// The wall clock. Only drivers call this; the sans-IO node is handed the time.
    /// A time before 1970 reads as the epoch.
    #[inline]
    pub fn now() -> Self {
        Timestamp(wall_clock_nanos().clamp(0, Self::MAX_NANOS))
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self + d`, clamped to the valid range.
    pub fn saturating_add(self, d: std::time::Duration) -> Self {
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ns).min(Self::MAX_NANOS))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

/// `x.round() as i64` for `0 <= x <= 2^62`, bit for bit, without the call `round` is on
/// baseline x86-64: the conversion truncates, and the fraction it dropped is exact (for
/// `x >= 2^52` it is zero), so rounding half away from zero adds one at a fraction of a half
/// or more. Out of that range (a NaN) the result is meaningless but defined; callers check
/// the range themselves.
#[inline(always)]
fn round_non_negative(x: f64) -> i64 {
    let t = x as i64;
    t.wrapping_add(i64::from(x - t as f64 >= 0.5))
}

/// Nanoseconds since the Unix epoch, read with `clock_gettime` directly: std's
/// `SystemTime::now().duration_since(..)` added a third to the clock read's own cost, and
/// a single write reads the clock once. Only where `time_t` has 64 bits: elsewhere std
/// reads the 64-bit clock that outlives 2038.
#[cfg(all(unix, target_pointer_width = "64"))]
fn wall_clock_nanos() -> i64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a `timespec` to write into, and CLOCK_REALTIME always exists.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) } != 0 {
        return system_time_nanos();
    }
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec)
}

#[cfg(not(all(unix, target_pointer_width = "64")))]
fn wall_clock_nanos() -> i64 {
    system_time_nanos()
}

fn system_time_nanos() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock read directly lies between two reads of std's, in every sample where
    /// the wall clock was not stepped back meanwhile.
    #[test]
    fn now_reads_the_same_clock_as_system_time() {
        let mut compared = 0;
        for _ in 0..1000 {
            let before = system_time_nanos();
            let now = Timestamp::now().as_nanos();
            let after = system_time_nanos();
            if after < before {
                continue;
            }
            assert!(
                before <= now && now <= after,
                "{before} <= {now} <= {after}"
            );
            compared += 1;
        }
        assert!(
            compared > 900,
            "the clock stepped back {} times",
            1000 - compared
        );
    }

    /// Ties, the largest fractions below a half, integers past 2^52, and the range's ends,
    /// against `f64::round`.
    #[test]
    fn the_branch_free_rounding_is_f64_round() {
        let mut xs = vec![
            0.0,
            0.5,
            1.5,
            2.5,
            1e9 + 0.5,
            (1u64 << 52) as f64,
            (1u64 << 62) as f64,
        ];
        for k in [0.0f64, 1.0, 7.0, 1.7e18, 4.5e15] {
            let half_below = f64::from_bits(0.5f64.to_bits() - 1);
            xs.extend([
                k + half_below,
                k + 0.5,
                k + 0.25,
                k + 0.75,
                f64::from_bits(k.to_bits() + 1),
            ]);
        }
        // SplitMix64: spread values, from tiny fractions to the 2^62 end of the range.
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        xs.extend((0..100_000).map(|_| (next() >> 2) as f64 / (1 + next() % 1_000_000) as f64));
        for x in xs {
            assert_eq!(round_non_negative(x), x.round() as i64, "{x:e}");
        }
    }

    #[test]
    fn the_latest_of_a_column_is_the_latest_converted_and_a_bad_one_is_named() {
        let secs = [1.7e9, 0.0, 1.7e9 + 0.4999999, 1.5e-9];
        let latest = secs
            .iter()
            .map(|&s| Timestamp::from_secs_f64(s).unwrap())
            .max();
        assert_eq!(Timestamp::latest_of_secs_f64(&secs).unwrap(), latest);
        assert_eq!(Timestamp::latest_of_secs_f64(&[]).unwrap(), None);
        // Long enough for the vector lanes and a tail, the latest in either.
        for (len, top) in [(1003, 17), (1003, 1001), (64, 63)] {
            let mut column: Vec<f64> = (0..len)
                .map(|i| 1.7e9 + ((i * 7919) % 1000) as f64 * 0.37)
                .collect();
            column[top] = 1.8e9 + 0.123_456_789;
            let want = column
                .iter()
                .map(|&s| Timestamp::from_secs_f64(s).unwrap())
                .max();
            assert_eq!(
                Timestamp::latest_of_secs_f64(&column).unwrap(),
                want,
                "{len} {top}"
            );
            column[top - 1] = f64::NAN;
            assert_eq!(
                Timestamp::latest_of_secs_f64(&column).unwrap_err().0,
                top - 1
            );
        }
        for bad in [f64::NAN, -1.0, f64::INFINITY, 5e9] {
            let (at, err) = Timestamp::latest_of_secs_f64(&[1.0, bad, 2.0]).unwrap_err();
            assert_eq!(at, 1, "{bad}");
            assert!(
                matches!(err, TidalError::TimestampOutOfRange { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_column_converts_as_each_element_would_and_names_the_first_bad_one() {
        let secs = [1.7e9, 0.0, 1.5e-9, 4.611686018427388e9, 1.234_567_891_5];
        let mut out = vec![Timestamp(5); secs.len()];
        Timestamp::fill_from_secs_f64(&mut out, &secs).unwrap();
        let one_by_one: Vec<Timestamp> = secs
            .iter()
            .map(|&s| Timestamp::from_secs_f64(s).unwrap())
            .collect();
        assert_eq!(out, one_by_one);
        for bad in [f64::NAN, -1.0, f64::INFINITY, 5e9] {
            let column = [1.0, 2.0, bad, f64::NAN];
            let (at, err) =
                Timestamp::fill_from_secs_f64(&mut [Timestamp::EPOCH; 4], &column).unwrap_err();
            assert_eq!(at, 2, "{bad}");
            assert!(
                matches!(err, TidalError::TimestampOutOfRange { .. }),
                "{bad}"
            );
        }
    }
}
