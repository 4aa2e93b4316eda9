//! Opening a [`TidalDb`]: ephemeral or on disk, with a schema and a durability policy.

use std::path::PathBuf;
use std::sync::Arc;

use super::db::TidalDb;
use crate::error::{Result, TidalError};
use crate::node::NodeConfig;
use crate::schema::{NodeId, Schema};
use crate::wal::{Durability, WalConfig};

#[derive(Debug, Default)]
pub struct TidalDbBuilder {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) ephemeral: bool,
    pub(crate) schema: Option<Schema>,
    pub(crate) durability: Durability,
    pub(crate) node: NodeConfig,
    pub(crate) wal: WalConfig,
    pub(crate) snapshot_every: Option<u64>,
}

/// Events between automatic snapshots: bounds replay at restart to about a second.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1_000_000;

impl TidalDbBuilder {
    /// No disk at all: state lives in memory and dies with the process.
    pub fn ephemeral(mut self) -> Self {
        self.ephemeral = true;
        self.data_dir = None;
        self
    }

    /// Durable: the log and snapshots live under this directory.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self.ephemeral = false;
        self
    }

    pub fn with_schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }

    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    pub fn node_id(mut self, id: NodeId) -> Self {
        self.node.id = id;
        self
    }

    /// How far ahead of the wall clock a write's timestamp may be (default 5 minutes).
    pub fn max_future_skew(mut self, skew: std::time::Duration) -> Self {
        self.node.max_future_skew = skew;
        self
    }

    /// Take a snapshot after this many events (`0` turns automatic snapshots off).
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_every = Some(events);
        self
    }

    /// Start a new segment once the current one passes this size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.wal.segment_bytes = bytes.max(1);
        self
    }

    pub fn open(self) -> Result<TidalDb> {
        let schema = Arc::new(self.schema.clone().ok_or_else(|| {
            TidalError::InvalidSchema(
                "no schema given; call .with_schema(schema) before .open()".into(),
            )
        })?);
        if !self.ephemeral && self.data_dir.is_none() {
            return Err(TidalError::InvalidArgument {
                name: "data_dir",
                reason: "choose .ephemeral() or .with_data_dir(path) before .open()".into(),
            });
        }
        if let Durability::Batched {
            max_batch,
            max_delay,
        } = self.durability
            && (max_batch == 0 || max_delay.is_zero())
        {
            return Err(TidalError::InvalidArgument {
                name: "durability",
                reason: "Batched needs max_batch >= 1 and a non-zero max_delay".into(),
            });
        }
        TidalDb::open_with(self, schema)
    }
}
