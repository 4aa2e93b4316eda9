//! `tidaldb.Migration`: a tenant's move to another region, step by step or awaited whole.
//!
//! The control plane's record is the truth, so this handle holds only the tenant id: any
//! number of handles see the same state, and one obtained after an interruption (from
//! `Tenant.migration`) resumes where the record says.

use std::time::Duration;

use pyo3::prelude::*;
use tidaldb::control::MigrationState;
use tidaldb::sim::{SimulatedCluster, TenantMigration};
use tidaldb::{TenantId, TidalError};

use crate::cluster::PyCluster;
use crate::convert::duration;
use crate::errors::IntoPyResult;
use crate::names::with_region_names;

/// The steps of a migration, in order: `run()` counts its progress in these.
const STEPS: u64 = 4;

#[pyclass(module = "tidaldb._native", name = "Migration", frozen)]
pub struct PyMigration {
    cluster: Py<PyCluster>,
    handle: TenantMigration,
}

fn state_name(s: MigrationState) -> &'static str {
    match s {
        MigrationState::Idle => "idle",
        MigrationState::PreparingTarget => "preparing_target",
        MigrationState::DualWrite => "dual_write",
        MigrationState::Finalizing => "finalizing",
        MigrationState::Complete => "complete",
    }
}

/// Steps already taken once the record is in state `s`.
fn steps_done(s: MigrationState) -> u64 {
    match s {
        MigrationState::Idle => 0,
        MigrationState::PreparingTarget => 1,
        MigrationState::DualWrite => 2,
        MigrationState::Finalizing => 3,
        MigrationState::Complete => 4,
    }
}

/// Takes the step that follows state `s`; `false` when the migration is complete.
fn advance(m: &TenantMigration, s: MigrationState, grace: Duration) -> Result<bool, TidalError> {
    match s {
        MigrationState::Idle => m.prepare_target()?,
        MigrationState::PreparingTarget => m.enter_dual_write()?,
        MigrationState::DualWrite => m.finalize()?,
        MigrationState::Finalizing => m.gc_source(grace)?,
        MigrationState::Complete => return Ok(false),
    }
    Ok(true)
}

impl PyMigration {
    pub fn resume(py: Python<'_>, cluster: Py<PyCluster>, tenant: TenantId) -> PyResult<Self> {
        let sim: SimulatedCluster = cluster.get().inner.clone();
        let handle = py.detach(|| sim.tenant_migration(tenant)).py_err(py)?;
        Ok(PyMigration { cluster, handle })
    }

    fn step(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TenantMigration) -> Result<(), TidalError> + Send,
    ) -> PyResult<()> {
        self.cluster.get().run(py, |_| f(&self.handle))
    }
}

#[pymethods]
impl PyMigration {
    #[getter]
    fn tenant(&self) -> u64 {
        self.handle.tenant().0
    }

    /// The region the tenant moves from.
    #[getter]
    fn source(&self, py: Python<'_>) -> PyResult<String> {
        let record = self.cluster.get().run(py, |_| self.handle.record())?;
        Ok(self.cluster.get().name(record.source.region_id))
    }

    /// The region the tenant moves to.
    #[getter]
    fn target(&self, py: Python<'_>) -> PyResult<String> {
        let record = self.cluster.get().run(py, |_| self.handle.record())?;
        Ok(self.cluster.get().name(record.target.region_id))
    }

    /// "idle", "preparing_target", "dual_write", "finalizing" or "complete".
    #[getter]
    fn state(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(state_name(
            self.cluster.get().run(py, |_| self.handle.state())?,
        ))
    }

    /// Creates the target replica and waits (in virtual time) until it holds everything
    /// the source had applied.
    fn prepare_target(&self, py: Python<'_>) -> PyResult<()> {
        self.step(py, TenantMigration::prepare_target)
    }

    /// From now on a write is acknowledged once both source and target hold it.
    fn enter_dual_write(&self, py: Python<'_>) -> PyResult<()> {
        self.step(py, TenantMigration::enter_dual_write)
    }

    /// Waits until the target holds all the source has, then routes to the target.
    fn finalize(&self, py: Python<'_>) -> PyResult<()> {
        self.step(py, TenantMigration::finalize)
    }

    /// After `grace` (seconds or "5s") of virtual time, deletes the source's copy.
    #[pyo3(signature = (grace = None),
        text_signature = "(self, /, grace=0.0)")]
    fn gc_source(&self, py: Python<'_>, grace: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let grace = grace
            .map(|g| duration(py, "grace", g))
            .transpose()?
            .unwrap_or_default();
        self.step(py, |m| m.gc_source(grace))
    }

    /// Runs every remaining step as an awaitable. With `progress=True` and tqdm installed
    /// (`pip install tidaldb[notebook]`), a progress bar follows the steps.
    #[pyo3(signature = (progress = false, grace = None),
        text_signature = "(self, /, progress=False, grace=0.0)")]
    fn run<'py>(
        &self,
        py: Python<'py>,
        progress: bool,
        grace: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let grace = grace
            .map(|g| duration(py, "grace", g))
            .transpose()?
            .unwrap_or_default();
        let bar = if progress {
            py.import("tidaldb._display")?
                .call_method1(
                    "progress_bar",
                    (STEPS, format!("migrate t{}", self.handle.tenant().0)),
                )?
                .unbind()
        } else {
            py.None()
        };
        let m = self.handle.clone();
        let names = self.cluster.get().names.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            loop {
                let (step, names) = (m.clone(), names.clone());
                let joined = tokio::task::spawn_blocking(move || {
                    let taken = step.state().and_then(|before| {
                        let more = advance(&step, before, grace)?;
                        Ok::<_, TidalError>((more, step.state()?))
                    });
                    taken.map_err(|e| with_region_names(e, &names))
                })
                .await;
                let outcome = Python::attach(|py| -> PyResult<bool> {
                    crate::logging::deliver(py);
                    let (more, now) = joined.map_err(crate::cluster::task_failed)?.py_err(py)?;
                    let bar = bar.bind(py);
                    if !bar.is_none() {
                        bar.setattr("n", steps_done(now))?;
                        bar.call_method1("set_postfix_str", (state_name(now),))?;
                        bar.call_method0("refresh")?;
                        if !more || now == MigrationState::Complete {
                            bar.call_method0("close")?;
                        }
                    }
                    Ok(more && now != MigrationState::Complete)
                });
                match outcome {
                    Ok(true) => continue,
                    Ok(false) => return Ok(()),
                    Err(e) => {
                        Python::attach(|py| {
                            let bar = bar.bind(py);
                            if !bar.is_none() {
                                // The bar is cosmetic: failing to close it must not hide `e`.
                                let _ = bar.call_method0("close");
                            }
                        });
                        return Err(e);
                    }
                }
            }
        })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let cluster = self.cluster.get();
        match cluster.run(py, |_| self.handle.record()) {
            Ok(r) => format!(
                "<tidaldb.Migration tenant={} {} -> {} state={}>",
                self.handle.tenant().0,
                cluster.name(r.source.region_id),
                cluster.name(r.target.region_id),
                state_name(r.state)
            ),
            Err(_) => format!(
                "<tidaldb.Migration tenant={} (gone)>",
                self.handle.tenant().0
            ),
        }
    }
}
