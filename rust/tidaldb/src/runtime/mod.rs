//! The production driver: the real clock and real files around the sans-IO node.

mod builder;
mod db;
mod layout;

pub use builder::{DEFAULT_SNAPSHOT_EVERY, TidalDbBuilder};
pub use db::TidalDb;
pub use layout::default_wal_dir;
