//! The production driver: the real clock, real files and a real network around the
//! sans-IO node.

mod builder;
mod copied_column;
mod db;
mod driver;
mod group_view;
mod hard_state;
mod layout;
mod local_cluster;
pub mod net;
mod open_dirs;
mod reads;
mod replica;
mod shared_columns;
mod single_writes;
mod staged;
mod state;
mod tenants;
pub mod tools;
mod transport;
mod unlogged;

pub use builder::{DEFAULT_SNAPSHOT_EVERY, TidalDbBuilder};
pub use copied_column::CopiedColumn;
pub use db::{BULK_CHUNK, DEFAULT_REPLICATION_TIMEOUT, TidalDb};
pub use layout::default_wal_dir;
pub use local_cluster::{LocalCluster, LocalClusterConfig, LocalDriver};
pub use shared_columns::SharedColumns;
pub use state::ReportSink;
pub use transport::{
    InProcessTransport, InProcessTransportFactory, Inbox, PartitionHandle, Transport,
};
