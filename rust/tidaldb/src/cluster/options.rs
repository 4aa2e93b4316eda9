//! A cluster's options as a user gives them, checked and completed with defaults in one
//! place, so that every front end (Python, the Rust API) refuses the same input with the
//! same `InvalidArgument` naming the argument.

use std::time::Duration;

use super::durability::{ReplicaSync, replica_sync};
use super::regions::RegionNames;
use super::write_concern::WriteConcernChoice;
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::{DEFAULT_MAX_FUTURE_SKEW, DEFAULT_MAX_RETAINED, DEFAULT_MAX_RETAINED_OWN};
use crate::schema::ShardId;
use crate::tenancy::TenantConfig;

/// One-way link latency unless the caller gives one.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(20);
/// Link jitter unless the caller gives one.
pub const DEFAULT_JITTER: Duration = Duration::from_millis(5);
/// The longest one-way link latency, and jitter, a simulated cluster takes. Delays are
/// added to the virtual clock (nanoseconds, up to `Timestamp::MAX_NANOS`); a day is far
/// beyond any real link and keeps every delivery time in range.
pub const MAX_LINK_DELAY: Duration = Duration::from_secs(86_400);
/// How long a wait for convergence lasts unless the caller says.
pub const DEFAULT_CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// A write concern as given: a name or a number of other replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteConcernArg {
    Named(String),
    Replicas(u64),
}

/// The options of a cluster, unchecked; `None` means the default.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterOptions {
    /// Region names; default [`super::regions::DEFAULT_REGIONS`].
    pub regions: Option<Vec<String>>,
    /// At least 1; default 1.
    pub shards_per_region: u64,
    pub seed: u64,
    pub latency: Option<Duration>,
    pub jitter: Option<Duration>,
    /// A probability in [0, 1]; default 0.
    pub loss: f64,
    /// Default `"local"`.
    pub write_concern: Option<WriteConcernArg>,
    /// `"immediate"` (the default) or `"periodic"`.
    pub durability: Option<String>,
    /// How often `"periodic"` replicas sync; `None` for [`super::PERIODIC_SYNC`].
    pub sync_interval: Option<Duration>,
    /// The most events relayed from other origins a replica keeps in memory for its
    /// peers; at least 1; default [`DEFAULT_MAX_RETAINED`]. Past it, peers are caught up
    /// from the durable log.
    pub max_retained: Option<u64>,
    /// The same bound for a replica's own events; at least 1; default
    /// [`DEFAULT_MAX_RETAINED_OWN`].
    pub max_retained_own: Option<u64>,
    /// How far ahead of a node's clock a write's timestamp may be; `None` for 5 minutes.
    pub max_future_skew: Option<Duration>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            regions: None,
            shards_per_region: 1,
            seed: 0,
            latency: None,
            jitter: None,
            loss: 0.0,
            write_concern: None,
            durability: None,
            sync_interval: None,
            max_retained: None,
            max_retained_own: None,
            max_future_skew: None,
        }
    }
}

/// Checked options with every default filled in: what a driver builds a cluster from.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    pub regions: RegionNames,
    pub shards_per_region: u16,
    pub seed: u64,
    pub latency: Duration,
    pub jitter: Duration,
    pub loss: f64,
    pub write_concern: WriteConcernChoice,
    pub sync: ReplicaSync,
    pub max_retained: usize,
    pub max_retained_own: usize,
    pub max_future_skew: Duration,
}

