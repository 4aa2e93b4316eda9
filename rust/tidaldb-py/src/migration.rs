//! `tidaldb.Migration`: a tenant's move to another region, step by step or awaited whole.
//!
//! The control plane's record is the truth, so this handle holds only the tenant id: any
//! number of handles see the same state, and one obtained after an interruption (from
//! `Tenant.migration`) resumes where the record says.

use std::time::Duration;

use pyo3::prelude::*;
use tidaldb::control::MigrationState;
use tidaldb::sim::{SimulatedCluster, TenantMigration};
use tidaldb::{RegionId, TenantId, TidalError};

use crate::cluster::PyCluster;
use crate::convert::duration;
use crate::errors::IntoPyResult;
use crate::names::with_region_names;

/// The steps of a migration, in order: `run()` counts its progress in these.
const STEPS: u64 = 4;

/// Moves a tenant's replica of a shard to another region in four steps (`prepare_target`,
/// `enter_dual_write`, `finalize`, `gc_source`), or all of them with `await run()`. Reads
/// and writes are served throughout; each step is idempotent, and `Tenant.migration`
/// resumes one after an interruption.
#[pyclass(module = "tidaldb._native", name = "Migration", frozen)]
pub struct PyMigration {
    cluster: Py<PyCluster>,
    handle: TenantMigration,
    /// Which of the tenant's migrations this is. Once it completes the tenant may begin
    /// another, and this handle must go on describing its own.
    number: u64,
    source: RegionId,
    target: RegionId,
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

/// The state of migration `number` of `m`'s tenant: `Complete` once another has begun.
fn state_of(m: &TenantMigration, number: u64) -> Result<MigrationState, TidalError> {
    let record = m.record()?;
    Ok(if record.number == number {
        record.state
    } else {
        MigrationState::Complete
    })
}

/// Takes the next step of migration `number`; `(more steps remain, state after)`.
fn next_step(
    m: &TenantMigration,
    number: u64,
    grace: Duration,
) -> Result<(bool, MigrationState), TidalError> {
    let more = advance(m, state_of(m, number)?, grace)?;
    let now = state_of(m, number)?;
    Ok((more && now != MigrationState::Complete, now))
}

impl PyMigration {
    pub fn resume(py: Python<'_>, cluster: Py<PyCluster>, tenant: TenantId) -> PyResult<Self> {
        let sim: SimulatedCluster = cluster.get().inner.clone();
        let (handle, record) = py
            .detach(|| {
                let handle = sim.tenant_migration(tenant)?;
                let record = handle.record()?;
                Ok::<_, TidalError>((handle, record))
            })
            .py_err(py)?;
        Ok(PyMigration {
            cluster,
            handle,
            number: record.number,
            source: record.source.region_id,
            target: record.target.region_id,
        })
    }

    /// Runs a step of this migration; refused once a newer one has replaced it.
    fn step(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TenantMigration) -> Result<(), TidalError> + Send,
    ) -> PyResult<()> {
        self.cluster.get().run(py, |_| {
            if self.handle.record()?.number != self.number {
                return Err(TidalError::Conflict(format!(
                    "this handle is for migration {} of tenant {}, which completed; \
                     tenant.migration is the one under way",
                    self.number,
                    self.handle.tenant()
                )));
            }
            f(&self.handle)
        })
    }
}

/// Closes a tqdm bar (or does nothing for `None`).
fn close_bar(py: Python<'_>, bar: &Py<PyAny>) -> PyResult<()> {
    let bar = bar.bind(py);
    if !bar.is_none() {
        bar.call_method0("close")?;
    }
    Ok(())
}

#[pymethods]
impl PyMigration {
    /// The tenant's id (an int; `cluster.tenant(id)` gives the `Tenant`).
    #[getter]
    fn tenant(&self) -> u64 {
        self.handle.tenant().0
    }

    /// The region the tenant moves from.
    #[getter]
    fn source(&self) -> String {
        self.cluster.get().name(self.source)
    }

    /// The region the tenant moves to.
    #[getter]
    fn target(&self) -> String {
        self.cluster.get().name(self.target)
    }

    /// "idle", "preparing_target", "dual_write", "finalizing" or "complete".
    #[getter]
    fn state(&self, py: Python<'_>) -> PyResult<&'static str> {
        let number = self.number;
        let state = self
            .cluster
            .get()
            .run(py, |_| state_of(&self.handle, number))?;
        Ok(state_name(state))
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
    #[pyo3(signature = (grace = None), text_signature = "(self, /, grace=0.0)")]
    fn gc_source(&self, py: Python<'_>, grace: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let grace = grace_of(py, grace)?;
        self.step(py, |m| m.gc_source(grace))
    }

    /// Runs every remaining step as an awaitable that resolves to None. With
    /// `progress=True` and tqdm installed (`pip install tidaldb[notebook]`), a progress bar
    /// follows the steps. Like every coroutine-returning call, it needs a running event loop.
    #[pyo3(signature = (progress = false, grace = None),
        text_signature = "(self, /, progress=False, grace=0.0)")]
    fn run<'py>(
        &self,
        py: Python<'py>,
        progress: bool,
        grace: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let grace = grace_of(py, grace)?;
        let number = self.number;
        let bar = if progress {
            let done = self
                .cluster
                .get()
                .run(py, |_| state_of(&self.handle, number))?;
            let desc = format!("migrate t{}", self.handle.tenant().0);
            let bar = py
                .import("tidaldb._display")?
                .call_method1("progress_bar", (STEPS, desc, steps_done(done)))?;
            bar.unbind()
        } else {
            py.None()
        };
        let m = self.handle.clone();
        let names = self.cluster.get().names.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            loop {
                let (step, names) = (m.clone(), names.clone());
                let joined = tokio::task::spawn_blocking(move || {
                    next_step(&step, number, grace).map_err(|e| with_region_names(e, &names))
                })
                .await;
                let outcome = Python::attach(|py| -> PyResult<bool> {
                    crate::logging::deliver(py);
                    let (more, now) = joined.map_err(crate::cluster::task_failed)?.py_err(py)?;
                    let shown = bar.bind(py);
                    if !shown.is_none() {
                        shown.setattr("n", steps_done(now))?;
                        shown.call_method1("set_postfix_str", (state_name(now),))?;
                        shown.call_method0("refresh")?;
                    }
                    Ok(more)
                });
                match outcome {
                    Ok(true) => continue,
                    done => {
                        let closed = Python::attach(|py| close_bar(py, &bar));
                        // The bar is cosmetic: a failure to close it must not hide a
                        // failed step.
                        return done.and(closed).map(|_| None::<()>);
                    }
                }
            }
        })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = self
            .state(py)
            .map_or_else(|_| "gone".to_owned(), str::to_owned);
        format!(
            "<tidaldb.Migration tenant={} {} -> {} state={state}>",
            self.handle.tenant().0,
            self.source(),
            self.target()
        )
    }
}

fn grace_of(py: Python<'_>, grace: Option<&Bound<'_, PyAny>>) -> PyResult<Duration> {
    Ok(grace
        .map(|g| duration(py, "grace", g))
        .transpose()?
        .unwrap_or_default())
}
