//! The route for inputs that are not already what the core reads: pandas, polars and
//! pyarrow columns, Arrow PyCapsule objects, Python sequences, other numpy dtypes, and
//! `datetime`/`timedelta` scalars. `tidaldb._columns` turns them into a 1-D numpy array of
//! the exact dtype (or a float), and the caller reads that as it reads a numpy argument.
//!
//! The conversion lives in Python because numpy, pandas, polars and pyarrow already know
//! how to give their data as numpy arrays; doing it here would need an Arrow crate and
//! each library's quirks (tz-aware times, nullable dtypes) again. Exact-dtype numpy
//! arrays and plain floats never come here, so the common paths cost nothing more.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

const MODULE: &str = "tidaldb._columns";

static IDS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FLOATS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TIMES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TIME_SECONDS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DURATION_SECONDS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// What a 1-D array argument holds, which decides how it is converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// Entity ids, as uint64.
    Ids,
    /// Numbers, as float64.
    Floats,
    /// Times (Unix seconds, `datetime64`, datetimes), as float64 Unix seconds.
    Times,
}

fn function<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.import(py, MODULE, name)
}

/// `obj` as a 1-D numpy array of uint64 (for [`Column::Ids`]) or float64; raises
/// `InvalidArgument` or `TypeError` naming `what` when it cannot be one.
pub fn array<'py>(
    py: Python<'py>,
    column: Column,
    what: &'static str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let convert = match column {
        Column::Ids => function(py, &IDS, "ids")?,
        Column::Floats => function(py, &FLOATS, "floats")?,
        Column::Times => function(py, &TIMES, "times")?,
    };
    let out = convert.call1((obj, what))?;
    debug_assert!(
        match column {
            Column::Ids => out.cast::<PyArray1<u64>>().is_ok(),
            Column::Floats | Column::Times => out.cast::<PyArray1<f64>>().is_ok(),
        },
        "tidaldb._columns returned the wrong array type for {what}"
    );
    Ok(out)
}

/// A time that is not a plain float: a `datetime`, a `datetime64`, a numpy number.
pub fn time_seconds(py: Python<'_>, what: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    function(py, &TIME_SECONDS, "time_seconds")?
        .call1((obj, what))?
        .extract()
}

/// A duration that is not a plain float or string: a `timedelta`, a `timedelta64`.
pub fn duration_seconds(
    py: Python<'_>,
    what: &'static str,
    obj: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    function(py, &DURATION_SECONDS, "duration_seconds")?
        .call1((obj, what))?
        .extract()
}
