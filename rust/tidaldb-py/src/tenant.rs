//! `tidaldb.Tenant`: one tenant of a `Cluster`. Every read and write is scoped to it; its
//! quotas are enforced by the replica that admits each write.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tidaldb::sim::Scope;
use tidaldb::tenancy::TenantConfig;
use tidaldb::{ShardId, TenantId};

use crate::cluster::PyCluster;
use crate::convert::{At, Count, Float, Id, Item, Natural, ToShard, Ts, User, Weight};
use crate::errors::invalid;
use crate::handles::PyWriteAck;
use crate::migration::PyMigration;
use crate::results::PyResults;
use crate::scoped::Visibility;

/// A registered tenant: its own replicas, log, sequence numbers and quotas. Its methods
/// are the `Cluster`'s with `tenant=` fixed. Get one from `Cluster.register_tenant` or
/// `Cluster.tenant(id)`.
#[pyclass(module = "tidaldb._native", name = "Tenant", frozen)]
pub struct PyTenant {
    cluster: Py<PyCluster>,
    pub(crate) id: TenantId,
}

impl PyTenant {
    pub fn new(cluster: Py<PyCluster>, id: TenantId) -> Self {
        PyTenant { cluster, id }
    }

    fn scope(&self, py: Python<'_>, region: Option<&str>) -> PyResult<Scope> {
        self.cluster.get().scope(py, self.id, region)
    }

    /// The tenant's configuration as the control plane holds it now (residency changes
    /// when a migration finalizes).
    fn config(&self, py: Python<'_>) -> PyResult<TenantConfig> {
        let id = self.id;
        self.cluster.get().run(py, move |c| {
            c.with_control(|control, _| Ok(control.router().config(id)?.clone()))
        })
    }
}

#[pymethods]
impl PyTenant {
    /// The tenant id.
    #[getter]
    fn id(&self) -> u64 {
        self.id.0
    }

