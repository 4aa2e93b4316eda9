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
pub struct Timestamp(i64);

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

    /// The wall clock. Only drivers call this; the sans-IO node is handed the time.
    pub fn now() -> Self {
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos().min(Self::MAX_NANOS as u128) as i64)
            .unwrap_or(0);
        Timestamp(ns)
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
