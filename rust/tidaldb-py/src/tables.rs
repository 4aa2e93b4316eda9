//! Tables out: what `Results` and bulk scores hand to pandas, polars and Arrow.
//!
//! The bindings build the columns as numpy arrays (each taking over a Rust vector, so
//! without a copy); `tidaldb._tables` wraps them for each library, importing it only
//! when it is asked for, so that none of them is a dependency of the package.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use tidaldb::EntityId;

const MODULE: &str = "tidaldb._tables";

static SCORES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TO_PANDAS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TO_POLARS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ARROW_C_STREAM: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The `item` and `score` columns of `items` and `scores`, which are as long.
pub fn item_scores<'py>(
    py: Python<'py>,
    items: Vec<u64>,
    scores: Vec<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    debug_assert_eq!(items.len(), scores.len(), "one score per item");
    let columns = PyDict::new(py);
    columns.set_item("item", PyArray1::from_vec(py, items))?;
    columns.set_item("score", PyArray1::from_vec(py, scores))?;
    Ok(columns)
}

/// The ids of a bulk read, kept for its `Scores`' `item` column.
pub fn ids(items: &[EntityId]) -> Vec<u64> {
    items.iter().map(|e| e.0).collect()
}

/// A bulk read's answer: a `tidaldb.Scores` (a float64 numpy array that also knows its
/// items), one score per id of `items`, in their order.
pub fn scores(py: Python<'_>, items: Vec<u64>, scores: Vec<f64>) -> PyResult<Bound<'_, PyAny>> {
    let columns = item_scores(py, items, scores)?;
    SCORES
        .import(py, MODULE, "Scores")?
        .call_method1("_of", (columns,))
}

/// `columns` as a pandas DataFrame.
pub fn to_pandas<'py>(py: Python<'py>, columns: Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    TO_PANDAS.import(py, MODULE, "to_pandas")?.call1((columns,))
}

/// `columns` as a polars DataFrame.
pub fn to_polars<'py>(py: Python<'py>, columns: Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    TO_POLARS.import(py, MODULE, "to_polars")?.call1((columns,))
}

/// `columns` as an Arrow C stream capsule, cast to `requested_schema` when given.
pub fn arrow_c_stream<'py>(
    py: Python<'py>,
    columns: Bound<'py, PyDict>,
    requested_schema: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    ARROW_C_STREAM
        .import(py, MODULE, "arrow_c_stream")?
        .call1((columns, requested_schema))
}