impl ClusterOptions {
    /// The settings, or `InvalidArgument` naming the first argument out of its domain.
    pub fn validate(self) -> Result<ClusterSettings> {
        let regions = match self.regions {
            Some(names) => RegionNames::new(names)?,
            None => RegionNames::default(),
        };
        let shards_per_region = match u16::try_from(self.shards_per_region) {
            Ok(0) => return Err(invalid("shards_per_region", "must be at least 1".into())),
            Ok(s) => s,
            Err(_) => {
                return Err(invalid(
                    "shards_per_region",
                    format!("{} is too large for this argument", self.shards_per_region),
                ));
            }
        };
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(invalid(
                "loss",
                format!(
                    "{} is not a probability; pass a number in [0, 1]",
                    self.loss
                ),
            ));
        }
        let write_concern = match self.write_concern {
            None => WriteConcernChoice::Local,
            Some(WriteConcernArg::Named(n)) => WriteConcernChoice::parse(&n)?,
            Some(WriteConcernArg::Replicas(k)) => WriteConcernChoice::replicas(k, regions.len())?,
        };
        let latency = link_delay("latency", self.latency, DEFAULT_LATENCY)?;
        let jitter = link_delay("jitter", self.jitter, DEFAULT_JITTER)?;
        let sync = replica_sync(
            self.durability.as_deref().unwrap_or("immediate"),
            self.sync_interval,
        )?;
        let max_retained = retained_bound("max_retained", self.max_retained, DEFAULT_MAX_RETAINED)?;
        let max_retained_own = retained_bound(
            "max_retained_own",
            self.max_retained_own,
            DEFAULT_MAX_RETAINED_OWN,
        )?;
        Ok(ClusterSettings {
            regions,
            shards_per_region,
            seed: self.seed,
            latency,
            jitter,
            loss: self.loss,
            write_concern,
            sync,
            max_retained,
            max_retained_own,
            max_future_skew: self.max_future_skew.unwrap_or(DEFAULT_MAX_FUTURE_SKEW),
        })
    }
}

/// A link delay, refused beyond [`MAX_LINK_DELAY`] rather than cut to fit the clock.
fn link_delay(name: &'static str, given: Option<Duration>, default: Duration) -> Result<Duration> {
    match given {
        None => Ok(default),
        Some(d) if d <= MAX_LINK_DELAY => Ok(d),
        Some(d) => Err(invalid(
            name,
            format!(
                "{} s is longer than a simulated link may take; pass at most {} s (a day)",
                d.as_secs_f64(),
                MAX_LINK_DELAY.as_secs()
            ),
        )),
    }
}

