//! Schema: identities, time, decay specifications, windows and the signal catalogue.

mod builder;
mod decay_args;
mod duration;
mod spec;
mod types;

pub use builder::{Schema, SchemaBuilder, SignalBuilder, SignalDef, SignalIdx};
pub use decay_args::{DecayLength, decay_of};
pub use duration::{duration_from_secs, format_duration, parse_duration};
pub use spec::{DecaySpec, Window};
pub use types::{EntityId, EntityKind, NodeId, RegionId, ShardId, Timestamp};
