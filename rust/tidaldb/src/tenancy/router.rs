//! Tenant-aware routing: which shard replica a tenant's entity lives on.
//!
//! A tenant's *placement* is the list of shard replicas that hold its data, drawn from
//! the topology and restricted to its required regions. Entities hash over the placement's
//! shards; within a shard, the first replica listed is the tenant's home (its write and
//! read target). Migration rewrites the placement; nothing else does.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{TenantConfig, TenantQuotas, TenantRateLimiter};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::{EntityId, RegionId, ShardId};

/// One replica of a shard, in a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardAssignment {
    pub shard_id: ShardId,
    pub region_id: RegionId,
}

/// Every shard replica of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterTopology {
    pub shards: Vec<ShardAssignment>,
}

impl ClusterTopology {
    /// `regions × shards_per_region`, every shard replicated in every region.
    pub fn grid(regions: u16, shards_per_region: u16) -> Self {
        let mut shards = Vec::new();
        for r in 0..regions {
            for s in 0..shards_per_region {
                shards.push(ShardAssignment {
                    shard_id: ShardId(s),
                    region_id: RegionId(r),
                });
            }
        }
        ClusterTopology { shards }
    }

    /// `n` shards, shard `i` alone in region `i` (the layout of the seed's tests).
    pub fn one_shard_per_region(n: u16) -> Self {
        ClusterTopology {
            shards: (0..n)
                .map(|i| ShardAssignment {
                    shard_id: ShardId(i),
                    region_id: RegionId(i),
                })
                .collect(),
        }
    }

    pub fn contains(&self, a: ShardAssignment) -> bool {
        self.shards.contains(&a)
    }

    pub fn has_region(&self, region: RegionId) -> bool {
        self.shards.iter().any(|a| a.region_id == region)
    }
}

#[derive(Clone, Debug)]
struct TenantEntry {
    config: TenantConfig,
    placement: Vec<ShardAssignment>,
    limiter: Option<Arc<TenantRateLimiter>>,
}

#[derive(Clone, Debug)]
pub struct TenantRouter {
    topology: ClusterTopology,
    tenants: BTreeMap<TenantId, TenantEntry>,
}

impl TenantRouter {
    pub fn new(topology: ClusterTopology) -> Self {
        TenantRouter {
            topology,
            tenants: BTreeMap::new(),
        }
    }

    pub fn topology(&self) -> &ClusterTopology {
        &self.topology
    }

    /// Registers a tenant. Its quotas and residency are checked now, so that no write can
    /// later meet a policy that cannot be satisfied.
    pub fn register_tenant(&mut self, config: TenantConfig) -> Result<()> {
        config.validate()?;
        let tenant = config.tenant_id;
        if self.tenants.contains_key(&tenant) {
            return Err(TidalError::Conflict(format!(
                "tenant {tenant} is already registered; tenants are registered once"
            )));
        }
        if let Some(r) = config
            .required_regions
            .iter()
            .find(|r| !self.topology.has_region(**r))
        {
            return Err(TidalError::InvalidTenantConfig {
                tenant: tenant.0,
                reason: format!(
                    "the residency policy requires region {}, which holds no shard",
                    r.0
                ),
            });
        }
        let allowed = |r: RegionId| {
            config.required_regions.is_empty() || config.required_regions.contains(&r)
        };
        let placement: Vec<ShardAssignment> = self
            .topology
            .shards
            .iter()
            .copied()
            .filter(|a| allowed(a.region_id))
            .collect();
        if placement.is_empty() {
            return Err(TidalError::InvalidTenantConfig {
                tenant: tenant.0,
                reason: "the topology has no shard for this tenant".into(),
            });
        }
        let limiter = config
            .max_signals_per_sec
            .map(|r| TenantRateLimiter::new(tenant, r).map(Arc::new))
            .transpose()?;
        self.tenants.insert(
            tenant,
            TenantEntry {
                config,
                placement,
                limiter,
            },
        );
        Ok(())
    }

    fn entry(&self, tenant: TenantId) -> Result<&TenantEntry> {
        self.tenants
            .get(&tenant)
            .ok_or(TidalError::UnknownTenant(tenant.0))
    }

    pub fn is_registered(&self, tenant: TenantId) -> bool {
        self.tenants.contains_key(&tenant)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &TenantConfig> + '_ {
        self.tenants.values().map(|e| &e.config)
    }

    pub fn config(&self, tenant: TenantId) -> Result<&TenantConfig> {
        Ok(&self.entry(tenant)?.config)
    }

    /// The tenant's rate limiter; `None` when its rate is unlimited.
    pub fn rate_limiter_for(&self, tenant: TenantId) -> Result<Option<Arc<TenantRateLimiter>>> {
        Ok(self.entry(tenant)?.limiter.clone())
    }

    /// Quotas for a replica of the tenant that shares this router's rate limiter.
    pub fn quotas_for(&self, tenant: TenantId) -> Result<TenantQuotas> {
        let e = self.entry(tenant)?;
        TenantQuotas::with_limiter(&e.config, e.limiter.clone())
    }

    pub fn placement(&self, tenant: TenantId) -> Result<&[ShardAssignment]> {
        Ok(&self.entry(tenant)?.placement)
    }

