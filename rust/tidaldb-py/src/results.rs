//! What `Db.retrieve` returns, with reprs for the terminal and tables for notebooks.

use numpy::PyArray1;
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySlice, PySliceMethods};
use tidaldb::{QueryStats, Results, ScoredItem};

use crate::tables;

/// Rows shown by `_repr_html_` before the table is cut short.
const HTML_ROWS: usize = 50;

#[doc = include_str!("../pydoc/ScoredItem.md")]
#[pyclass(module = "tidaldb._native", name = "ScoredItem", frozen)]
#[derive(Clone, Copy)]
pub struct PyScoredItem {
    #[doc = include_str!("../pydoc/ScoredItem/item.md")]
    #[pyo3(get)]
    item: u64,
    #[doc = include_str!("../pydoc/ScoredItem/score.md")]
    #[pyo3(get)]
    score: f64,
}

#[pymethods]
impl PyScoredItem {
    fn __repr__(&self) -> String {
        format!(
            "ScoredItem(item={}, score={})",
            self.item,
            py_float(self.score)
        )
    }
}

impl From<ScoredItem> for PyScoredItem {
    fn from(s: ScoredItem) -> Self {
        PyScoredItem {
            item: s.item.0,
            score: s.score,
        }
    }
}

#[doc = include_str!("../pydoc/QueryStats.md")]
#[pyclass(module = "tidaldb._native", name = "QueryStats", frozen)]
pub struct PyQueryStats {
    #[doc = include_str!("../pydoc/QueryStats/candidates_considered.md")]
    #[pyo3(get)]
    candidates_considered: usize,
    #[doc = include_str!("../pydoc/QueryStats/candidates_after_filter.md")]
    #[pyo3(get)]
    candidates_after_filter: usize,
    #[doc = include_str!("../pydoc/QueryStats/hidden_filtered.md")]
    #[pyo3(get)]
    hidden_filtered: usize,
    #[doc = include_str!("../pydoc/QueryStats/returned.md")]
    #[pyo3(get)]
    returned: usize,
    #[doc = include_str!("../pydoc/QueryStats/elapsed.md")]
    #[pyo3(get)]
    elapsed: f64,
    #[doc = include_str!("../pydoc/QueryStats/degraded.md")]
    #[pyo3(get)]
    degraded: bool,
    #[doc = include_str!("../pydoc/QueryStats/shards_reached.md")]
    #[pyo3(get)]
    shards_reached: Vec<u16>,
    #[doc = include_str!("../pydoc/QueryStats/shards_unreachable.md")]
    #[pyo3(get)]
    shards_unreachable: Vec<u16>,
    #[doc = include_str!("../pydoc/QueryStats/regions_unreachable.md")]
    #[pyo3(get)]
    regions_unreachable: Vec<String>,
}

impl From<&QueryStats> for PyQueryStats {
    fn from(s: &QueryStats) -> Self {
        PyQueryStats {
            candidates_considered: s.candidates_considered,
            candidates_after_filter: s.candidates_after_filter,
            hidden_filtered: s.hidden_filtered,
            returned: s.returned,
            elapsed: s.elapsed.as_secs_f64(),
            degraded: s.degraded,
            shards_reached: s.shards_reached.iter().map(|s| s.0).collect(),
            shards_unreachable: s.shards_unreachable.iter().map(|s| s.0).collect(),
            regions_unreachable: Vec::new(),
        }
    }
}

impl PyQueryStats {
    fn fields(&self) -> [(&'static str, String); 9] {
        [
            (
                "candidates_considered",
                self.candidates_considered.to_string(),
            ),
            (
                "candidates_after_filter",
                self.candidates_after_filter.to_string(),
            ),
            ("hidden_filtered", self.hidden_filtered.to_string()),
            ("returned", self.returned.to_string()),
            ("elapsed", py_float(self.elapsed)),
            (
                "degraded",
                if self.degraded { "True" } else { "False" }.to_owned(),
            ),
            ("shards_reached", format!("{:?}", self.shards_reached)),
            (
                "shards_unreachable",
                format!("{:?}", self.shards_unreachable),
            ),
            (
                "regions_unreachable",
                format!("{:?}", self.regions_unreachable),
            ),
        ]
    }
}

#[pymethods]
impl PyQueryStats {
    fn __repr__(&self) -> String {
        let parts: Vec<String> = self
            .fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("QueryStats({})", parts.join(", "))
    }

    #[doc = include_str!("../pydoc/QueryStats/_repr_html_.md")]
    fn _repr_html_(&self) -> String {
        let mut html =
            String::from("<table><thead><tr><th>stat</th><th>value</th></tr></thead><tbody>");
        for (k, v) in self.fields() {
            html.push_str(&format!("<tr><td>{k}</td><td>{}</td></tr>", escape(&v)));
        }
        html.push_str("</tbody></table>");
        html
    }
}

#[doc = include_str!("../pydoc/Results.md")]
#[pyclass(module = "tidaldb._native", name = "Results", frozen, sequence)]
pub struct PyResults {
    items: Vec<ScoredItem>,
    stats: Py<PyQueryStats>,
}

impl PyResults {
    /// The `item` and `score` columns the table conversions share.
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let items = self.items.iter().map(|s| s.item.0).collect();
        let scores = self.items.iter().map(|s| s.score).collect();
        tables::item_scores(py, items, scores)
    }

