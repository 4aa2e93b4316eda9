//! `tidaldb.Tenant`: one tenant of a `Cluster`. Its reads and writes come from `_Scoped`
//! (see `scoped.rs`), fixed to this tenant; its quotas are enforced by the replica that
//! admits each write.

use pyo3::prelude::*;
use tidaldb::ShardId;
use tidaldb::TenantId;
use tidaldb::control::MigrationState;
use tidaldb::tenancy::TenantConfig;

use crate::cluster::PyCluster;
use crate::convert::{Natural, ToShard};
use crate::migration::PyMigration;
use crate::scoped::PyScoped;
use crate::simulation::Simulation;

#[doc = include_str!("../pydoc/Tenant.md")]
#[pyclass(module = "tidaldb._native", name = "Tenant", extends = PyScoped, frozen)]
pub struct PyTenant {
    cluster: Py<PyCluster>,
    simulation: Simulation,
    pub(crate) id: TenantId,
}

impl PyTenant {
    /// The `Tenant` object for `id` of `cluster`.
    pub fn create(py: Python<'_>, cluster: Py<PyCluster>, id: TenantId) -> PyResult<Py<Self>> {
        let simulation = cluster.get().simulation.clone();
        let base = PyScoped::new(simulation.clone(), Some(id));
        let tenant = PyTenant {
            cluster,
            simulation,
            id,
        };
        Py::new(py, PyClassInitializer::from(base).add_subclass(tenant))
    }

    /// The tenant's configuration as the control plane holds it now (residency changes
    /// when a migration finalizes).
    fn config(&self, py: Python<'_>) -> PyResult<TenantConfig> {
        let id = self.id;
        self.simulation.run(py, move |c| {
            c.with_control(|control, _| Ok(control.router().config(id)?.clone()))
        })
    }

    fn migration_handle(&self, py: Python<'_>) -> PyResult<PyMigration> {
        PyMigration::resume(py, self.simulation.clone(), self.id)
    }
}

#[pymethods]
impl PyTenant {
    #[doc = include_str!("../pydoc/Tenant/id.md")]
    #[getter]
    fn id(&self) -> u64 {
        self.id.0
    }

    #[doc = include_str!("../pydoc/Tenant/label.md")]
    #[getter]
    fn label(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.config(py)?.label)
    }

    #[doc = include_str!("../pydoc/Tenant/regions.md")]
    #[getter]
    fn regions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let config = self.config(py)?;
        Ok(if config.required_regions.is_empty() {
            self.simulation.names.names().to_vec()
        } else {
            config
                .required_regions
                .iter()
                .map(|r| self.simulation.name(*r))
                .collect()
        })
    }

    #[doc = include_str!("../pydoc/Tenant/cluster.md")]
    #[getter]
    fn cluster(&self, py: Python<'_>) -> Py<PyCluster> {
        self.cluster.clone_ref(py)
    }

    #[doc = include_str!("../pydoc/Tenant/max_signals_per_sec.md")]
    #[getter]
    fn max_signals_per_sec(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        Ok(self.config(py)?.max_signals_per_sec)
    }

    #[doc = include_str!("../pydoc/Tenant/max_entities.md")]
    #[getter]
    fn max_entities(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        Ok(self.config(py)?.max_entities)
    }

    #[doc = include_str!("../pydoc/Tenant/max_storage_bytes.md")]
    #[getter]
    fn max_storage_bytes(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        Ok(self.config(py)?.max_storage_bytes)
    }

    #[doc = include_str!("../pydoc/Tenant/migration.md")]
    #[getter]
    fn migration(&self, py: Python<'_>) -> PyResult<Option<PyMigration>> {
        let id = self.id;
        let running = self.simulation.run(py, move |c| {
            Ok(c.with_control(|control, _| {
                control
                    .migration(id)
                    .is_some_and(|m| m.state != MigrationState::Complete)
            }))
        })?;
        if !running {
            return Ok(None);
        }
        self.migration_handle(py).map(Some)
    }

    #[doc = include_str!("../pydoc/Tenant/migrate.md")]
    #[pyo3(signature = (to_region, to_shard = None))]
    fn migrate(
        &self,
        py: Python<'_>,
        to_region: &str,
        to_shard: Option<Natural<ToShard>>,
    ) -> PyResult<PyMigration> {
        let target = self.simulation.region(py, to_region)?;
        let shard = to_shard
            .map(|s| s.narrow::<u16>(py).map(ShardId))
            .transpose()?;
        let id = self.id;
        self.simulation
            .run(py, move |c| c.migrate_tenant(id, target, shard).map(|_| ()))?;
        self.migration_handle(py)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyTenant>()
            .is_ok_and(|o| o.get().id == self.id && o.get().cluster.is(&self.cluster))
    }

    fn __hash__(&self) -> u64 {
        self.id.0
    }

    #[doc = include_str!("../pydoc/Tenant/__reduce__.md")]
    fn __reduce__(&self) -> PyResult<()> {
        Err(crate::pickling::tenant())
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
