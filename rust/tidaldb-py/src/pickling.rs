//! Pickling: a `Schema` is plain data and pickles; the handles (`Db`, `Cluster`, `Tenant`,
//! `Client`) own things of this process (a locked data directory, a simulation's threads,
//! connections) that a copy in another process could not own too, so they refuse, saying
//! what to send instead.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// The `TypeError` of a handle that cannot be pickled or copied: `what` it is, `why` it
/// cannot travel, and what to do `instead`.
pub fn refuse(what: &str, why: &str, instead: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "cannot pickle or copy a tidaldb.{what}: {why}. Instead, {instead}"
    ))
}

pub fn db() -> PyErr {
    refuse(
        "Db",
        "it holds its data directory open and locked in this process, and an ephemeral Db \
         lives only in this process's memory",
        "pass the path and the schema (a Schema pickles) and open a tidaldb.Db in the other \
         process, after closing this one",
    )
}

pub fn cluster() -> PyErr {
    refuse(
        "Cluster",
        "its replicas, network and virtual clock run inside this process",
        "pass the schema and the options (seed included; the same seed replays the same run) \
         and build a tidaldb.Cluster in the other process",
    )
}

pub fn tenant() -> PyErr {
    refuse(
        "Tenant",
        "it is a view of a tidaldb.Cluster, which runs inside this process",
        "pass the tenant id and call cluster.tenant(id) where the cluster lives",
    )
}

pub fn client() -> PyErr {
    refuse(
        "Client",
        "it holds connections of this process to the servers",
        "pass the addresses and TLS files and call tidaldb.connect(...) in the other process",
    )
}
