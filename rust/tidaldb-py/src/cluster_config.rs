//! The arguments of `tidaldb.Cluster(...)` and `register_tenant`, converted from Python
//! values into the core's option types, which check them and fill in the defaults.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use tidaldb::TenantId;
use tidaldb::cluster::{ClusterOptions, TenantOptions, WriteConcernArg};

use crate::convert::{
    Float, Loss, MaxEntities, MaxRetained, MaxRetainedOwn, MaxSignalsPerSec, MaxStorageBytes,
    Natural, Seed, ShardsPerRegion, TenantIdArg, TenantKw, WriteConcernKw, duration, region_names,
};
use crate::tenant::PyTenant;

pub struct ClusterArgs<'a, 'py> {
    pub regions: Option<Vec<String>>,
    pub shards_per_region: Natural<ShardsPerRegion>,
    pub seed: Natural<Seed>,
    pub latency: Option<&'a Bound<'py, PyAny>>,
    pub jitter: Option<&'a Bound<'py, PyAny>>,
    pub loss: Float<Loss>,
    pub write_concern: Option<&'a Bound<'py, PyAny>>,
    pub durability: &'a str,
    pub sync_interval: Option<&'a Bound<'py, PyAny>>,
    pub max_retained: Option<Natural<MaxRetained>>,
    pub max_retained_own: Option<Natural<MaxRetainedOwn>>,
    pub max_future_skew: Option<&'a Bound<'py, PyAny>>,
}

impl ClusterArgs<'_, '_> {
    /// The options as the core takes them; it checks them and fills in the defaults.
    pub fn options(self, py: Python<'_>) -> PyResult<ClusterOptions> {
        let write_concern = match self.write_concern {
            None => None,
            Some(v) if v.is_instance_of::<PyString>() => {
                Some(WriteConcernArg::Named(v.extract::<String>()?))
            }
            Some(v) => Some(WriteConcernArg::Replicas(
                v.extract::<Natural<WriteConcernKw>>()?.0,
            )),
        };
        Ok(ClusterOptions {
            regions: self.regions,
            shards_per_region: self.shards_per_region.0,
            seed: self.seed.0,
            latency: self
                .latency
                .map(|v| duration(py, "latency", v))
                .transpose()?,
            jitter: self.jitter.map(|v| duration(py, "jitter", v)).transpose()?,
            loss: self.loss.0,
            write_concern,
            durability: Some(self.durability.to_owned()),
            sync_interval: self
                .sync_interval
                .map(|v| duration(py, "sync_interval", v))
                .transpose()?,
            max_retained: self.max_retained.map(|v| v.0),
            max_retained_own: self.max_retained_own.map(|v| v.0),
            max_future_skew: self
                .max_future_skew
                .map(|v| duration(py, "max_future_skew", v))
                .transpose()?,
        })
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

/// The quotas of `register_tenant`, in its argument order.
pub type QuotaArgs = (
    Option<Natural<MaxSignalsPerSec>>,
    Option<Natural<MaxEntities>>,
    Option<Natural<MaxStorageBytes>>,
);

/// The options `register_tenant` was given, for the core to check.
pub fn tenant_options(
    id: Natural<TenantIdArg>,
    (rate, entities, storage): QuotaArgs,
    regions: Option<&Bound<'_, PyAny>>,
    label: Option<String>,
) -> PyResult<TenantOptions> {
    Ok(TenantOptions {
        id: id.0,
        max_signals_per_sec: rate.map(|v| v.0),
        max_entities: entities.map(|v| v.0),
        max_storage_bytes: storage.map(|v| v.0),
        regions: regions.map(|r| region_names("regions", r)).transpose()?,
        label,
    })
}
