//! `tidaldb.export_events` and `tidaldb.export_scores`: the core's export of a data
//! directory (what `tidaldb export` writes), as CSV bytes that `tidaldb._export` turns
//! into columns for pandas, polars and Arrow.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tidaldb::runtime::tools::{ExportFormat, ExportWhat, export};

use crate::cluster_config::TenantArg;
use crate::convert::{At, Float, timestamp_or_now};
use crate::errors::IntoPyResult;
use crate::logging;

/// Runs the export detached, as it reads the whole log; the CSV stays in memory.
fn export_csv<'py>(
    py: Python<'py>,
    path: PathBuf,
    what: ExportWhat,
) -> PyResult<Bound<'py, PyBytes>> {
    let csv = py.detach(move || {
        let mut out = Vec::new();
        export(&path, what, ExportFormat::Csv, &mut out).map(|_| out)
    });
    logging::deliver(py)?;
    Ok(PyBytes::new(py, &csv.py_err(py)?))
}

#[doc = include_str!("../pydoc/export_events_csv.md")]
#[pyfunction]
#[pyo3(signature = (path, *, tenant = None, allow_partial = false))]
pub fn export_events_csv<'py>(
    py: Python<'py>,
    path: PathBuf,
    tenant: Option<TenantArg>,
    allow_partial: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let tenant = tenant.map(|t| t.0);
    export_csv(
        py,
        path,
        ExportWhat::Events {
            tenant,
            allow_partial,
        },
    )
}

#[doc = include_str!("../pydoc/export_scores_csv.md")]
#[pyfunction]
#[pyo3(signature = (path, *, at = None, tenant = None))]
pub fn export_scores_csv<'py>(
    py: Python<'py>,
    path: PathBuf,
    at: Option<Float<At>>,
    tenant: Option<TenantArg>,
) -> PyResult<Bound<'py, PyBytes>> {
    let at = timestamp_or_now(py, at)?;
    let tenant = tenant.map(|t| t.0);
    export_csv(py, path, ExportWhat::Scores { tenant, at })
}
