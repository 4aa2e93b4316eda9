//! `tidaldb.Cluster`: a simulated multi-region cluster on virtual time.
//!
//! Every call runs detached from the interpreter. The simulator has one lock, which an
//! awaited `converged()` or `Migration.run()` holds for as long as a step runs on tokio's
//! blocking pool; a thread that waited for it while attached would stall every other
//! Python thread, including the event loop that is to receive the result.

use std::sync::Arc;

use numpy::PyArray1;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tidaldb::sim::{Scope, SimulatedCluster};
use tidaldb::{RegionId, ShardId, TenantId, TidalError};

use crate::cluster_config::{
    ClusterArgs, TenantArg, convergence_timeout, tenant_config, tenant_of,
};
use crate::convert::{
    At, Count, Float, Id, Item, Loss, MaxEntities, MaxSignalsPerSec, MaxStorageBytes, Natural,
    Seed, Shard, ShardsPerRegion, TenantIdArg, Ts, User, Weight, duration, region_names,
};
use crate::errors::{IntoPyResult, invalid};
use crate::handles::{PyPartition, PyWriteAck};
use crate::logging;
use crate::names::with_region_names;
use crate::results::PyResults;
use crate::schema::PySchema;
use crate::scoped::Visibility;
use crate::tenant::PyTenant;

/// A tidaldb cluster on the deterministic simulator: one replica of every shard in every
/// region, on virtual time that starts at 2026-01-01T00:00:00Z and moves only in `step`,
/// `run_for`, `await_convergence` / `converged`, replicated write concerns and migration
/// steps. A run is a function of its `seed`.
#[pyclass(module = "tidaldb._native", name = "Cluster", frozen)]
pub struct PyCluster {
    pub(crate) inner: SimulatedCluster,
    /// Region names; `RegionId(i)` is `names[i]`.
    pub(crate) names: Arc<[String]>,
    seed: u64,
}

