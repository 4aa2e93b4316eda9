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

/// A schema of one item signal, "view", decaying with an hour's half-life: what the
/// crate's own tests write when the signal's kind does not matter.
#[cfg(test)]
pub fn hourly_view_schema() -> Schema {
    let half_life = std::time::Duration::from_secs(3600);
    Schema::builder()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential { half_life },
        )
        .add()
        .build()
        .expect("a valid schema")
}
