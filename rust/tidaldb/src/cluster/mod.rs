//! Driver-neutral orchestration, between the control plane and the two drivers: client
//! routing and scopes, tenant placement, dual-write acknowledgement, the migration and
//! rolling-upgrade coordinators, failover and rejoin.
//!
//! [`Cluster`] is this layer over one [`ClusterDriver`]. The simulator's
//! `SimulatedCluster` and the runtime's `LocalCluster` are `Cluster`s over their drivers,
//! so every decision here is made by the same code under virtual time and under the wall
//! clock; the drivers differ only in clock, network and disk.

mod bootstrap;
mod client;
mod config;
mod driver;
mod hosts;
mod membership;
mod migration;
mod node_ref;
mod routing;
mod tenants;
mod upgrade;

pub use bootstrap::{MAX_NODES, initial_replicas, shard_router};
pub use config::{GroupConcern, Timing};
pub use driver::{ClusterDriver, ClusterView, Layout};
pub use membership::membership_repair;
pub use migration::TenantMigration;
pub use node_ref::NodeRef;
pub use routing::{Scope, check_region};
pub use upgrade::RollingUpgradeCoordinator;

use crate::schema::{EntityId, RegionId, ShardId};

/// The cluster layer over one driver. Clones share the driver's cluster.
#[derive(Clone, Debug)]
pub struct Cluster<D> {
    pub(crate) driver: D,
}

impl<D: ClusterDriver> Cluster<D> {
    pub fn from_driver(driver: D) -> Self {
        Cluster { driver }
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
