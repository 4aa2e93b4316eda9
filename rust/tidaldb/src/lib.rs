//! tidaldb: a database for engagement signals whose value decays with time.
//!
//! Every write becomes an [`event::Event`]; a replica's state is a pure function of the set
//! of events it has applied, so replicas that applied the same events return bit-identical
//! scores. See `DESIGN.md` for the architecture and `README.md` for a tour.
//!
//! ```
//! use std::time::Duration;
//! use tidaldb::{DecaySpec, EntityId, EntityKind, Schema, TidalDb, Timestamp};
//!
//! let schema = Schema::builder()
//!     .signal("view", EntityKind::Item, DecaySpec::Exponential { half_life: Duration::from_secs(3600) })
//!     .add()
//!     .build()?;
//! let db = TidalDb::builder().ephemeral().with_schema(schema).open()?;
//! let t0 = Timestamp::from_nanos(1_700_000_000_000_000_000)?;
//! db.signal("view", EntityId(7), 2.0, Some(t0))?;
//! let later = Timestamp::from_nanos(t0.as_nanos() + 3_600_000_000_000)?;
//! assert_eq!(db.read_decay_score_at(EntityId(7), "view", later)?, 1.0);
//! # Ok::<(), tidaldb::TidalError>(())
//! ```

pub mod cluster;
pub mod control;
pub mod crdt;
pub mod error;
pub mod event;
pub mod interrupt;
pub mod ledger;
pub mod node;
pub mod query;
pub mod runtime;
pub mod schema;
pub mod sim;
pub mod tenancy;
pub mod wal;

pub use error::{ErrorKind, Result, TidalError};
pub use event::{Event, EventBody, EventId, TenantId, VersionVector};
pub use query::{QueryStats, ReplicaAddr, Results, Retrieve, ScoredItem};
pub use runtime::{TidalDb, TidalDbBuilder};
pub use schema::{
    DecaySpec, EntityId, EntityKind, NodeId, RegionId, Schema, SchemaBuilder, ShardId, SignalDef,
    Timestamp, Window,
};
pub use wal::Durability;

/// The README's Rust example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
