//! `tidaldb._native`: the PyO3 face of the tidaldb core.
//!
//! Conversion, error mapping, the GIL and the logging bridge only: every decision (option
//! checks and defaults, presets, names, the migration loop) lives in the core crate, so
//! that Rust and Python users get the same behaviour. The public Python API is re-exported
//! by `python/tidaldb/__init__.py`, and `_native.pyi` describes it for type checkers.

mod at_exit;
mod attached_cell;
mod awaitable;
mod client;
mod cluster;
mod cluster_config;
mod columns;
mod convert;
mod db;
mod errors;
mod export;
mod fork_guard;
mod handles;
mod logging;
mod migration;
mod pickling;
mod query_args;
mod results;
mod schema;
mod scoped;
mod served;
mod signal_names;
mod signals;
mod simulation;
mod tables;
mod tenant;

use pyo3::prelude::*;

// The global interpreter lock is what orders `AttachedCell`'s accesses.
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install(m.py())?;
    attached_cell::install(m.py())?;
    fork_guard::install(m)?;
    // atexit runs its hooks last registered first: awaitables' workers are shut out of
    // Python before the open databases are closed.
    at_exit::install(m)?;
    awaitable::install(m)?;
    m.add_class::<schema::PySchema>()?;
    m.add_class::<db::PyDb>()?;
    m.add_class::<results::PyResults>()?;
    m.add_class::<results::PyScoredItem>()?;
    m.add_class::<results::PyQueryStats>()?;
    m.add_class::<scoped::PyScoped>()?;
    m.add_class::<cluster::PyCluster>()?;
    m.add_class::<tenant::PyTenant>()?;
    m.add_class::<migration::PyMigration>()?;
    m.add_class::<handles::PyPartition>()?;
    m.add_class::<handles::PyWriteAck>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<served::PyServed>()?;
    m.add_function(wrap_pyfunction!(client::connect, m)?)?;
    m.add_function(wrap_pyfunction!(convert::duration_seconds, m)?)?;
    m.add_function(wrap_pyfunction!(export::export_events_csv, m)?)?;
    m.add_function(wrap_pyfunction!(export::export_scores_csv, m)?)?;
    let states = tidaldb::sim::TenantMigration::STATES.map(|s| s.name());
    m.add(
        "MIGRATION_STATES",
        pyo3::types::PyTuple::new(m.py(), states)?,
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