    pub fn new(py: Python<'_>, r: Results) -> PyResult<Self> {
        Self::with_region_names(py, r, &[])
    }

    /// Results of a cluster query: unreachable replicas are named by their region's name.
    pub fn with_region_names(py: Python<'_>, r: Results, names: &[String]) -> PyResult<Self> {
        let mut stats = PyQueryStats::from(&r.stats);
        for replica in &r.stats.replicas_unreachable {
            let name = names
                .get(usize::from(replica.region.0))
                .cloned()
                .unwrap_or_else(|| format!("region {}", replica.region.0));
            if !stats.regions_unreachable.contains(&name) {
                stats.regions_unreachable.push(name);
            }
        }
        Ok(PyResults {
            stats: Py::new(py, stats)?,
            items: r.items,
        })
    }
}

#[pymethods]
impl PyResults {
    #[doc = include_str!("../pydoc/Results/items.md")]
    #[getter]
    fn items(&self) -> Vec<PyScoredItem> {
        self.items.iter().map(|&s| s.into()).collect()
    }

    #[doc = include_str!("../pydoc/Results/stats.md")]
    #[getter]
    fn stats(&self, py: Python<'_>) -> Py<PyQueryStats> {
        self.stats.clone_ref(py)
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.items())?
            .into_any()
            .try_iter()
            .map(Bound::into_any)
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(slice) = index.cast::<PySlice>() {
            let ind = slice.indices(self.items.len() as isize)?;
            let picked: Vec<PyScoredItem> = (0..ind.slicelength)
                .map(|k| self.items[(ind.start + k as isize * ind.step) as usize].into())
                .collect();
            return Ok(PyList::new(py, picked)?.into_any());
        }
        let i: isize = index.extract()?;
        let n = self.items.len() as isize;
        let at = if i < 0 { i + n } else { i };
        if !(0..n).contains(&at) {
            return Err(PyIndexError::new_err(format!(
                "result index {i} out of range for {n} results"
            )));
        }
        Ok(Bound::new(py, PyScoredItem::from(self.items[at as usize]))?.into_any())
    }

    #[doc = include_str!("../pydoc/Results/to_numpy.md")]
    fn to_numpy<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<f64>>) {
        let items: Vec<u64> = self.items.iter().map(|s| s.item.0).collect();
        let scores: Vec<f64> = self.items.iter().map(|s| s.score).collect();
        (
            PyArray1::from_vec(py, items),
            PyArray1::from_vec(py, scores),
        )
    }

    #[doc = include_str!("../pydoc/Results/to_pandas.md")]
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        tables::to_pandas(py, self.columns(py)?)
    }

    #[doc = include_str!("../pydoc/Results/to_polars.md")]
    fn to_polars<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        tables::to_polars(py, self.columns(py)?)
    }

    #[doc = include_str!("../pydoc/Results/__arrow_c_stream__.md")]
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        tables::arrow_c_stream(py, self.columns(py)?, requested_schema)
    }

    fn __repr__(&self) -> String {
        let shown: Vec<String> = self
            .items
            .iter()
            .take(5)
            .map(|s| format!("({}, {})", s.item.0, py_float(s.score)))
            .collect();
        let more = if self.items.len() > 5 { ", ..." } else { "" };
        let st = self.stats.get();
        format!(
            "Results({} items [{}{more}], candidates={}, hidden_filtered={}, elapsed={})",
            self.items.len(),
            shown.join(", "),
            st.candidates_considered,
            st.hidden_filtered,
            py_float(st.elapsed)
        )
    }

    #[doc = include_str!("../pydoc/Results/_repr_html_.md")]
    fn _repr_html_(&self) -> String {
        let mut html = String::from(
            "<table><thead><tr><th>rank</th><th>item</th><th>score</th></tr></thead><tbody>",
        );
        for (rank, s) in self.items.iter().take(HTML_ROWS).enumerate() {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                rank + 1,
                s.item.0,
                py_float(s.score)
            ));
        }
        if self.items.len() > HTML_ROWS {
            html.push_str(&format!(
                "<tr><td colspan=\"3\">… {} more</td></tr>",
                self.items.len() - HTML_ROWS
            ));
        }
        let st = self.stats.get();
        html.push_str(&format!(
            "</tbody></table><p>{} of {} candidates returned, {} hidden filtered, {} ms</p>",
            st.returned,
            st.candidates_considered,
            st.hidden_filtered,
            py_float(st.elapsed * 1e3)
        ));
        html
    }
}

/// Floats as Python's `repr` prints them: shortest round-trip digits, ".0" on whole
/// numbers, and scientific notation with a two-digit exponent outside [1e-4, 1e16).
fn py_float(x: f64) -> String {
    let a = x.abs();
    if x.is_finite() && x != 0.0 && !(1e-4..1e16).contains(&a) {
        let sci = format!("{x:e}");
        return match sci.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => sci,
        };
    }
    if x.is_finite() && x == x.trunc() {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
