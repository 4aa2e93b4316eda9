//! The arguments of `tidaldb.Cluster(...)`, checked and turned into a `ClusterConfig`, and
//! the argument types its methods share.

use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use tidaldb::node::WriteConcern;
use tidaldb::schema::Schema;
use tidaldb::sim::{ClusterConfig, GroupConcern, LinkConfig, SimDurability};
use tidaldb::{RegionId, TenantId};

use crate::cluster::PyCluster;
use crate::convert::{
    Float, Loss, MaxEntities, MaxSignalsPerSec, MaxStorageBytes, Natural, Seed, ShardsPerRegion,
    TenantKw, WriteConcernArg, duration, region_names,
};
use crate::errors::invalid;
use crate::tenant::PyTenant;
use tidaldb::tenancy::TenantConfig;

/// What `durability="periodic"` means: every replica syncs every 100 ms of virtual time.
const PERIODIC_SYNC: Duration = Duration::from_millis(100);

/// The regions a cluster is built with unless the caller names others.
const DEFAULT_REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

pub struct ClusterArgs<'a, 'py> {
    pub regions: Option<Vec<String>>,
    pub shards_per_region: Natural<ShardsPerRegion>,
    pub seed: Natural<Seed>,
    pub latency: Option<&'a Bound<'py, PyAny>>,
    pub jitter: Option<&'a Bound<'py, PyAny>>,
    pub loss: Float<Loss>,
    pub write_concern: Option<&'a Bound<'py, PyAny>>,
    pub durability: &'a str,
}

impl ClusterArgs<'_, '_> {
    /// The simulator's configuration, and the region names in `RegionId` order.
    pub fn config(self, py: Python<'_>, schema: Schema) -> PyResult<(ClusterConfig, Vec<String>)> {
        let ClusterArgs {
            regions,
            shards_per_region,
            seed,
            latency,
            jitter,
            loss,
            write_concern,
            durability,
        } = self;
        let names: Vec<String> =
            regions.unwrap_or_else(|| DEFAULT_REGIONS.iter().map(|s| s.to_string()).collect());
        if names.is_empty() || names.len() > 64 {
            return Err(invalid(py, "regions", "give between 1 and 64 region names"));
        }
        for (i, n) in names.iter().enumerate() {
            let problem = if n.is_empty() {
                "a region name is empty"
            } else if names[..i].contains(n) {
                "is given twice"
            } else {
                continue;
            };
            return Err(invalid(
                py,
                "regions",
                format!("{n:?}: {problem}; name each region once"),
            ));
        }
        let shards: u16 = shards_per_region.narrow(py)?;
        if shards == 0 {
            return Err(invalid(py, "shards_per_region", "must be at least 1"));
        }
        let loss = loss.0;
        if !(0.0..=1.0).contains(&loss) {
            return Err(invalid(
                py,
                "loss",
                format!("{loss} is not a probability; pass a number in [0, 1]"),
            ));
        }
        let latency = match latency {
            Some(v) => duration(py, "latency", v)?,
            None => Duration::from_millis(20),
        };
        let jitter = match jitter {
            Some(v) => duration(py, "jitter", v)?,
            None => Duration::from_millis(5),
        };
        let concern = match write_concern {
            Some(v) => parse_write_concern(py, v, names.len())?,
            None => (WriteConcern::Local, None),
        };
        let durability = match durability {
            "immediate" => SimDurability::Immediate,
            "periodic" => SimDurability::Every(PERIODIC_SYNC),
            other => {
                return Err(invalid(
                    py,
                    "durability",
                    format!("unknown durability {other:?}; use \"immediate\" or \"periodic\""),
                ));
            }
        };
        let mut config = ClusterConfig::new(schema);
        config.regions = (0..names.len()).map(|i| RegionId(i as u16)).collect();
        config.shards_per_region = shards;
        config.seed = seed.0;
        config.links = LinkConfig {
            latency,
            jitter,
            loss,
            ..LinkConfig::default()
        };
        (config.write_concern, config.group_concern) = concern;
        config.durability = durability;
        Ok((config, names))
    }
}