impl PyCluster {
    /// Runs `f` on the cluster detached, then delivers its log records.
    pub(crate) fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&SimulatedCluster) -> Result<T, TidalError> + Send,
    ) -> PyResult<T> {
        let out = py.detach(|| f(&self.inner));
        logging::deliver(py);
        out.map_err(|e| with_region_names(e, &self.names))
            .py_err(py)
    }

    /// The region called `name`, or `NotFound` listing the cluster's regions.
    pub(crate) fn region(&self, py: Python<'_>, name: &str) -> PyResult<RegionId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| RegionId(i as u16))
            .ok_or_else(|| {
                crate::errors::to_py(
                    py,
                    TidalError::NotFound(format!(
                        "region {name:?} is not in this cluster; its regions are {:?}",
                        self.names
                    )),
                )
            })
    }

    pub(crate) fn scope(
        &self,
        py: Python<'_>,
        tenant: TenantId,
        region: Option<&str>,
    ) -> PyResult<Scope> {
        let region = region.map(|r| self.region(py, r)).transpose()?;
        Ok(Scope::tenant(tenant).in_region(region))
    }

    pub(crate) fn name(&self, region: RegionId) -> String {
        self.names
            .get(usize::from(region.0))
            .cloned()
            .unwrap_or_else(|| format!("region {}", region.0))
    }

    fn host(
        &self,
        py: Python<'_>,
        region: &str,
        shard: Natural<Shard>,
    ) -> PyResult<(RegionId, ShardId)> {
        let r = self.region(py, region)?;
        let s: u16 = shard.narrow(py)?;
        if s >= self.inner.config().shards_per_region {
            return Err(invalid(
                py,
                "shard",
                format!(
                    "{s} is not a shard of this cluster; it has {} per region",
                    self.inner.config().shards_per_region
                ),
            ));
        }
        Ok((r, ShardId(s)))
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
    ), text_signature = "(schema, regions=('us-east', 'eu-west', 'ap-south'), shards_per_region=1, \
        seed=0, latency='20ms', jitter='5ms', loss=0.0, write_concern='local', *, durability='immediate')")]
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
    ) -> PyResult<Self> {
        let args = ClusterArgs {
            regions: regions.map(|r| region_names("regions", r)).transpose()?,
            shards_per_region,
            seed,
            latency,
            jitter,
            loss,
            write_concern,
            durability,
        };
        let (config, names) = args.config(py, schema.core(py)?)?;
        let config_seed = config.seed;
        let inner = SimulatedCluster::build(config).py_err(py)?;
        Ok(PyCluster {
            inner,
            names: names.into(),
            seed: config_seed,
        })
    }

    /// The region names, in the order given.
    #[getter]
    fn regions(&self) -> Vec<String> {
        self.names.to_vec()
    }

    /// Shards in each region; every shard has a replica in every region.
    #[getter]
    fn shards_per_region(&self) -> u16 {
        self.inner.config().shards_per_region
    }

    /// The seed the run is a function of.
    #[getter]
    fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual time now, in Unix seconds. A float resolves about 0.25 µs here, so
    /// pass explicit `ts=`/`at=` when you compare reads with `==`.
    #[getter]
    fn now(&self, py: Python<'_>) -> PyResult<f64> {
        self.run(py, |c| Ok(c.now().as_secs_f64()))
    }

    /// The region of shard 0's leader, as the control plane sees it; `Unavailable` while
    /// that leader is down and not yet replaced (the election timeout is 500 ms).
    #[getter]
    fn leader(&self, py: Python<'_>) -> PyResult<String> {
        let region = self.run(py, |c| Ok(c.leader()?.region()))?;
        Ok(self.name(region))
    }

    /// The registered tenants (not the built-in default tenant).
    #[getter]
    fn tenants(slf: &Bound<'_, Self>) -> PyResult<Vec<PyTenant>> {
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
        Ok(ids
            .into_iter()
            .map(|id| PyTenant::new(slf.clone().unbind(), id))
            .collect())
    }

    /// Writes one signal; `region=None` sends it to the replica that serves `item`, a
    /// region name to that region's replica. Returns the acknowledgement.
    #[pyo3(signature = (
        signal, item, weight = Float::new(1.0), ts = None, region = None, tenant = None,
        idempotency_key = None,
    ),
        text_signature = "(self, /, signal, item, weight=1.0, ts=None, region=None, tenant=None, idempotency_key=None)")]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        weight: Float<Weight>,
        ts: Option<Float<Ts>>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.write_in(py, scope, signal, item, weight, ts, idempotency_key)
    }

    /// Writes many signals from numpy arrays (`weights` default to 1, `ts` to now);
    /// returns how many were written. Each shard's part is written whole or not at all.
    #[pyo3(signature = (signal, items, weights = None, ts = None, region = None, tenant = None))]
    #[allow(clippy::too_many_arguments)]
    fn write_many(
        &self,
        py: Python<'_>,
        signal: &str,
        items: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<usize> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.write_many_in(py, scope, signal, items, weights, ts)
    }

    /// The decayed score of `item` at `at` (virtual now by default), read in `region`.
    #[pyo3(signature = (signal, item, region = None, tenant = None, at = None))]
    fn score(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.score_in(py, scope, signal, item, at)
    }

    /// Decayed scores of many items, as a float64 array.
    #[pyo3(signature = (signal, items, region = None, tenant = None, at = None))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        signal: &str,
        items: &Bound<'py, PyAny>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.scores_in(py, scope, signal, items, at)
    }

    /// Events of `signal` on `item` in `window` ("1h", "24h", "7d", "30d", "all"), now.
    #[pyo3(signature = (signal, item, window, region = None, tenant = None))]
    fn window_count(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        window: &str,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<u64> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.window_count_in(py, scope, signal, item, window)
    }

    /// Events of `signal` (one that keeps windows) that `region`'s replicas hold, over
    /// every item; 0 where the tenant keeps no replica.
    #[pyo3(signature = (signal, region, tenant = None))]
    fn total_count(
        &self,
        py: Python<'_>,
        signal: &str,
        region: &str,
        tenant: Option<TenantArg>,
    ) -> PyResult<u64> {
        let r = self.region(py, region)?;
        self.total_count_in(py, Scope::tenant(tenant_of(tenant)), signal, r)
    }

    /// Top `limit` candidates by `Σ coefficient · score(signal)`, minus the user's hidden
    /// items. `stats.degraded` is set when a shard or replica could not be reached.
    #[pyo3(signature = (
        candidates, rank_by, *, user = None, limit = Count(10), region = None, tenant = None,
        at = None,
    ),
        text_signature = "(self, /, candidates, rank_by, *, user=None, limit=10, region=None, tenant=None, at=None)")]
    #[allow(clippy::too_many_arguments)]
    fn retrieve(
        &self,
        py: Python<'_>,
        candidates: &Bound<'_, PyAny>,
        rank_by: &Bound<'_, PyDict>,
        user: Option<Id<User>>,
        limit: Count,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<PyResults> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.retrieve_in(py, scope, candidates, rank_by, user, limit, at)
    }

    /// Hides `item` from `user` until an unhide with a later clock.
    #[pyo3(signature = (user, item, region = None, tenant = None))]
    fn hide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.visibility_in(py, scope, user, item, Visibility::Hide)
    }

    /// Undoes a hide of `item` for `user`.
    #[pyo3(signature = (user, item, region = None, tenant = None))]
    fn unhide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.visibility_in(py, scope, user, item, Visibility::Unhide)
    }

    /// Whether `item` is hidden from `user`, as the replica read holds it.
    #[pyo3(signature = (user, item, region = None, tenant = None))]
    fn is_hidden(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<bool> {
        let scope = self.scope(py, tenant_of(tenant), region)?;
        self.is_hidden_in(py, scope, user, item)
    }

    /// What `region`'s replica of `shard` has applied: origin node id → highest seq.
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0), tenant = None),
        text_signature = "(self, /, region, shard=0, tenant=None)")]
    fn version_vector<'py>(
        &self,
        py: Python<'py>,
        region: &str,
        shard: Natural<Shard>,
        tenant: Option<TenantArg>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let scope = self.scope(py, tenant_of(tenant), Some(region))?;
        self.version_vector_in(py, scope, shard)
    }

    /// Runs one scheduled happening (a delivery or a tick); false if nothing is scheduled.
    fn step(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, |c| Ok(c.step()))
    }

    /// Runs the simulation for `seconds` of virtual time (a float, or a string like "250ms").
    fn run_for(&self, py: Python<'_>, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = duration(py, "seconds", seconds)?;
        self.run(py, |c| {
            c.run_for(d);
            Ok(())
        })
    }

    /// Runs virtual time until every replica group has converged; returns the virtual
    /// seconds that took. `Timeout` names what still differs.
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

    /// `await_convergence` as an awaitable, run on tokio's blocking pool so the event loop
    /// stays free; call it inside a coroutine (it needs a running event loop).
    #[pyo3(signature = (timeout = None),
        text_signature = "(self, /, timeout=30.0)")]
    fn converged<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = convergence_timeout(py, timeout)?;
        let (cluster, names) = (self.inner.clone(), self.names.clone());
        crate::awaitable::blocking(py, move || match cluster.await_full_convergence(timeout) {
            Ok(took) => Ok(took.as_secs_f64()),
            Err(e) => Err(with_region_names(e, &names)),
        })
    }

    /// True when every replica group holds the same events with nothing in flight.
    fn is_converged(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, |c| Ok(c.is_converged()))
    }

    /// Cuts `a` off from `b` (both directions unless `one_way`). The returned handle
    /// heals it; used as a context manager, it heals on exit.
    #[pyo3(signature = (a, b, one_way = false))]
    fn partition(&self, py: Python<'_>, a: &str, b: &str, one_way: bool) -> PyResult<PyPartition> {
        let (ra, rb) = (self.region(py, a)?, self.region(py, b)?);
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
            self.inner.clone(),
            handle,
            (a.to_owned(), b.to_owned()),
            one_way,
        ))
    }

    /// Heals every partition.
    fn heal_all(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |c| {
            c.heal_all_partitions();
            Ok(())
        })
    }

    /// Crashes the host of `shard` in `region`: every tenant's replica on it. With
    /// `lose_unsynced`, what its disks had not synced is lost; returns how many events.
    #[pyo3(signature = (region, lose_unsynced = false, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, lose_unsynced=False, shard=0)")]
    fn crash(
        &self,
        py: Python<'_>,
        region: &str,
        lose_unsynced: bool,
        shard: Natural<Shard>,
    ) -> PyResult<usize> {
        let (r, s) = self.host(py, region, shard)?;
        self.run(py, |c| c.crash(r, s, lose_unsynced))
    }

    /// Restarts the host of `shard` in `region` from its disks; it then catches up.
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, shard=0)")]
    fn restart(&self, py: Python<'_>, region: &str, shard: Natural<Shard>) -> PyResult<()> {
        let (r, s) = self.host(py, region, shard)?;
        self.run(py, |c| c.restart(r, s))
    }

    /// Whether the host of `shard` in `region` is up.
    #[pyo3(signature = (region, shard = Natural::<Shard>::new(0)),
        text_signature = "(self, /, region, shard=0)")]
    fn is_up(&self, py: Python<'_>, region: &str, shard: Natural<Shard>) -> PyResult<bool> {
        let (r, s) = self.host(py, region, shard)?;
        self.run(py, |c| Ok(c.is_up(c.node_id(r, s)?)))
    }

    /// Events each region's replicas lack, as the control plane last measured.
    #[pyo3(signature = (tenant = None))]
    fn lag<'py>(&self, py: Python<'py>, tenant: Option<TenantArg>) -> PyResult<Bound<'py, PyDict>> {
        let lag = self.run(py, |c| c.lag_by_region(tenant_of(tenant)))?;
        let out = PyDict::new(py);
        for (region, events) in lag {
            out.set_item(self.name(region), events)?;
        }
        Ok(out)
    }

    /// The control plane's health report as a dict (a `Health`, which renders as tables).
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self.run(py, |c| {
            Ok(c.with_control(|control, now| control.health(now).to_json()))
        })?;
        let health = py.import("tidaldb._display")?.getattr("Health")?;
        health.call_method1("_from_json", (json, PyTuple::new(py, self.names.iter())?))
    }

    /// Registers a tenant with its quotas and residency and starts its replicas.
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
    ) -> PyResult<PyTenant> {
        let py = slf.py();
        let this = slf.get();
        let tenant = TenantId(id.0);
        let quotas = (max_signals_per_sec, max_entities, max_storage_bytes);
        let config = tenant_config(py, this, tenant, quotas, regions, label)?;
        this.run(py, move |c| c.register_tenant(config))?;
        Ok(PyTenant::new(slf.clone().unbind(), tenant))
    }

    /// The registered tenant `id`; `NotFound` if there is none.
    fn tenant(slf: &Bound<'_, Self>, id: Natural<TenantIdArg>) -> PyResult<PyTenant> {
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
        Ok(PyTenant::new(slf.clone().unbind(), tenant))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let (now, leader, tenants) = py.detach(|| {
            let c = &self.inner;
            let leader = c.leader().map(|l| l.region()).ok();
            (
                c.now(),
                leader,
                // The default tenant is always there; the count is of registered ones.
                c.with_control(|control, _| control.router().tenants().count())
                    .saturating_sub(1),
            )
        });
        let start = self.inner.config().start;
        let elapsed = (now.as_nanos() - start.as_nanos()) as f64 / 1e9;
        format!(
            "<tidaldb.Cluster regions={:?} shards_per_region={} seed={} t=+{elapsed:.3}s \
             leader={} tenants={tenants}>",
            self.names,
            self.inner.config().shards_per_region,
            self.seed,
            leader.map_or_else(|| "none".to_owned(), |r| self.name(r)),
        )
    }
}

/// Raised instead of a panic if a background step fails to join.
pub(crate) fn task_failed(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(format!("a background tidaldb task failed: {e}"))
}
