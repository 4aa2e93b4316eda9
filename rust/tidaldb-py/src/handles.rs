//! Small handles that cluster calls return: a write's acknowledgement and a partition.

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tidaldb::node::WriteAck;
use tidaldb::sim::{NetworkPartition, PartitionId};

use crate::simulation::Simulation;

#[doc = include_str!("../pydoc/WriteAck.md")]
#[pyclass(module = "tidaldb._native", name = "WriteAck", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyWriteAck {
    #[doc = include_str!("../pydoc/WriteAck/region.md")]
    #[pyo3(get)]
    region: String,
    #[doc = include_str!("../pydoc/WriteAck/origin.md")]
    #[pyo3(get)]
    origin: u16,
    #[doc = include_str!("../pydoc/WriteAck/seq.md")]
    #[pyo3(get)]
    seq: u64,
    #[doc = include_str!("../pydoc/WriteAck/count.md")]
    #[pyo3(get)]
    count: usize,
    #[doc = include_str!("../pydoc/WriteAck/duplicate.md")]
    #[pyo3(get)]
    duplicate: bool,
}

impl PyWriteAck {
    pub fn new(ack: WriteAck, region: String) -> Self {
        let (first, count, duplicate) = match ack {
            WriteAck::Applied { first, count } => (first, count, false),
            WriteAck::Duplicate { original } => (original, 0, true),
        };
        PyWriteAck {
            region,
            origin: first.origin.0,
            seq: first.seq,
            count,
            duplicate,
        }
    }
}

#[pymethods]
impl PyWriteAck {
    fn __repr__(&self) -> String {
        if self.duplicate {
            format!(
                "<tidaldb.WriteAck duplicate of event ({}, {}) from {}>",
                self.origin, self.seq, self.region
            )
        } else {
            format!(
                "<tidaldb.WriteAck {} event(s) from ({}, {}) at {}>",
                self.count, self.origin, self.seq, self.region
            )
        }
    }
}

// It holds the partition's id, not a lock: every method detaches and asks the simulator,
// so two threads using one handle never wait on each other while attached.
#[doc = include_str!("../pydoc/Partition.md")]
#[pyclass(module = "tidaldb._native", name = "Partition", frozen)]
pub struct PyPartition {
    cluster: Simulation,
    id: PartitionId,
    #[doc = include_str!("../pydoc/Partition/regions.md")]
    #[pyo3(get)]
    regions: (String, String),
    #[doc = include_str!("../pydoc/Partition/one_way.md")]
    #[pyo3(get)]
    one_way: bool,
}

impl PyPartition {
    pub fn new(
        cluster: Simulation,
        handle: NetworkPartition,
        regions: (String, String),
        one_way: bool,
    ) -> Self {
        PyPartition {
            cluster,
            id: handle.keep(),
            regions,
            one_way,
        }
    }
}

#[pymethods]
impl PyPartition {
    #[doc = include_str!("../pydoc/Partition/active.md")]
    #[getter]
    fn active(&self, py: Python<'_>) -> PyResult<bool> {
        self.cluster.check_origin(py)?;
        Ok(py.detach(|| self.cluster.sim.is_partition_active(self.id)))
    }

    #[doc = include_str!("../pydoc/Partition/heal.md")]
    fn heal(&self, py: Python<'_>) -> PyResult<()> {
        self.cluster.check_origin(py)?;
        py.detach(|| self.cluster.sim.heal_partition(self.id));
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.heal(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let arrow = if self.one_way { "->" } else { "<->" };
        let state = match self.active(py) {
            Ok(true) => "active",
            Ok(false) => "healed",
            Err(_) => "inherited through a fork: unusable here",
        };
        format!(
            "<tidaldb.Partition {} {arrow} {} {state}>",
            self.regions.0, self.regions.1
        )
    }
}
