//! A tenant migration started with its target chosen, and run whole: the loop every front
//! end would otherwise write itself (prepare → dual write → finalize → gc, with progress
//! reported after each step).

use std::time::Duration;

use super::{Cluster, ClusterDriver, TenantMigration};
use crate::control::MigrationState;
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::{RegionId, ShardId};

impl<D: ClusterDriver + Clone> Cluster<D> {
    /// Starts moving `tenant`'s replica of `to_shard` to `to_region`. Without a shard, the
    /// tenant's only shard is moved; a tenant with several must name one.
    pub fn migrate_tenant(
        &self,
        tenant: TenantId,
        to_region: RegionId,
        to_shard: Option<ShardId>,
    ) -> Result<TenantMigration<D>> {
        let placement = self.with_control(|control, _| {
            Ok::<_, TidalError>(control.router().placement(tenant)?.to_vec())
        })?;
        let mut shards: Vec<ShardId> = placement.iter().map(|a| a.shard_id).collect();
        shards.sort_unstable();
        shards.dedup();
        let shard = match (to_shard, shards.as_slice()) {
            (Some(s), _) if shards.contains(&s) => s,
            (Some(s), _) => {
                return Err(TidalError::InvalidArgument {
                    name: "to_shard",
                    reason: format!("tenant {} keeps no replica of shard {}", tenant.0, s.0),
                });
            }
            (None, [only]) => *only,
            (None, _) => {
                return Err(TidalError::InvalidArgument {
                    name: "to_shard",
                    reason: format!(
                        "tenant {} has replicas of shards {:?}; name the one to move",
                        tenant.0,
                        shards.iter().map(|s| s.0).collect::<Vec<_>>()
                    ),
                });
            }
        };
        if placement
            .iter()
            .any(|a| a.shard_id == shard && a.region_id == to_region)
        {
            return Err(TidalError::InvalidArgument {
                name: "to_region",
                reason: format!(
                    "tenant {} already keeps shard {} in region {}; name another region",
                    tenant.0, shard.0, to_region.0
                ),
            });
        }
        self.begin_tenant_migration(tenant, shard, shard, to_region)
    }
}

impl<D: ClusterDriver> TenantMigration<D> {
    /// The steps of a migration: prepare the target, enter dual write, finalize, collect
    /// the source.
    pub const STEPS: u64 = 4;

    /// A migration's states in the order it passes through them.
    pub const STATES: [MigrationState; 5] = [
        MigrationState::Idle,
        MigrationState::TargetCreated,
        MigrationState::DualWrite,
        MigrationState::Finalized,
        MigrationState::Complete,
    ];

    /// Steps already taken once the record is in `state`: its place in [`Self::STATES`].
    pub fn steps_done(state: MigrationState) -> u64 {
        match state {
            MigrationState::Idle => 0,
            MigrationState::TargetCreated => 1,
            MigrationState::DualWrite => 2,
            MigrationState::Finalized => 3,
            MigrationState::Complete => Self::STEPS,
        }
    }

    /// The state of the tenant's migration `number` (its record's `number`): `Complete`
    /// once another has begun, since that one must have completed first.
    pub fn state_of(&self, number: u64) -> Result<MigrationState> {
        let record = self.record()?;
        Ok(if record.number == number {
            record.state
        } else {
            MigrationState::Complete
        })
    }

    /// `Conflict` unless migration `number` is still the tenant's current one, so that a
    /// step taken through an old handle cannot act on a newer migration.
    pub fn ensure_current(&self, number: u64) -> Result<()> {
        if self.record()?.number == number {
            return Ok(());
        }
        Err(TidalError::Conflict(format!(
            "this handle is for migration {number} of tenant {}, which completed; \
             tenant.migration is the one under way",
            self.tenant()
        )))
    }

    /// Takes the next step of migration `number` from the state its record is in, and
    /// returns the state after it: prepare the target, enter dual write, finalize, then
    /// collect the source after `grace`. A complete migration stays complete.
    pub fn step(&self, number: u64, grace: Duration) -> Result<MigrationState> {
        let before = self.state_of(number)?;
        match before {
            MigrationState::Idle => self.prepare_target()?,
            MigrationState::TargetCreated => self.enter_dual_write()?,
            MigrationState::DualWrite => self.finalize()?,
            MigrationState::Finalized => self.gc_source(grace)?,
            MigrationState::Complete => return Ok(before),
        }
        let after = self.state_of(number)?;
        // Each step moves the record on; a caller looping over steps relies on it.
        debug_assert!(after > before, "{before:?} stayed {after:?}");
        if after <= before {
            return Err(TidalError::Conflict(format!(
                "the step from {} left tenant {}'s migration in {}",
                before.name(),
                self.tenant(),
                after.name()
            )));
        }
        Ok(after)
    }

    /// Runs every remaining step of migration `number`, calling `on_step` with the state
    /// after each. A step that fails stops the run; since every step is idempotent, a
    /// later run resumes where the record says.
    pub fn run_steps<E: From<TidalError>>(
        &self,
        number: u64,
        grace: Duration,
        mut on_step: impl FnMut(MigrationState) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        while self.state_of(number)? != MigrationState::Complete {
            on_step(self.step(number, grace)?)?;
            crate::interrupt::checkpoint()?;
        }
        Ok(())
    }
}