    /// The human-readable name given at registration.
    #[getter]
    fn label(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.config(py)?.label)
    }

    /// The regions the tenant's data may live in (all of the cluster's when unrestricted):
    /// its residency, which only a migration changes, to its target.
    #[getter]
    fn regions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let cluster = self.cluster.get();
        let config = self.config(py)?;
        Ok(if config.required_regions.is_empty() {
            cluster.names.to_vec()
        } else {
            config
                .required_regions
                .iter()
                .map(|r| cluster.name(*r))
                .collect()
        })
    }

    /// The cluster the tenant lives in.
    #[getter]
    fn cluster(&self, py: Python<'_>) -> Py<PyCluster> {
        self.cluster.clone_ref(py)
    }

    /// Signals per second each replica admits (bursts of twice that pass); None: unlimited.
    #[getter]
    fn max_signals_per_sec(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        Ok(self.config(py)?.max_signals_per_sec)
    }

    /// Distinct entities with signals; None: unlimited.
    #[getter]
    fn max_entities(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        Ok(self.config(py)?.max_entities)
    }

    /// The tenant's log, at 64 bytes an event; None: unlimited.
    #[getter]
    fn max_storage_bytes(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        Ok(self.config(py)?.max_storage_bytes)
    }

    /// The tenant's migration while one is under way; `None` before and after.
    #[getter]
    fn migration(&self, py: Python<'_>) -> PyResult<Option<PyMigration>> {
        let id = self.id;
        let running = self.cluster.get().run(py, move |c| {
            Ok(c.with_control(|control, _| {
                control
                    .migration(id)
                    .is_some_and(|m| m.state != tidaldb::control::MigrationState::Complete)
            }))
        })?;
        if !running {
            return Ok(None);
        }
        PyMigration::resume(py, self.cluster.clone_ref(py), self.id).map(Some)
    }

    /// Starts moving the tenant's replica of `to_shard` (its only shard by default) to
    /// `to_region`. The migration starts in state "idle"; nothing moves until a step runs.
    #[pyo3(signature = (to_region, to_shard = None))]
    fn migrate(
        &self,
        py: Python<'_>,
        to_region: &str,
        to_shard: Option<Natural<ToShard>>,
    ) -> PyResult<PyMigration> {
        let cluster = self.cluster.get();
        let target = cluster.region(py, to_region)?;
        let id = self.id;
        let placement = cluster.run(py, move |c| {
            c.with_control(|control, _| Ok(control.router().placement(id)?.to_vec()))
        })?;
        let mut shards: Vec<ShardId> = placement.iter().map(|a| a.shard_id).collect();
        shards.sort_unstable();
        shards.dedup();
        let shard = match to_shard {
            Some(s) => {
                let s = ShardId(s.narrow(py)?);
                if !shards.contains(&s) {
                    return Err(invalid(
                        py,
                        "to_shard",
                        format!("tenant {} keeps no replica of shard {}", self.id.0, s.0),
                    ));
                }
                s
            }
            None if shards.len() == 1 => shards[0],
            None => {
                return Err(invalid(
                    py,
                    "to_shard",
                    format!(
                        "tenant {} has replicas of shards {:?}; name the one to move",
                        self.id.0,
                        shards.iter().map(|s| s.0).collect::<Vec<_>>()
                    ),
                ));
            }
        };
        if placement
            .iter()
            .any(|a| a.shard_id == shard && a.region_id == target)
        {
            return Err(invalid(
                py,
                "to_region",
                format!(
                    "tenant {} already keeps shard {} in {to_region:?}; name another region",
                    self.id.0, shard.0
                ),
            ));
        }
        cluster.run(py, move |c| {
            c.begin_tenant_migration(id, shard, shard, target)
                .map(|_| ())
        })?;
        PyMigration::resume(py, self.cluster.clone_ref(py), self.id)
    }

    /// Writes one signal for this tenant; see `Cluster.write`.
    #[pyo3(signature = (
        signal, item, weight = Float::new(1.0), ts = None, region = None, idempotency_key = None,
    ),
        text_signature = "(self, /, signal, item, weight=1.0, ts=None, region=None, idempotency_key=None)")]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        weight: Float<Weight>,
        ts: Option<Float<Ts>>,
        region: Option<&str>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, region)?;
        (self.cluster.get()).write_in(py, scope, signal, item, weight, ts, idempotency_key)
    }

    /// Writes many signals from numpy arrays; see `Cluster.write_many`.
    #[pyo3(signature = (signal, items, weights = None, ts = None, region = None))]
    fn write_many(
        &self,
        py: Python<'_>,
        signal: &str,
        items: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
        region: Option<&str>,
    ) -> PyResult<usize> {
        let scope = self.scope(py, region)?;
        (self.cluster.get()).write_many_in(py, scope, signal, items, weights, ts)
    }

    /// The decayed score of `item` at `at` (virtual now by default).
    #[pyo3(signature = (signal, item, region = None, at = None))]
    fn score(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        region: Option<&str>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        let scope = self.scope(py, region)?;
        self.cluster.get().score_in(py, scope, signal, item, at)
    }

    /// Decayed scores of many items, as a float64 array.
    #[pyo3(signature = (signal, items, region = None, at = None))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        signal: &str,
        items: &Bound<'py, PyAny>,
        region: Option<&str>,
        at: Option<Float<At>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let scope = self.scope(py, region)?;
        self.cluster.get().scores_in(py, scope, signal, items, at)
    }

    /// Events of `signal` on `item` in `window`, now.
    #[pyo3(signature = (signal, item, window, region = None))]
    fn window_count(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        window: &str,
        region: Option<&str>,
    ) -> PyResult<u64> {
        let scope = self.scope(py, region)?;
        (self.cluster.get()).window_count_in(py, scope, signal, item, window)
    }

    /// Events of `signal` that the tenant's replicas in `region` hold (0 where it keeps none).
    fn total_count(&self, py: Python<'_>, signal: &str, region: &str) -> PyResult<u64> {
        let cluster = self.cluster.get();
        let r = cluster.region(py, region)?;
        cluster.total_count_in(py, Scope::tenant(self.id), signal, r)
    }

    /// Top `limit` candidates by `Σ coefficient · score(signal)`, minus the user's hidden items.
    #[pyo3(signature = (candidates, rank_by, *, user = None, limit = Count(10), region = None, at = None),
        text_signature = "(self, /, candidates, rank_by, *, user=None, limit=10, region=None, at=None)")]
    #[allow(clippy::too_many_arguments)]
    fn retrieve(
        &self,
        py: Python<'_>,
        candidates: &Bound<'_, PyAny>,
        rank_by: &Bound<'_, PyDict>,
        user: Option<Id<User>>,
        limit: Count,
        region: Option<&str>,
        at: Option<Float<At>>,
    ) -> PyResult<PyResults> {
        let scope = self.scope(py, region)?;
        (self.cluster.get()).retrieve_in(py, scope, candidates, rank_by, user, limit, at)
    }

    /// Hides `item` from `user` until an unhide with a later clock.
    #[pyo3(signature = (user, item, region = None))]
    fn hide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        region: Option<&str>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, region)?;
        (self.cluster.get()).visibility_in(py, scope, user, item, Visibility::Hide)
    }

    /// Undoes a hide of `item` for `user`.
    #[pyo3(signature = (user, item, region = None))]
    fn unhide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        region: Option<&str>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, region)?;
        (self.cluster.get()).visibility_in(py, scope, user, item, Visibility::Unhide)
    }

    /// Whether `item` is hidden from `user`.
    #[pyo3(signature = (user, item, region = None))]
    fn is_hidden(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        region: Option<&str>,
    ) -> PyResult<bool> {
        let scope = self.scope(py, region)?;
        self.cluster.get().is_hidden_in(py, scope, user, item)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyTenant>()
            .is_ok_and(|o| o.get().id == self.id && o.get().cluster.is(&self.cluster))
    }

    fn __hash__(&self) -> u64 {
        self.id.0
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.config(py) {
            Ok(c) => {
                let mut quotas = String::new();
                if let Some(r) = c.max_signals_per_sec {
                    quotas.push_str(&format!(" max_signals_per_sec={r}"));
                }
                if let Some(e) = c.max_entities {
                    quotas.push_str(&format!(" max_entities={e}"));
                }
                if let Some(b) = c.max_storage_bytes {
                    quotas.push_str(&format!(" max_storage_bytes={b}"));
                }
                let regions = self.regions(py).unwrap_or_default();
                format!(
                    "<tidaldb.Tenant {} {:?} regions={regions:?}{quotas}>",
                    self.id.0, c.label
                )
            }
            Err(_) => format!("<tidaldb.Tenant {} (unknown to its cluster)>", self.id.0),
        }
    }
}
