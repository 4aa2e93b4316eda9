//! Opening a [`TidalDb`]: ephemeral or on disk, with a schema and a durability policy,
//! alone or as one replica of a group.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::db::TidalDb;
use super::state::ReportSink;
use super::transport::{Inbox, Transport};
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
    pub(crate) transport: Option<TransportSlot>,
    pub(crate) replication_timeout: Option<Duration>,
    pub(crate) reports: Option<ReportSink>,
}

/// A transport and the inbox it fills, until `open` hands them to the driver.
pub(crate) struct TransportSlot {
    pub transport: Arc<dyn Transport>,
    pub inbox: Inbox,
}

impl fmt::Debug for TransportSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportSlot")
            .field("local_id", &self.transport.local_id())
            .finish_non_exhaustive()
    }
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

    /// Threads a bulk write (and a replicated batch, and the replay at open) may be applied
    /// on, partitioned by entity; at least 1. Defaults to every core the process may use.
    /// Events are still validated, stamped and logged on one thread, in one order, and
    /// scores, windows and query results are bit-identical whatever the count: only the
    /// speed changes. Batches below [`PARALLEL_MIN_EVENTS`](crate::ledger::PARALLEL_MIN_EVENTS)
    /// events apply on the caller's thread, and larger ones are spread only while that
    /// has been timed faster than one thread (it is not when other processes keep the
    /// cores busy).
    pub fn ingest_threads(mut self, threads: usize) -> Self {
        self.node.ingest_threads = threads;
        self
    }

    /// Makes this database one replica of a group: its id, region, shard, role, peers and
    /// protocol timings. Replaces whatever `node_id`, `max_future_skew` or `ingest_threads`
    /// set before.
    /// A group needs a transport as well (see [`with_transport`](Self::with_transport)).
    pub fn with_cluster(mut self, node: NodeConfig) -> Self {
        self.node = node;
        self
    }

    /// How this replica reaches its peers and hears from them. `open` then spawns the
    /// driver task on the current tokio runtime, so it must be called from within one
    /// (with its timer enabled).
    pub fn with_transport(mut self, transport: Arc<dyn Transport>, inbox: Inbox) -> Self {
        self.transport = Some(TransportSlot { transport, inbox });
        self
    }

    /// How long a `Replicated(k)` write waits for its acknowledgements
    /// (default [`DEFAULT_REPLICATION_TIMEOUT`](super::DEFAULT_REPLICATION_TIMEOUT)).
    /// Sends the replica's heartbeat reports to `sink`: how a cluster's control plane
    /// hears its replicas. The sink runs under the replica's lock and must only queue.
    pub fn report_to(mut self, sink: ReportSink) -> Self {
        self.reports = Some(sink);
        self
    }

    pub fn replication_timeout(mut self, timeout: Duration) -> Self {
        self.replication_timeout = Some(timeout);
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
        if self.node.ingest_threads == 0 {
            return Err(TidalError::InvalidArgument {
                name: "ingest_threads",
                reason: "at least one thread must apply writes; pass 1 to apply on the caller's"
                    .into(),
            });
        }
        self.check_cluster()?;
        TidalDb::open_with(self, schema)
    }

    fn check_cluster(&self) -> Result<()> {
        let peers = self.node.peers.iter().any(|p| p.node != self.node.id);
        match &self.transport {
            None if peers => Err(TidalError::InvalidArgument {
                name: "transport",
                reason: format!(
                    "node {} lists peers {:?} but has no way to reach them; \
                     add .with_transport(transport, inbox)",
                    self.node.id.0, self.node.peers
                ),
            }),
            Some(slot) if slot.transport.local_id() != self.node.id => {
                Err(TidalError::InvalidArgument {
                    name: "transport",
                    reason: format!(
                        "the transport sends as node {} but this database is node {}; \
                         connect the transport with the node's own id",
                        slot.transport.local_id().0,
                        self.node.id.0
                    ),
                })
            }
            Some(_) if self.node.heartbeat_interval.is_zero() => Err(TidalError::InvalidArgument {
                name: "heartbeat_interval",
                reason: "a replica needs a non-zero heartbeat interval".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The runtime the driver task will run on: the caller's.
    pub(crate) fn driver_runtime(&self) -> Result<tokio::runtime::Handle> {
        tokio::runtime::Handle::try_current().map_err(|_| TidalError::InvalidArgument {
            name: "transport",
            reason: "a replicated database runs its driver on tokio; call .open() from \
                     within a tokio runtime (e.g. inside #[tokio::main] or Runtime::enter)"
                .into(),
        })
    }
}