/// `write_concern`: "local", a fixed number of other replicas, or "majority" / "all" of
/// the group that serves each write (a tenant kept in one region has no other replica, so
/// "all" then means the local append).
fn parse_write_concern(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    regions: usize,
) -> PyResult<(WriteConcern, Option<GroupConcern>)> {
    if let Ok(text) = value.extract::<String>() {
        return match text.as_str() {
            "local" => Ok((WriteConcern::Local, None)),
            "majority" => Ok((WriteConcern::Local, Some(GroupConcern::Majority))),
            "all" => Ok((WriteConcern::Local, Some(GroupConcern::All))),
            other => Err(invalid(
                py,
                "write_concern",
                format!(
                    "unknown write concern {other:?}; use \"local\", \"majority\", \"all\" \
                     or the number of other replicas to wait for"
                ),
            )),
        };
    }
    let k: Natural<WriteConcernArg> = value.extract()?;
    let others = regions.saturating_sub(1);
    match u8::try_from(k.0) {
        Ok(0) => Ok((WriteConcern::Local, None)),
        Ok(k) if usize::from(k) <= others => Ok((WriteConcern::Replicated(k), None)),
        _ => Err(invalid(
            py,
            "write_concern",
            format!(
                "{} other replicas requested, but each shard has only {others}",
                k.0
            ),
        )),
    }
}

/// A `tenant=` argument: a `Tenant`, a tenant id, or `None` for the default tenant.
pub struct TenantArg(pub TenantId);

impl<'a, 'py> FromPyObject<'a, 'py> for TenantArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(t) = obj.cast::<PyTenant>() {
            return Ok(TenantArg(t.get().id));
        }
        match obj.extract::<Natural<TenantKw>>() {
            Ok(id) => Ok(TenantArg(TenantId(id.0))),
            Err(e) if e.is_instance_of::<PyTypeError>(obj.py()) => {
                Err(PyTypeError::new_err(format!(
                    "tenant: expected a tidaldb.Tenant or an int tenant id, got {}",
                    obj.get_type().name()?
                )))
            }
            Err(e) => Err(e),
        }
    }
}

/// The tenant of an optional `tenant=` argument.
pub fn tenant_of(arg: Option<TenantArg>) -> TenantId {
    arg.map_or(TenantId::DEFAULT, |t| t.0)
}

pub fn convergence_timeout(
    py: Python<'_>,
    timeout: Option<&Bound<'_, PyAny>>,
) -> PyResult<Duration> {
    match timeout {
        Some(t) => duration(py, "timeout", t),
        None => Ok(Duration::from_secs(30)),
    }
}

/// The quotas of `register_tenant`, in its argument order.
pub type QuotaArgs = (
    Option<Natural<MaxSignalsPerSec>>,
    Option<Natural<MaxEntities>>,
    Option<Natural<MaxStorageBytes>>,
);

/// The configuration `register_tenant` asks for; the core validates the rest.
pub fn tenant_config(
    py: Python<'_>,
    cluster: &PyCluster,
    tenant: TenantId,
    (rate, entities, storage): QuotaArgs,
    regions: Option<&Bound<'_, PyAny>>,
    label: Option<String>,
) -> PyResult<TenantConfig> {
    let label = label.unwrap_or_else(|| format!("tenant {}", tenant.0));
    let mut config = TenantConfig::new(tenant, label);
    config.max_signals_per_sec = rate.map(|v| v.narrow(py)).transpose()?;
    config.max_entities = entities.map(|v| v.0);
    config.max_storage_bytes = storage.map(|v| v.0);
    let regions = regions.map(|r| region_names("regions", r)).transpose()?;
    if regions.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(
            py,
            "regions",
            "an empty list would keep the tenant nowhere; name its regions, or pass None for \
             every region",
        ));
    }
    for name in regions.unwrap_or_default() {
        config.required_regions.push(cluster.region(py, &name)?);
    }
    Ok(config)
}
