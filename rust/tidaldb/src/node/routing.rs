//! Identity and routing for the replication layer: what role a node plays, and which shard
//! owns an entity. Every node and every process must route an entity to the same shard, so
//! routing is a pure function of the entity id and the strategy, never of process state.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TidalError};
use crate::schema::{EntityId, ShardId};

/// What a node is in its replica group. Every role accepts writes; the leader is the
/// default write target and the home of control-plane duties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeRole {
    /// An embedded database with no peers.
    Single,
    Leader,
    Follower,
}

/// Contiguous ranges of entity ids, each owned by one shard, covering all of `u64`.
///
/// Stored as sorted inclusive start points: range `i` runs from `starts[i]` up to
/// `starts[i + 1] - 1`, the last one to `u64::MAX`. Requiring the first start to be 0 and
/// the starts to strictly increase is exactly what makes the ranges disjoint and
/// gap-free, so every id has one owner. Deserializing goes through the same checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(u64, ShardId)>", into = "Vec<(u64, ShardId)>")]
pub struct RangeTable {
    ranges: Vec<(u64, ShardId)>,
    distinct_shards: u16,
}

impl RangeTable {
    pub fn new(ranges: Vec<(u64, ShardId)>) -> Result<RangeTable> {
        let invalid = |reason: String| TidalError::InvalidArgument {
            name: "ranges",
            reason,
        };
        match ranges.first() {
            None => {
                return Err(invalid(
                    "the range table is empty; give at least one range, starting at 0".into(),
                ));
            }
            Some(&(start, _)) if start != 0 => {
                return Err(invalid(format!(
                    "the first range starts at {start}, so ids 0..{start} have no shard; \
                     start the first range at 0"
                )));
            }
            Some(_) => {}
        }
        if let Some(p) = ranges.windows(2).find(|p| p[0].0 >= p[1].0) {
            return Err(invalid(format!(
                "range starts must strictly increase, but {} is followed by {}; \
                 sort the ranges by start and drop duplicates",
                p[0].0, p[1].0
            )));
        }
        let mut shards: Vec<ShardId> = ranges.iter().map(|&(_, s)| s).collect();
        shards.sort_unstable();
        shards.dedup();
        let distinct_shards = u16::try_from(shards.len()).map_err(|_| {
            invalid(format!(
                "the table names {} distinct shards; at most {} are supported",
                shards.len(),
                u16::MAX
            ))
        })?;
        Ok(RangeTable {
            ranges,
            distinct_shards,
        })
    }

    /// The shard whose range contains `key`.
    pub fn lookup(&self, key: u64) -> ShardId {
        // The first range starts at 0, so at least one start is `<= key` and the index of
        // the last such start is `partition_point - 1 >= 0`.
        let i = self.ranges.partition_point(|&(start, _)| start <= key);
        self.ranges[i.saturating_sub(1)].1
    }

    pub fn ranges(&self) -> &[(u64, ShardId)] {
        &self.ranges
    }
}

impl TryFrom<Vec<(u64, ShardId)>> for RangeTable {
    type Error = TidalError;
    fn try_from(ranges: Vec<(u64, ShardId)>) -> Result<Self> {
        RangeTable::new(ranges)
    }
}

impl From<RangeTable> for Vec<(u64, ShardId)> {
    fn from(t: RangeTable) -> Self {
        t.ranges
    }
}

/// How entity ids map to shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoutingStrategy {
    /// Everything on shard 0: an unsharded deployment.
    Single,
    /// `mix(entity) % num_shards`, with `mix` the splitmix64 finalizer (see
    /// [`ShardRouter::route`]). Spreads sequential ids evenly.
    Hash { num_shards: u16 },
    /// By entity id ranges, for callers whose ids carry locality worth keeping together.
    Range(RangeTable),
}

/// Routes entities to shards under a validated strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRouter {
    strategy: RoutingStrategy,
}

impl ShardRouter {
    pub fn new(strategy: RoutingStrategy) -> Result<ShardRouter> {
        if let RoutingStrategy::Hash { num_shards: 0 } = strategy {
            return Err(TidalError::InvalidArgument {
                name: "num_shards",
                reason: "hash routing over 0 shards cannot place any entity; use at least 1".into(),
            });
        }
        Ok(ShardRouter { strategy })
    }

    /// The owning shard. Under `Hash` this is, and must stay, exactly
    /// `splitmix64_mix(entity.0) % num_shards` with
    ///
    /// ```text
    /// z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9   (wrapping u64)
    /// z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB
    /// z =  z ^ (z >> 31)
    /// ```
    ///
    /// std's `Hasher`s are randomized per process or unspecified across versions; this one
    /// is fixed so that every node, process and client library agrees. Changing it moves
    /// data between shards, so a test pins its outputs.
    pub fn route(&self, entity: EntityId) -> ShardId {
        match &self.strategy {
            RoutingStrategy::Single => ShardId(0),
            RoutingStrategy::Hash { num_shards } => {
                // `num_shards` is nonzero (checked in `new`) and the result is below it.
                ShardId((splitmix64_mix(entity.0) % u64::from(*num_shards)) as u16)
            }
            RoutingStrategy::Range(table) => table.lookup(entity.0),
        }
    }

