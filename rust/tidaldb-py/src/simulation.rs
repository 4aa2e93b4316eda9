//! The simulator behind a `Cluster` and its `Tenant`s and `Migration`s, with the region
//! names its user gave: cheap to clone, so every Python object holds its own.
//!
//! Every call runs detached from the interpreter, and Ctrl-C stops it between simulator
//! happenings (see `signals`). The simulator has one lock, which an awaited `converged()`
//! or `Migration.run()` holds for as long as a step runs on its worker thread; a thread
//! that waited for it while attached would stall every other Python thread, including the
//! event loop that is to receive the result.

use pyo3::prelude::*;
use tidaldb::cluster::{RegionNames, shard_in};
use tidaldb::sim::{Scope, SimulatedCluster};
use tidaldb::{RegionId, ShardId, TenantId, TidalError};

use crate::convert::{Natural, Shard};
use crate::errors::IntoPyResult;
use crate::fork_guard::Origin;
use crate::logging;
use crate::signals;

#[derive(Clone)]
pub struct Simulation {
    pub sim: SimulatedCluster,
    pub names: RegionNames,
    /// The process that built the cluster: the only one that may use it.
    pub origin: Origin,
}

impl Simulation {
    /// Runs `f` on the cluster detached, then delivers its log records; region numbers in
    /// an error's message come back as the names the user gave.
    pub fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&SimulatedCluster) -> Result<T, TidalError> + Send,
    ) -> PyResult<T> {
        self.check_origin(py)?;
        let out = signals::detached(py, || f(&self.sim));
        logging::deliver(py)?;
        out?.map_err(|e| self.names.rename_error(e)).py_err(py)
    }

    /// `ForkedProcess` in a process forked from the one that built the cluster.
    pub fn check_origin(&self, py: Python<'_>) -> PyResult<()> {
        self.origin.check(py, "Cluster")
    }

    /// The region called `name`, or `NotFound` listing the cluster's regions.
    pub fn region(&self, py: Python<'_>, name: &str) -> PyResult<RegionId> {
        self.names.id(name).py_err(py)
    }

    pub fn name(&self, region: RegionId) -> String {
        self.names.name(region)
    }

    pub fn scope(&self, py: Python<'_>, tenant: TenantId, region: Option<&str>) -> PyResult<Scope> {
        let region = region.map(|r| self.region(py, r)).transpose()?;
        Ok(Scope::tenant(tenant).in_region(region))
    }

    /// The host of `shard` in `region`, both checked against the cluster.
    pub fn host(
        &self,
        py: Python<'_>,
        region: &str,
        shard: Natural<Shard>,
    ) -> PyResult<(RegionId, ShardId)> {
        let r = self.region(py, region)?;
        let s = shard_in(shard.0, self.sim.config().shards_per_region).py_err(py)?;
        Ok((r, s))
    }
}
