//! Driver-neutral orchestration: what the simulator and the runtime share above the
//! control plane. Here: a cluster's options and their defaults, region names, write
//! concerns and durability presets by name, and idempotency keys as clients give them.

mod durability;
mod idempotency;
mod options;
mod regions;
mod write_concern;

pub use durability::{BATCHED, PERIODIC_SYNC, ReplicaSync, db_durability, replica_sync};
pub use idempotency::{KeyInput, idempotency_tag};
pub use options::{
    ClusterOptions, ClusterSettings, DEFAULT_CONVERGENCE_TIMEOUT, DEFAULT_JITTER, DEFAULT_LATENCY,
    TenantOptions, WriteConcernArg, shard_in,
};
pub use regions::{DEFAULT_REGIONS, MAX_REGIONS, RegionNames};
pub use write_concern::WriteConcernChoice;
