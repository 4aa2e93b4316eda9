//! Tenancy: who a write belongs to, what that tenant may spend, and where its data lives.
//!
//! Every tenant is an island. It has its own event log, seq space, version vector, state
//! and WAL directory, so one tenant's load, corruption or migration never touches
//! another's. Quotas are checked at admission, before the log append, so a refused write
//! leaves nothing behind.

mod config;
mod paths;
mod quota;
mod router;

pub use crate::event::TenantId;
pub use config::{MAX_LABEL_BYTES, TenantConfig};
pub use paths::tenant_wal_dir;
pub use quota::{
    EVENT_STORAGE_BYTES, Quota, QuotaBreach, TenantQuotas, TenantRateLimiter, TenantUsage,
};
pub use router::{ClusterTopology, ShardAssignment, TenantRouter};
