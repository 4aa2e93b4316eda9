//! Driver-neutral orchestration, between the control plane and the two drivers: client
//! routing and scopes, tenant placement, dual-write acknowledgement, the migration and
//! rolling-upgrade coordinators, failover and rejoin; and what every front end would
//! otherwise decide for itself: a cluster's options and their defaults, region names,
//! write concerns and durability presets by name, and idempotency keys.
//!
//! [`Cluster`] is this layer over one [`ClusterDriver`]. The simulator's
//! `SimulatedCluster` and the runtime's `LocalCluster` are `Cluster`s over their drivers,
//! so every decision here is made by the same code under virtual time and under the wall
//! clock; the drivers differ only in clock, network and disk.

mod bootstrap;
mod client;
mod config;
mod control_host;
mod driver;
mod durability;
mod hosts;
mod idempotency;
mod membership;
mod migration;
mod migration_run;
mod node_ref;
mod options;
mod regions;
mod routing;
mod tenants;
mod upgrade;
mod write_concern;

pub use bootstrap::{MAX_NODES, initial_replicas, shard_router};
pub use config::{ClusterSpec, GroupConcern, Timing};
pub use control_host::control_round;
pub use driver::{ClusterDriver, ClusterView, Layout};
pub use durability::{
    BATCHED, MAX_SYNC_INTERVAL, PERIODIC_SYNC, ReplicaSync, db_durability, replica_sync,
};
pub use idempotency::{KeyInput, idempotency_tag};
pub use membership::membership_repair;
pub use migration::TenantMigration;
pub use node_ref::NodeRef;
pub use options::{
    ClusterOptions, ClusterSettings, DEFAULT_CONVERGENCE_TIMEOUT, DEFAULT_JITTER, DEFAULT_LATENCY,
    TenantOptions, WriteConcernArg, shard_in,
};
pub use regions::{DEFAULT_REGIONS, MAX_REGIONS, RegionNames};
pub use routing::{Scope, check_region};
pub use upgrade::RollingUpgradeCoordinator;
pub use write_concern::WriteConcernChoice;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::schema::{EntityId, RegionId, ShardId};

/// The cluster layer over one driver. Clones share the driver's cluster.
#[derive(Clone, Debug)]
pub struct Cluster<D> {
    pub(crate) driver: D,
    /// Held by operations that change which replicas exist (registering a tenant, a
    /// migration's target and collection, crashing and restarting hosts): each takes
    /// several driver calls, and two interleaved could hand out the same node id or
    /// restart a replica twice.
    membership: Arc<Mutex<()>>,
}

impl<D: ClusterDriver> Cluster<D> {
    pub fn from_driver(driver: D) -> Self {
        Cluster {
            driver,
            membership: Arc::new(Mutex::new(())),
        }
    }

    /// Serializes operations that add, remove, crash or restart replicas.
    pub(crate) fn membership_change(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic under the lock leaves nothing inconsistent.
        self.membership.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn driver(&self) -> &D {
        &self.driver
    }

    pub fn layout(&self) -> &Layout {
        self.driver.layout()
    }

    pub fn regions(&self) -> &[RegionId] {
        &self.driver.layout().regions
    }

    /// The default tenant's shard of `entity`.
    pub fn shard_of(&self, entity: EntityId) -> ShardId {
        self.driver.layout().router.route(entity)
    }
}
