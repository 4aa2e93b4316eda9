//! `tidaldb.Cluster`: a simulated multi-region cluster on virtual time. Its reads and
//! writes come from `_Scoped` (see `scoped.rs`); here are the cluster's own: faults, time,
//! convergence, health and tenants.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tidaldb::cluster::{
    ClusterOptions, DEFAULT_CONVERGENCE_TIMEOUT, RollingUpgradeCoordinator, shard_in,
};
use tidaldb::sim::{ClusterConfig, SimulatedCluster};
use tidaldb::{ShardId, TenantId, TidalError};

use crate::cluster_config::{ClusterArgs, TenantArg, tenant_of, tenant_options};
use crate::convert::{
    Float, Loss, MaxEntities, MaxRetained, MaxRetainedOwn, MaxSignalsPerSec, MaxStorageBytes,
    Natural, Seed, Shard, ShardsPerRegion, TenantIdArg, duration, region_names,
};
use crate::errors::{IntoPyResult, invalid};
use crate::fork_guard::Origin;
use crate::handles::PyPartition;
use crate::schema::PySchema;
use crate::scoped::PyScoped;
use crate::simulation::Simulation;
use crate::tenant::PyTenant;

#[doc = include_str!("../pydoc/Cluster.md")]
#[pyclass(module = "tidaldb._native", name = "Cluster", extends = PyScoped, frozen)]
pub struct PyCluster {
    pub(crate) simulation: Simulation,
    seed: u64,
}

impl PyCluster {
    fn sim(&self) -> &SimulatedCluster {
        &self.simulation.sim
    }

    fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&SimulatedCluster) -> Result<T, TidalError> + Send,
    ) -> PyResult<T> {
        self.simulation.run(py, f)
    }
}