    /// How many shards the strategy places entities on; for `Range`, the distinct shards
    /// the table names (shard ids need not be contiguous).
    pub fn num_shards(&self) -> u16 {
        match &self.strategy {
            RoutingStrategy::Single => 1,
            RoutingStrategy::Hash { num_shards } => *num_shards,
            RoutingStrategy::Range(table) => table.distinct_shards,
        }
    }

    pub fn strategy(&self) -> &RoutingStrategy {
        &self.strategy
    }
}

/// The splitmix64 finalizer (Steele, Lea and Flood; constants from Stafford's variant 13):
/// a bijection on `u64` whose output bits each depend on every input bit.
fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_reason(r: Result<RangeTable>) -> String {
        match r {
            Err(TidalError::InvalidArgument {
                name: "ranges",
                reason,
            }) => reason,
            other => panic!("expected an InvalidArgument on ranges, got {other:?}"),
        }
    }

    #[test]
    fn range_tables_that_leave_ids_without_an_owner_are_refused() {
        assert!(err_reason(RangeTable::new(vec![])).contains("empty"));
        assert!(err_reason(RangeTable::new(vec![(5, ShardId(0))])).contains("start"));
        let dup = vec![(0, ShardId(0)), (10, ShardId(1)), (10, ShardId(2))];
        assert!(err_reason(RangeTable::new(dup)).contains("strictly increase"));
        let down = vec![(0, ShardId(0)), (10, ShardId(1)), (3, ShardId(2))];
        assert!(err_reason(RangeTable::new(down)).contains("strictly increase"));
        let json = r#"[[0,0],[0,1]]"#;
        assert!(serde_json::from_str::<RangeTable>(json).is_err());
    }

    #[test]
    fn range_routing_respects_every_boundary() {
        let table = RangeTable::new(vec![
            (0, ShardId(3)),
            (100, ShardId(1)),
            (1 << 40, ShardId(3)),
            (u64::MAX, ShardId(7)),
        ])
        .unwrap();
        let r = ShardRouter::new(RoutingStrategy::Range(table.clone())).unwrap();
        let at = |id: u64| r.route(EntityId(id));
        assert_eq!(at(0), ShardId(3));
        assert_eq!(at(99), ShardId(3));
        assert_eq!(at(100), ShardId(1));
        assert_eq!(at((1 << 40) - 1), ShardId(1));
        assert_eq!(at(1 << 40), ShardId(3));
        assert_eq!(at(u64::MAX - 1), ShardId(3));
        assert_eq!(at(u64::MAX), ShardId(7));
        assert_eq!(r.num_shards(), 3);

        let whole = RangeTable::new(vec![(0, ShardId(2))]).unwrap();
        assert_eq!(whole.lookup(u64::MAX), ShardId(2));

        let back: RangeTable =
            serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
        assert_eq!(back, table);
    }

    #[test]
    fn hash_over_zero_shards_is_refused_and_single_is_shard_zero() {
        assert!(matches!(
            ShardRouter::new(RoutingStrategy::Hash { num_shards: 0 }),
            Err(TidalError::InvalidArgument {
                name: "num_shards",
                ..
            })
        ));
        let single = ShardRouter::new(RoutingStrategy::Single).unwrap();
        assert_eq!(single.route(EntityId(u64::MAX)), ShardId(0));
        assert_eq!(single.num_shards(), 1);
        let one = ShardRouter::new(RoutingStrategy::Hash { num_shards: 1 }).unwrap();
        assert_eq!(one.route(EntityId(12345)), ShardId(0));
    }

    /// Pinned outputs: if this fails, the hash changed and existing data would be misrouted.
    #[test]
    fn hash_routing_is_the_documented_splitmix64_mix() {
        assert_eq!(splitmix64_mix(1), 0x5692_161D_100B_05E5);
        assert_eq!(splitmix64_mix(12345), 0xF36C_F116_4265_DD51);
        let seven = ShardRouter::new(RoutingStrategy::Hash { num_shards: 7 }).unwrap();
        let sixteen = ShardRouter::new(RoutingStrategy::Hash { num_shards: 16 }).unwrap();
        assert_eq!(seven.route(EntityId(42)), ShardId(3));
        assert_eq!(seven.route(EntityId(12345)), ShardId(6));
        assert_eq!(sixteen.route(EntityId(u64::MAX)), ShardId(11));
    }

    #[test]
    fn hash_spreads_ten_thousand_ids_within_twenty_percent_of_the_mean() {
        // Sequential ids, and ids sharing their low bits, are the usual hard cases.
        let patterns: [fn(u64) -> u64; 2] = [|i| i, |i| i << 20];
        for num_shards in [2u16, 3, 7, 10, 16] {
            let router = ShardRouter::new(RoutingStrategy::Hash { num_shards }).unwrap();
            for id_of in patterns {
                let mut counts = vec![0u32; usize::from(num_shards)];
                for i in 0..10_000 {
                    let ShardId(s) = router.route(EntityId(id_of(i)));
                    counts[usize::from(s)] += 1;
                }
                let mean = 10_000.0 / f64::from(num_shards);
                for (s, &c) in counts.iter().enumerate() {
                    let off = (f64::from(c) - mean).abs() / mean;
                    assert!(
                        off <= 0.2,
                        "{num_shards} shards: shard {s} got {c}, mean {mean}"
                    );
                }
            }
        }
    }
}
