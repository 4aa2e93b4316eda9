//! The deterministic simulator: a virtual clock, a seeded network with latency, jitter,
//! loss and duplication, partitions, and crashes that lose the unsynced tail. It drives the
//! same sans-IO [`Node`](crate::node::Node) as the tokio runtime, so what it tests is what
//! runs. A run is reproducible bit for bit from [`ClusterConfig::seed`].

mod client;
mod cluster;
mod disk;
mod engine;
mod faults;
mod migration;
mod migration_run;
mod network;
mod node_ref;
mod rng;
mod settings;
mod tenants;
mod upgrade;

pub use client::Scope;
pub use cluster::{ClusterConfig, DEFAULT_START_NS, GroupConcern, SimulatedCluster, Timing};
pub use disk::SimDisk;
pub use engine::{SimDurability, SimStats};
pub use faults::{NetworkPartition, ShardCrash};
pub use migration::TenantMigration;
pub use network::{LinkConfig, PartitionId};
pub use node_ref::SimNodeRef;
pub use rng::SimRng;
pub use upgrade::RollingUpgradeCoordinator;