#[pymethods]
impl PyCluster {
    #[new]
    #[pyo3(signature = (
        schema,
        regions = None,
        shards_per_region = Natural::<ShardsPerRegion>::new(1),
        seed = Natural::<Seed>::new(0),
        latency = None,
        jitter = None,
        loss = Float::new(0.0),
        write_concern = None,
        *,
        durability = "immediate",
        sync_interval = None,
        max_retained = None,
        max_retained_own = None,
        max_future_skew = None,
    ), text_signature = "(schema, regions=('us-east', 'eu-west', 'ap-south'), shards_per_region=1, \
        seed=0, latency='20ms', jitter='5ms', loss=0.0, write_concern='local', *, \
        durability='immediate', sync_interval=None, max_retained=None, max_retained_own=None, max_future_skew=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        schema: PyRef<'_, PySchema>,
        regions: Option<&Bound<'_, PyAny>>,
        shards_per_region: Natural<ShardsPerRegion>,
        seed: Natural<Seed>,
        latency: Option<&Bound<'_, PyAny>>,
        jitter: Option<&Bound<'_, PyAny>>,
        loss: Float<Loss>,
        write_concern: Option<&Bound<'_, PyAny>>,
        durability: &str,
        sync_interval: Option<&Bound<'_, PyAny>>,
        max_retained: Option<Natural<MaxRetained>>,
        max_retained_own: Option<Natural<MaxRetainedOwn>>,
        max_future_skew: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let args = ClusterArgs {
            regions: regions.map(|r| region_names("regions", r)).transpose()?,
            shards_per_region,
            seed,
            latency,
            jitter,
            loss,
            write_concern,
            durability,
            sync_interval,
            max_retained,
            max_retained_own,
            max_future_skew,
        };
        let options: ClusterOptions = args.options(py)?;
        let settings = options.validate().py_err(py)?;
        let config = ClusterConfig::from_settings(schema.core(py)?, &settings);
        let simulation = Simulation {
            sim: SimulatedCluster::build(config).py_err(py)?,
            names: settings.regions,
            origin: Origin::here(),
        };
        Ok(
            PyClassInitializer::from(PyScoped::new(simulation.clone(), None)).add_subclass(
                PyCluster {
                    simulation,
                    seed: settings.seed,
                },
            ),
        )
    }

    #[doc = include_str!("../pydoc/Cluster/regions.md")]
    #[getter]
    fn regions(&self) -> Vec<String> {
        self.simulation.names.names().to_vec()
    }

    #[doc = include_str!("../pydoc/Cluster/shards_per_region.md")]
    #[getter]
    fn shards_per_region(&self) -> u16 {
        self.sim().config().shards_per_region
    }

    #[doc = include_str!("../pydoc/Cluster/seed.md")]
    #[getter]
    fn seed(&self) -> u64 {
        self.seed
    }

    #[doc = include_str!("../pydoc/Cluster/now.md")]
    #[getter]
    fn now(&self, py: Python<'_>) -> PyResult<f64> {
        self.run(py, |c| Ok(c.now().as_secs_f64()))
    }

    #[doc = include_str!("../pydoc/Cluster/leader.md")]
    #[getter]
    fn leader(&self, py: Python<'_>) -> PyResult<String> {
        let region = self.run(py, |c| Ok(c.leader()?.region()))?;
        Ok(self.simulation.name(region))
    }

    #[doc = include_str!("../pydoc/Cluster/tenants.md")]
    #[getter]
    fn tenants(slf: &Bound<'_, Self>) -> PyResult<Vec<Py<PyTenant>>> {
        let py = slf.py();
        let ids: Vec<TenantId> = slf.get().run(py, |c| {
            Ok(c.with_control(|control, _| {
                control
                    .router()
                    .tenants()
                    .map(|t| t.tenant_id)
                    .filter(|t| *t != TenantId::DEFAULT)
                    .collect()
            }))
        })?;
        ids.into_iter()
            .map(|id| PyTenant::create(py, slf.clone().unbind(), id))
            .collect()
    }

    #[doc = include_str!("../pydoc/Cluster/version_vector.md")]
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0), tenant = None),
        text_signature = "(self, /, region, shard=0, tenant=None)")]
    fn version_vector<'py>(
        &self,
        py: Python<'py>,
        region: &str,
        shard: Natural<Shard>,
        tenant: Option<TenantArg>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let scope = self.simulation.scope(py, tenant_of(tenant), Some(region))?;
        let shard: ShardId = shard_in(shard.0, self.sim().config().shards_per_region).py_err(py)?;
        let vv = self.run(py, |c| c.version_vector_scoped(scope, shard))?;
        let out = PyDict::new(py);
        for (origin, seq) in vv.iter() {
            out.set_item(origin.0, seq)?;
        }
        Ok(out)
    }

    #[doc = include_str!("../pydoc/Cluster/state_digest.md")]
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0), tenant = None),
        text_signature = "(self, /, region, shard=0, tenant=None)")]
    fn state_digest(
        &self,
        py: Python<'_>,
        region: &str,
        shard: Natural<Shard>,
        tenant: Option<TenantArg>,
    ) -> PyResult<u64> {
        let scope = self.simulation.scope(py, tenant_of(tenant), Some(region))?;
        let shard: ShardId = shard_in(shard.0, self.sim().config().shards_per_region).py_err(py)?;
        self.run(py, |c| c.state_digest_scoped(scope, shard))
    }

    #[doc = include_str!("../pydoc/Cluster/step.md")]
    fn step(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, |c| Ok(c.step()))
    }

    #[doc = include_str!("../pydoc/Cluster/run_for.md")]
    fn run_for(&self, py: Python<'_>, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = duration(py, "seconds", seconds)?;
        self.run(py, |c| c.try_run_for("seconds", d))
    }

    #[doc = include_str!("../pydoc/Cluster/await_convergence.md")]
    #[pyo3(signature = (timeout = None),
        text_signature = "(self, /, timeout=30.0)")]
    fn await_convergence(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let timeout = convergence_timeout(py, timeout)?;
        self.run(py, |c| Ok(c.await_full_convergence(timeout)?.as_secs_f64()))
    }

    #[doc = include_str!("../pydoc/Cluster/converged.md")]
    #[pyo3(signature = (timeout = None),
        text_signature = "(self, /, timeout=30.0)")]
    fn converged<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.simulation.check_origin(py)?;
        let timeout = convergence_timeout(py, timeout)?;
        let Simulation { sim, names, .. } = self.simulation.clone();
        crate::awaitable::blocking(py, "Cluster.converged", move || {
            match sim.await_full_convergence(timeout) {
                Ok(took) => Ok(took.as_secs_f64()),
                Err(e) => Err(names.rename_error(e)),
            }
        })
    }

    #[doc = include_str!("../pydoc/Cluster/is_converged.md")]
    fn is_converged(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, |c| Ok(c.is_converged()))
    }

    #[doc = include_str!("../pydoc/Cluster/partition.md")]
    #[pyo3(signature = (a, b, one_way = false))]
    fn partition(&self, py: Python<'_>, a: &str, b: &str, one_way: bool) -> PyResult<PyPartition> {
        let (ra, rb) = (
            self.simulation.region(py, a)?,
            self.simulation.region(py, b)?,
        );
        if ra == rb {
            return Err(invalid(
                py,
                "b",
                format!("{b:?} is also a; a region cannot be partitioned from itself"),
            ));
        }
        let handle = self.run(py, |c| {
            if one_way {
                c.inject_one_way_partition(ra, rb)
            } else {
                c.inject_partition(ra, rb)
            }
        })?;
        Ok(PyPartition::new(
            self.simulation.clone(),
            handle,
            (a.to_owned(), b.to_owned()),
            one_way,
        ))
    }

    #[doc = include_str!("../pydoc/Cluster/heal_all.md")]
    fn heal_all(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |c| {
            c.heal_all_partitions();
            Ok(())
        })
    }

    #[doc = include_str!("../pydoc/Cluster/crash.md")]
    #[pyo3(signature = (region, lose_unsynced = false, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, lose_unsynced=False, shard=0)")]
    fn crash(
        &self,
        py: Python<'_>,
        region: &str,
        lose_unsynced: bool,
        shard: Natural<Shard>,
    ) -> PyResult<usize> {
        let (r, s) = self.simulation.host(py, region, shard)?;
        self.run(py, |c| c.crash(r, s, lose_unsynced))
    }

    #[doc = include_str!("../pydoc/Cluster/restart.md")]
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, shard=0)")]
    fn restart(&self, py: Python<'_>, region: &str, shard: Natural<Shard>) -> PyResult<()> {
        let (r, s) = self.simulation.host(py, region, shard)?;
        self.run(py, |c| c.restart(r, s))
    }

    #[doc = include_str!("../pydoc/Cluster/drain.md")]
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, shard=0)")]
    fn drain(&self, py: Python<'_>, region: &str, shard: Natural<Shard>) -> PyResult<()> {
        let (r, s) = self.simulation.host(py, region, shard)?;
        self.run(py, |c| RollingUpgradeCoordinator::new(c).drain(r, s))
    }

    #[doc = include_str!("../pydoc/Cluster/upgrade.md")]
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, shard=0)")]
    fn upgrade(&self, py: Python<'_>, region: &str, shard: Natural<Shard>) -> PyResult<()> {
        let (r, s) = self.simulation.host(py, region, shard)?;
        self.run(py, |c| RollingUpgradeCoordinator::new(c).upgrade(r, s))
    }

    #[doc = include_str!("../pydoc/Cluster/rejoin.md")]
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, shard=0)")]
    fn rejoin(&self, py: Python<'_>, region: &str, shard: Natural<Shard>) -> PyResult<()> {
        let (r, s) = self.simulation.host(py, region, shard)?;
        self.run(py, |c| RollingUpgradeCoordinator::new(c).rejoin(r, s))
    }

    #[doc = include_str!("../pydoc/Cluster/is_up.md")]
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, shard=0)")]
    fn is_up(&self, py: Python<'_>, region: &str, shard: Natural<Shard>) -> PyResult<bool> {
        let (r, s) = self.simulation.host(py, region, shard)?;
        self.run(py, |c| Ok(c.is_up(c.node_id(r, s)?)))
    }

    #[doc = include_str!("../pydoc/Cluster/lag.md")]
    #[pyo3(signature = (tenant = None))]
    fn lag<'py>(&self, py: Python<'py>, tenant: Option<TenantArg>) -> PyResult<Bound<'py, PyDict>> {
        let lag = self.run(py, |c| c.lag_by_region(tenant_of(tenant)))?;
        let out = PyDict::new(py);
        for (region, events) in lag {
            out.set_item(self.simulation.name(region), events)?;
        }
        Ok(out)
    }

    #[doc = include_str!("../pydoc/Cluster/health.md")]
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self.run(py, |c| {
            Ok(c.with_control(|control, now| control.health(now).to_json()))
        })?;
        let health = py.import("tidaldb._display")?.getattr("Health")?;
        let names = PyTuple::new(py, self.simulation.names.names().iter())?;
        health.call_method1("_from_json", (json, names))
    }

    #[doc = include_str!("../pydoc/Cluster/register_tenant.md")]
    #[pyo3(signature = (
        id,
        max_signals_per_sec = None,
        max_entities = None,
        max_storage_bytes = None,
        regions = None,
        label = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn register_tenant(
        slf: &Bound<'_, Self>,
        id: Natural<TenantIdArg>,
        max_signals_per_sec: Option<Natural<MaxSignalsPerSec>>,
        max_entities: Option<Natural<MaxEntities>>,
        max_storage_bytes: Option<Natural<MaxStorageBytes>>,
        regions: Option<&Bound<'_, PyAny>>,
        label: Option<String>,
    ) -> PyResult<Py<PyTenant>> {
        let py = slf.py();
        let this = slf.get();
        let quotas = (max_signals_per_sec, max_entities, max_storage_bytes);
        let options = tenant_options(id, quotas, regions, label)?;
        let config = options
            .config(&this.simulation.names)
            .map_err(|e| this.simulation.names.rename_error(e))
            .py_err(py)?;
        let tenant = config.tenant_id;
        this.run(py, move |c| c.register_tenant(config))?;
        PyTenant::create(py, slf.clone().unbind(), tenant)
    }

    #[doc = include_str!("../pydoc/Cluster/tenant.md")]
    fn tenant(slf: &Bound<'_, Self>, id: Natural<TenantIdArg>) -> PyResult<Py<PyTenant>> {
        let tenant = TenantId(id.0);
        if tenant == TenantId::DEFAULT {
            return Err(crate::errors::to_py(
                slf.py(),
                TidalError::NotFound(
                    "t0 is the default tenant, not a registered one; use the Cluster's own \
                     methods for it"
                        .into(),
                ),
            ));
        }
        slf.get().run(slf.py(), |c| {
            c.with_control(|control, _| control.router().config(tenant).map(|_| ()))
        })?;
        PyTenant::create(slf.py(), slf.clone().unbind(), tenant)
    }

    #[doc = include_str!("../pydoc/Cluster/__reduce__.md")]
    fn __reduce__(&self) -> PyResult<()> {
        Err(crate::pickling::cluster())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        if !self.simulation.origin.is_here() {
            return "<tidaldb.Cluster inherited through a fork: unusable here>".to_owned();
        }
        let (now, leader, tenants) = py.detach(|| {
            let c = self.sim();
            let leader = c.leader().map(|l| l.region()).ok();
            (
                c.now(),
                leader,
                // The default tenant is always there; the count is of registered ones.
                c.with_control(|control, _| control.router().tenants().count())
                    .saturating_sub(1),
            )
        });
        let start = self.sim().config().start;
        let elapsed = (now.as_nanos() - start.as_nanos()) as f64 / 1e9;
        format!(
            "<tidaldb.Cluster regions={:?} shards_per_region={} seed={} t=+{elapsed:.3}s \
             leader={} tenants={tenants}>",
            self.simulation.names.names(),
            self.sim().config().shards_per_region,
            self.seed,
            leader.map_or_else(|| "none".to_owned(), |r| self.simulation.name(r)),
        )
    }
}

/// How long a wait for convergence lasts: `timeout`, or the core's default.
fn convergence_timeout(
    py: Python<'_>,
    timeout: Option<&Bound<'_, PyAny>>,
) -> PyResult<std::time::Duration> {
    match timeout {
        Some(t) => duration(py, "timeout", t),
        None => Ok(DEFAULT_CONVERGENCE_TIMEOUT),
    }
}
