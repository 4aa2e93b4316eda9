//! `tidaldb.Migration`: a tenant's move to another region, step by step or awaited whole.
//!
//! The control plane's record is the truth, so this handle holds only the tenant id and
//! the migration's number: any number of handles see the same state, and one obtained
//! after an interruption (from `Tenant.migration`) resumes where the record says. The
//! step loop, the state names and the progress count are the core's.

use std::time::Duration;

use pyo3::prelude::*;
use tidaldb::sim::TenantMigration;
use tidaldb::{RegionId, TenantId, TidalError};

use crate::convert::duration;
use crate::errors::to_py;
use crate::simulation::Simulation;

#[doc = include_str!("../pydoc/Migration.md")]
#[pyclass(module = "tidaldb._native", name = "Migration", frozen)]
pub struct PyMigration {
    simulation: Simulation,
    handle: TenantMigration,
    /// Which of the tenant's migrations this is. Once it completes the tenant may begin
    /// another, and this handle must go on describing its own.
    number: u64,
    source: RegionId,
    target: RegionId,
}

impl PyMigration {
    pub fn resume(py: Python<'_>, simulation: Simulation, tenant: TenantId) -> PyResult<Self> {
        let (handle, record) = simulation.run(py, |sim| {
            let handle = sim.tenant_migration(tenant)?;
            let record = handle.record()?;
            Ok((handle, record))
        })?;
        Ok(PyMigration {
            simulation,
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
        self.simulation.run(py, |_| {
            self.handle.ensure_current(self.number)?;
            f(&self.handle)
        })
    }
}

/// Why an awaited `run()` stopped: a step failed, or Python code between steps raised
/// (the progress bar, or a logging handler).
enum Stop {
    Step(TidalError),
    Python(PyErr),
}

impl From<TidalError> for Stop {
    fn from(e: TidalError) -> Self {
        Stop::Step(e)
    }
}

/// Moves a tqdm bar (or nothing, for `None`) to `state`.
fn show(py: Python<'_>, bar: &Py<PyAny>, state: tidaldb::control::MigrationState) -> PyResult<()> {
    let bar = bar.bind(py);
    if !bar.is_none() {
        bar.setattr("n", TenantMigration::steps_done(state))?;
        bar.call_method1("set_postfix_str", (state.name(),))?;
        bar.call_method0("refresh")?;
    }
    Ok(())
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
    #[doc = include_str!("../pydoc/Migration/tenant.md")]
    #[getter]
    fn tenant(&self) -> u64 {
        self.handle.tenant().0
    }

    #[doc = include_str!("../pydoc/Migration/source.md")]
    #[getter]
    fn source(&self) -> String {
        self.simulation.name(self.source)
    }

    #[doc = include_str!("../pydoc/Migration/target.md")]
    #[getter]
    fn target(&self) -> String {
        self.simulation.name(self.target)
    }

    #[doc = include_str!("../pydoc/Migration/state.md")]
    #[getter]
    fn state(&self, py: Python<'_>) -> PyResult<&'static str> {
        let number = self.number;
        let state = self.simulation.run(py, |_| self.handle.state_of(number))?;
        Ok(state.name())
    }

    #[doc = include_str!("../pydoc/Migration/prepare_target.md")]
    fn prepare_target(&self, py: Python<'_>) -> PyResult<()> {
        self.step(py, TenantMigration::prepare_target)
    }

    #[doc = include_str!("../pydoc/Migration/enter_dual_write.md")]
    fn enter_dual_write(&self, py: Python<'_>) -> PyResult<()> {
        self.step(py, TenantMigration::enter_dual_write)
    }

    #[doc = include_str!("../pydoc/Migration/finalize.md")]
    fn finalize(&self, py: Python<'_>) -> PyResult<()> {
        self.step(py, TenantMigration::finalize)
    }

    #[doc = include_str!("../pydoc/Migration/gc_source.md")]
    #[pyo3(signature = (grace = None), text_signature = "(self, /, grace=0.0)")]
    fn gc_source(&self, py: Python<'_>, grace: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let grace = grace_of(py, grace)?;
        self.step(py, |m| m.gc_source(grace))
    }

    #[doc = include_str!("../pydoc/Migration/advance.md")]
    #[pyo3(signature = (grace = None), text_signature = "(self, /, grace=0.0)")]
    fn advance(&self, py: Python<'_>, grace: Option<&Bound<'_, PyAny>>) -> PyResult<&'static str> {
        let grace = grace_of(py, grace)?;
        let number = self.number;
        let state = self
            .simulation
            .run(py, |_| self.handle.step(number, grace))?;
        Ok(state.name())
    }

    #[doc = include_str!("../pydoc/Migration/run.md")]
    #[pyo3(signature = (progress = false, grace = None),
        text_signature = "(self, /, progress=False, grace=0.0)")]
    fn run<'py>(
        &self,
        py: Python<'py>,
        progress: bool,
        grace: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.simulation.check_origin(py)?;
        let grace = grace_of(py, grace)?;
        let number = self.number;
        let bar = if progress {
            let done = self.simulation.run(py, |_| self.handle.state_of(number))?;
            let desc = format!("migrate t{}", self.handle.tenant().0);
            let steps = (
                TenantMigration::STEPS,
                desc,
                TenantMigration::steps_done(done),
            );
            let bar = py
                .import("tidaldb._display")?
                .call_method1("progress_bar", steps)?;
            bar.unbind()
        } else {
            py.None()
        };
        let m = self.handle.clone();
        let names = self.simulation.names.clone();
        crate::awaitable::spawn(
            py,
            "Migration.run",
            move || {
                let ran = m.run_steps(number, grace, |state| {
                    crate::awaitable::with_python(|py| {
                        crate::logging::deliver(py)
                            .and_then(|()| show(py, &bar, state))
                            .map_err(Stop::Python)
                    })
                    .unwrap_or(Ok(()))
                });
                (ran, bar)
            },
            move |py, (ran, bar)| {
                // The bar is cosmetic: a failure to close it must not hide a failed step.
                let closed = close_bar(py, &bar);
                match ran {
                    Ok(()) => closed.map(|()| py.None()),
                    Err(Stop::Step(e)) => Err(to_py(py, names.rename_error(e))),
                    Err(Stop::Python(e)) => Err(e),
                }
            },
        )
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
