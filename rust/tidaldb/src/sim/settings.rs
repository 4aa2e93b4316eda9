//! A simulated cluster built from checked [`ClusterSettings`]: the one way a front end
//! turns user options into a [`ClusterConfig`].

use super::cluster::ClusterConfig;
use super::engine::SimDurability;
use super::network::LinkConfig;
use crate::cluster::GroupConcern;
use crate::cluster::{ClusterSettings, ReplicaSync, WriteConcernChoice};
use crate::node::WriteConcern;
use crate::schema::Schema;

impl ClusterConfig {
    /// The configuration `settings` describe, with every other field at its default.
    pub fn from_settings(schema: Schema, settings: &ClusterSettings) -> ClusterConfig {
        let mut config = ClusterConfig::new(schema);
        config.regions = settings.regions.ids();
        config.shards_per_region = settings.shards_per_region;
        config.seed = settings.seed;
        config.links = LinkConfig {
            latency: settings.latency,
            jitter: settings.jitter,
            loss: settings.loss,
            ..LinkConfig::default()
        };
        (config.write_concern, config.group_concern) = match settings.write_concern {
            WriteConcernChoice::Local => (WriteConcern::Local, None),
            WriteConcernChoice::Replicated(k) => (WriteConcern::Replicated(k), None),
            WriteConcernChoice::Majority => (WriteConcern::Local, Some(GroupConcern::Majority)),
            WriteConcernChoice::All => (WriteConcern::Local, Some(GroupConcern::All)),
        };
        config.durability = match settings.sync {
            ReplicaSync::Immediate => SimDurability::Immediate,
            ReplicaSync::Every(d) => SimDurability::Every(d),
        };
        config.max_retained = settings.max_retained;
        config.max_retained_own = settings.max_retained_own;
        config.max_future_skew = settings.max_future_skew;
        config
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cluster::{ClusterOptions, WriteConcernArg};
    use crate::schema::{DecaySpec, EntityKind, RegionId};

    #[test]
    fn settings_reach_the_config() {
        let schema = Schema::builder()
            .signal(
                "view",
                EntityKind::Item,
                DecaySpec::Exponential {
                    half_life: Duration::from_secs(60),
                },
            )
            .add()
            .build()
            .unwrap();
        let settings = ClusterOptions {
            regions: Some(vec!["a".into(), "b".into()]),
            shards_per_region: 2,
            seed: 9,
            loss: 0.25,
            write_concern: Some(WriteConcernArg::Named("majority".into())),
            durability: Some("periodic".into()),
            max_retained: Some(20_000),
            max_retained_own: Some(30_000),
            ..ClusterOptions::default()
        }
        .validate()
        .unwrap();
        let c = ClusterConfig::from_settings(schema, &settings);
        assert_eq!(c.regions, vec![RegionId(0), RegionId(1)]);
        assert_eq!((c.shards_per_region, c.seed), (2, 9));
        assert_eq!(c.links.loss, 0.25);
        assert_eq!((c.max_retained, c.max_retained_own), (20_000, 30_000));
        assert_eq!(c.links.latency, Duration::from_millis(20));
        assert_eq!(
            (c.write_concern, c.group_concern),
            (WriteConcern::Local, Some(GroupConcern::Majority))
        );
        assert_eq!(
            c.durability,
            SimDurability::Every(Duration::from_millis(100))
        );
    }
}