/// A bound on a replica's in-memory log: at least one event, and one the machine can count.
fn retained_bound(name: &'static str, given: Option<u64>, default: usize) -> Result<usize> {
    let Some(n) = given else {
        return Ok(default);
    };
    match usize::try_from(n) {
        Ok(0) => Err(invalid(
            name,
            "must be at least 1: a replica keeps at least its newest event in memory".into(),
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(invalid(name, format!("{n} is too large for this argument"))),
    }
}

/// A shard number a caller named, checked against the shards each region has.
pub fn shard_in(shard: u64, shards_per_region: u16) -> Result<ShardId> {
    match u16::try_from(shard) {
        Ok(s) if s < shards_per_region => Ok(ShardId(s)),
        _ => Err(invalid(
            "shard",
            format!(
                "{shard} is not a shard of this cluster; it has {shards_per_region} per region"
            ),
        )),
    }
}

/// The options of a tenant being registered, unchecked; `None` means no limit, every
/// region, or the default label. The client protocol carries them as they are, so a
/// server checks them with the same rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantOptions {
    pub id: u64,
    pub max_signals_per_sec: Option<u64>,
    pub max_entities: Option<u64>,
    pub max_storage_bytes: Option<u64>,
    /// The regions its data may live in; `None` for every region.
    pub regions: Option<Vec<String>>,
    /// Default `"tenant <id>"`.
    pub label: Option<String>,
}

impl TenantOptions {
    /// The tenant's configuration, its regions looked up in `names`. The control plane
    /// checks the rest (quotas of zero, the default tenant) when it registers it.
    pub fn config(self, names: &RegionNames) -> Result<TenantConfig> {
        let tenant = TenantId(self.id);
        let label = self.label.unwrap_or_else(|| format!("tenant {}", self.id));
        let mut config = TenantConfig::new(tenant, label);
        config.max_signals_per_sec = self
            .max_signals_per_sec
            .map(|r| {
                u32::try_from(r).map_err(|_| {
                    invalid(
                        "max_signals_per_sec",
                        format!("{r} is too large for this argument"),
                    )
                })
            })
            .transpose()?;
        config.max_entities = self.max_entities;
        config.max_storage_bytes = self.max_storage_bytes;
        if let Some(regions) = self.regions {
            if regions.is_empty() {
                return Err(invalid(
                    "regions",
                    "an empty list would keep the tenant nowhere; name its regions, or pass \
                     None for every region"
                        .into(),
                ));
            }
            for name in &regions {
                config.required_regions.push(names.id(name)?);
            }
        }
        Ok(config)
    }
}

fn invalid(name: &'static str, reason: String) -> TidalError {
    TidalError::InvalidArgument { name, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::RegionId;

    fn refused_naming(r: Result<ClusterSettings>, arg: &str) -> bool {
        matches!(r, Err(TidalError::InvalidArgument { name, .. }) if name == arg)
    }

    #[test]
    fn defaults_fill_what_the_caller_left_out() {
        let s = ClusterOptions::default().validate().unwrap();
        assert_eq!(s.regions.names(), ["us-east", "eu-west", "ap-south"]);
        assert_eq!(s.shards_per_region, 1);
        assert_eq!(
            (s.latency, s.jitter),
            (Duration::from_millis(20), Duration::from_millis(5))
        );
        assert_eq!(s.write_concern, WriteConcernChoice::Local);
        assert_eq!(s.sync, ReplicaSync::Immediate);
        assert_eq!(
            (s.max_retained, s.max_retained_own),
            (DEFAULT_MAX_RETAINED, DEFAULT_MAX_RETAINED_OWN)
        );
    }

    #[test]
    fn each_bad_option_is_refused_naming_it() {
        let with = |f: fn(&mut ClusterOptions)| {
            let mut o = ClusterOptions::default();
            f(&mut o);
            o.validate()
        };
        assert!(refused_naming(
            with(|o| o.regions = Some(vec![])),
            "regions"
        ));
        assert!(refused_naming(
            with(|o| o.shards_per_region = 0),
            "shards_per_region"
        ));
        assert!(refused_naming(
            with(|o| o.shards_per_region = 70_000),
            "shards_per_region"
        ));
        assert!(refused_naming(with(|o| o.loss = 1.5), "loss"));
        assert!(refused_naming(with(|o| o.loss = f64::NAN), "loss"));
        assert!(refused_naming(
            with(|o| o.write_concern = Some(WriteConcernArg::Replicas(3))),
            "write_concern"
        ));
        assert!(refused_naming(
            with(|o| o.durability = Some("batched".into())),
            "durability"
        ));
        assert!(refused_naming(
            with(|o| o.max_retained = Some(0)),
            "max_retained"
        ));
        assert!(refused_naming(
            with(|o| o.max_retained_own = Some(0)),
            "max_retained_own"
        ));
    }

    #[test]
    fn the_write_concern_bound_follows_the_regions_given() {
        let o = ClusterOptions {
            regions: Some(vec!["a".into(), "b".into()]),
            write_concern: Some(WriteConcernArg::Replicas(2)),
            ..ClusterOptions::default()
        };
        assert!(refused_naming(o.clone().validate(), "write_concern"));
        let one = ClusterOptions {
            write_concern: Some(WriteConcernArg::Replicas(1)),
            ..o
        };
        assert_eq!(
            one.validate().unwrap().write_concern,
            WriteConcernChoice::Replicated(1)
        );
    }

    #[test]
    fn shards_are_checked_against_the_region_size() {
        assert_eq!(shard_in(1, 2).unwrap(), ShardId(1));
        assert!(shard_in(2, 2).is_err());
        assert!(shard_in(u64::MAX, 2).is_err());
    }

    #[test]
    fn tenant_options_become_a_config() {
        let names = RegionNames::default();
        let c = TenantOptions {
            id: 5,
            max_signals_per_sec: Some(100),
            regions: Some(vec!["ap-south".into()]),
            ..TenantOptions::default()
        }
        .config(&names)
        .unwrap();
        assert_eq!(c.label, "tenant 5");
        assert_eq!(c.max_signals_per_sec, Some(100));
        assert_eq!(c.required_regions, vec![RegionId(2)]);

        let refused = |o: TenantOptions, arg: &str| matches!(o.config(&names), Err(TidalError::InvalidArgument { name, .. }) if name == arg);
        assert!(refused(
            TenantOptions {
                regions: Some(vec![]),
                ..TenantOptions::default()
            },
            "regions"
        ));
        assert!(refused(
            TenantOptions {
                max_signals_per_sec: Some(1 << 40),
                ..TenantOptions::default()
            },
            "max_signals_per_sec"
        ));
        let unknown = TenantOptions {
            regions: Some(vec!["mars".into()]),
            ..TenantOptions::default()
        };
        assert!(matches!(
            unknown.config(&names),
            Err(TidalError::NotFound(_))
        ));
    }
}
