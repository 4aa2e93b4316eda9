//! `tidaldb.Served`: which node answered a client's call, and whether its answer may miss
//! writes.

use pyo3::prelude::*;
use tidaldb::runtime::net::proto::Served;

#[doc = include_str!("../pydoc/Served.md")]
#[pyclass(module = "tidaldb._native", name = "Served", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyServed {
    #[doc = include_str!("../pydoc/Served/node.md")]
    #[pyo3(get)]
    node: u16,
    #[doc = include_str!("../pydoc/Served/region.md")]
    #[pyo3(get)]
    region: String,
    #[doc = include_str!("../pydoc/Served/degraded.md")]
    #[pyo3(get)]
    degraded: bool,
    #[doc = include_str!("../pydoc/Served/unreachable.md")]
    #[pyo3(get)]
    unreachable: Vec<u16>,
}

impl From<&Served> for PyServed {
    fn from(s: &Served) -> Self {
        PyServed {
            node: s.node.0,
            region: s.region.clone(),
            degraded: s.degraded,
            unreachable: s.unreachable.iter().map(|n| n.0).collect(),
        }
    }
}

#[pymethods]
impl PyServed {
    fn __repr__(&self) -> String {
        let state = if self.degraded {
            format!("degraded, unreachable {:?}", self.unreachable)
        } else {
            "complete".into()
        };
        format!(
            "<tidaldb.Served node {} ({}) {state}>",
            self.node, self.region
        )
    }
}
