//! The deterministic simulator: a virtual clock, a seeded network with latency, jitter,
//! loss and duplication, partitions, crashes that lose the unsynced tail, and a simulated
//! disk under the real WAL that tears unsynced tails, lies about fsync, fills up and
//! flips bits (see [`SimFs`]). It drives the
//! same sans-IO [`Node`](crate::node::Node) as the tokio runtime, so what it tests is what
//! runs. A run is reproducible bit for bit from [`ClusterConfig::seed`].

mod cluster;
mod control_quorum;
mod disk;
mod disk_faults;
mod engine;
mod faults;
mod fs;
mod network;
mod rng;
mod settings;

pub use crate::cluster::{GroupConcern, RollingUpgradeCoordinator, Scope, Timing};
pub use cluster::{ClusterConfig, DEFAULT_START_NS, SimDriver, SimNodeRef, SimulatedCluster};
pub use control_quorum::{QuorumConfig, SimControlQuorum};
pub use disk_faults::DiskFault;
pub use engine::{SimDurability, SimStats};
pub use faults::{NetworkPartition, ShardCrash};
pub use fs::{CrashDamage, SimFs};
pub use network::{LinkConfig, PartitionId};
pub use rng::SimRng;

/// A tenant migration driven on the simulator.
pub type TenantMigration = crate::cluster::TenantMigration<SimDriver>;