    /// The replica that holds `entity` of `tenant`: a stable hash picks one of the
    /// placement's shards, and the shard's home replica serves it.
    pub fn route(&self, tenant: TenantId, entity: EntityId) -> Result<ShardAssignment> {
        let placement = &self.entry(tenant)?.placement;
        let mut shards: Vec<ShardId> = placement.iter().map(|a| a.shard_id).collect();
        shards.sort_unstable();
        shards.dedup();
        let pick = mix(entity.0 ^ tenant.0.rotate_left(32)) % shards.len().max(1) as u64;
        let shard = shards[pick as usize];
        placement
            .iter()
            .find(|a| a.shard_id == shard)
            .copied()
            .ok_or(TidalError::UnknownTenant(tenant.0))
    }

    /// Moves the tenant's replica `from` to `to` (a migration's switch-over). `to` takes
    /// `from`'s place in the list, so it becomes home where `from` was; the residency
    /// policy follows the data.
    pub fn relocate(
        &mut self,
        tenant: TenantId,
        from: ShardAssignment,
        to: ShardAssignment,
    ) -> Result<()> {
        if !self.topology.contains(to) {
            return Err(TidalError::InvalidArgument {
                name: "to",
                reason: format!(
                    "shard {} in region {} is not in the topology",
                    to.shard_id.0, to.region_id.0
                ),
            });
        }
        let e = self
            .tenants
            .get_mut(&tenant)
            .ok_or(TidalError::UnknownTenant(tenant.0))?;
        if e.placement.contains(&to) {
            // Already moved: relocation is idempotent.
            e.placement.retain(|a| *a != from);
            return Ok(());
        }
        let Some(slot) = e.placement.iter_mut().find(|a| **a == from) else {
            return Err(TidalError::InvalidArgument {
                name: "from",
                reason: format!(
                    "tenant {tenant} has no replica on shard {} in region {}",
                    from.shard_id.0, from.region_id.0
                ),
            });
        };
        *slot = to;
        if !e.config.required_regions.is_empty() {
            let regions: Vec<RegionId> = e.placement.iter().map(|a| a.region_id).collect();
            e.config.required_regions.retain(|r| regions.contains(r));
            if !e.config.required_regions.contains(&to.region_id) {
                e.config.required_regions.push(to.region_id);
            }
        }
        Ok(())
    }
}

/// splitmix64's finalizer: a stable, well-spread hash, the same on every machine.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_shards() -> ClusterTopology {
        ClusterTopology::one_shard_per_region(3)
    }

    #[test]
    fn unsatisfiable_residency_and_duplicates_fail_at_registration() {
        let mut r = TenantRouter::new(three_shards());
        let mut cfg = TenantConfig::new(TenantId(5), "eu");
        cfg.required_regions = vec![RegionId(7)];
        assert!(matches!(
            r.register_tenant(cfg.clone()),
            Err(TidalError::InvalidTenantConfig { .. })
        ));
        assert!(!r.is_registered(TenantId(5)));
        cfg.required_regions = vec![RegionId(1)];
        r.register_tenant(cfg.clone()).unwrap();
        assert!(matches!(
            r.register_tenant(cfg),
            Err(TidalError::Conflict(_))
        ));
        assert!(matches!(
            r.route(TenantId(6), EntityId(1)),
            Err(TidalError::UnknownTenant(6))
        ));
    }

    #[test]
    fn unrestricted_tenants_spread_over_every_shard_stably() {
        let mut r = TenantRouter::new(three_shards());
        r.register_tenant(TenantConfig::new(TenantId(1), "any"))
            .unwrap();
        let mut hits = [0u32; 3];
        for i in 0..3000 {
            let a = r.route(TenantId(1), EntityId(i)).unwrap();
            assert_eq!(a, r.route(TenantId(1), EntityId(i)).unwrap());
            assert_eq!(a.shard_id.0, a.region_id.0);
            hits[a.shard_id.0 as usize] += 1;
        }
        assert!(hits.iter().all(|h| (800..1200).contains(h)), "{hits:?}");
    }

    #[test]
    fn relocation_moves_home_and_residency_and_is_idempotent() {
        let mut r = TenantRouter::new(ClusterTopology::grid(3, 1));
        let mut cfg = TenantConfig::new(TenantId(42), "mover");
        cfg.required_regions = vec![RegionId(0)];
        r.register_tenant(cfg).unwrap();
        let from = ShardAssignment {
            shard_id: ShardId(0),
            region_id: RegionId(0),
        };
        let to = ShardAssignment {
            shard_id: ShardId(0),
            region_id: RegionId(2),
        };
        assert_eq!(r.route(TenantId(42), EntityId(9)).unwrap(), from);
        r.relocate(TenantId(42), from, to).unwrap();
        r.relocate(TenantId(42), from, to).unwrap();
        assert_eq!(r.placement(TenantId(42)).unwrap(), &[to]);
        assert_eq!(r.route(TenantId(42), EntityId(9)).unwrap(), to);
        assert_eq!(
            r.config(TenantId(42)).unwrap().required_regions,
            vec![RegionId(2)]
        );
    }
}
