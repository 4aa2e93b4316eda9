//! The state behind a [`TidalDb`](super::TidalDb) handle, and the one place that carries
//! out what the node asks: persist, commit, feed `Synced` back, send, reply.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::db::BULK_CHUNK;
use super::hard_state;
use super::layout::DirLock;
use super::staged::StagedWrites;
use super::tenants::TenantSet;
use super::transport::Transport;
use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::ClientTag;
use crate::ledger::Ledger;
use crate::node::{
    ClientOp, HardState, Input, LogRead, Node, NodeReport, Outputs, RequestId, WriteAck,
    WriteConcern, WriteRequest,
};
use crate::schema::{Schema, Timestamp};
use crate::wal::{Durability, RecoveryReport, Wal, WalConfig};

/// The durable half of an open database.
#[derive(Debug)]
pub(super) struct Disk {
    pub wal: Wal,
    pub durability: Durability,
    /// When the oldest uncommitted event was appended (Batched only).
    pub oldest_pending: Option<Instant>,
    pub since_snapshot: u64,
    pub snapshot_every: u64,
    /// The data directory's lock, held by the default tenant's log. Other tenants' logs
    /// live under the same directory and hold `None`: one lock guards them all.
    pub _lock: Option<DirLock>,
}

/// How every log of a database is written: the same policy for each tenant.
#[derive(Clone, Debug)]
pub(super) struct LogPolicy {
    pub wal: WalConfig,
    pub durability: Durability,
    pub snapshot_every: u64,
    /// Threads the replay at open applies large batches on, as the node does its writes.
    pub ingest_threads: usize,
}

/// A log opened and replayed, ready to become a [`State`].
pub(super) struct OpenedLog {
    pub ledger: Ledger,
    pub clock: HlcTimestamp,
    pub disk: Option<Disk>,
    pub report: RecoveryReport,
    /// The term and membership the node last stored beside this log, if it ever did.
    pub hard_state: Option<HardState>,
}

impl OpenedLog {
    /// True when the log was written before: the node is restarting, not starting.
    pub fn is_restart(&self) -> bool {
        self.hard_state.is_some() || self.report.events_replayed > 0 || self.report.snapshot_lsn > 0
    }
}

/// Opens the log in `wal_dir` and replays it, or starts an empty in-memory ledger when
/// there is no directory (an ephemeral database). The default tenant and every other
/// tenant recover through this one path, so they recover alike.
pub(super) fn open_log(
    schema: &Arc<Schema>,
    wal_dir: Option<&Path>,
    policy: &LogPolicy,
    lock: Option<DirLock>,
) -> Result<OpenedLog> {
    let Some(dir) = wal_dir else {
        return Ok(OpenedLog {
            ledger: Ledger::new(schema.clone()),
            clock: HlcTimestamp::default(),
            disk: None,
            report: RecoveryReport::default(),
            hard_state: None,
        });
    };
    let (wal, ledger, clock, report) = Wal::open(dir, policy.wal, schema, |ledger, events| {
        ledger.set_apply_threads(policy.ingest_threads);
        ledger.apply_batch(events)
    })?;
    let hard_state = hard_state::read(dir)?;
    let disk = Disk {
        wal,
        durability: policy.durability,
        oldest_pending: None,
        since_snapshot: report.events_replayed,
        snapshot_every: policy.snapshot_every,
        _lock: lock,
    };
    Ok(OpenedLog {
        ledger,
        clock,
        disk: Some(disk),
        report,
        hard_state,
    })
}

/// Entries the reused output buffers keep room for between inputs: enough for any usual
/// write, far below the peak of a bulk call of millions of events.
const KEPT_OUTPUT_CAPACITY: usize = 1 << 14;

/// A transport in a form `State` can derive `Debug` over.
pub(super) struct Net(pub Arc<dyn Transport>);

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("local_id", &self.0.local_id())
            .finish_non_exhaustive()
    }
}

/// Receives a replica's reports to the control plane. It is called with the replica's
/// lock held, so it must only queue the report: never block, never call back in.
#[derive(Clone)]
pub struct ReportSink(pub Arc<dyn Fn(NodeReport) + Send + Sync>);

impl fmt::Debug for ReportSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportSink")
    }
}

/// The node kept a `Local` write waiting, which it never should.
pub(super) fn held_back() -> TidalError {
    TidalError::Unavailable("the node held back the reply to a local write".into())
}

/// A reply the node gave, or the promise of one (a `Replicated(k)` write).
pub(super) enum Submitted {
    Done(WriteAck),
    Waiting(RequestId, oneshot::Receiver<Result<WriteAck>>),
}

#[derive(Debug)]
pub(super) struct State {
    pub node: Node,
    /// The node's output buffers, reused from call to call; boxed so that a step takes and
    /// puts them back by moving a pointer, not the buffers' heads. `None` only during a step.
    out: Option<Box<Outputs>>,
    pub disk: Option<Disk>,
    /// Set when a WAL write failed: memory may now be ahead of disk, so no further write
    /// may be acknowledged until the database is reopened and recovers from its log.
    pub failed: Option<String>,
    pub closed: bool,
    pub net: Option<Net>,
    /// Where the node's heartbeat reports go: the control plane of a cluster that hosts
    /// this replica. A replica outside a cluster has nobody to tell.
    pub reports: Option<ReportSink>,
    /// Something was persisted (or installed) that is not yet committed and confirmed to
    /// the node with `Synced`; until then the node neither pushes nor acknowledges it.
    sync_due: bool,
    /// `Replicated(k)` writes whose callers await the node's reply.
    pub waiters: HashMap<RequestId, oneshot::Sender<Result<WriteAck>>>,
    next_request: RequestId,
    /// Single writes admitted but not yet applied (see `staged.rs`).
    pub staged: StagedWrites,
}

#[derive(Debug)]
pub(super) struct Shared {
    /// Every tenant but the default one. Declared first so that their logs are closed
    /// before the default tenant's, which holds the directory lock.
    pub tenants: TenantSet,
    /// The default tenant's state.
    pub state: Mutex<State>,
    pub schema: Arc<Schema>,
    pub recovery: RecoveryReport,
    /// Wakes the driver task to end at once on close or drop, instead of at its next tick.
    pub stop: Arc<Notify>,
    pub replication_timeout: Duration,
}

impl State {
    pub fn new(node: Node, disk: Option<Disk>, net: Option<Net>) -> State {
        State {
            node,
            out: Some(Box::default()),
            disk,
            failed: None,
            closed: false,
            net,
            reports: None,
            sync_due: false,
            waiters: HashMap::new(),
            next_request: 1,
            staged: StagedWrites::default(),
        }
    }

    /// Runs one client write through the node and carries out its outputs. A `Local` (or
    /// refused) write comes back `Done`, applied and, per the durability policy, synced; a
    /// `Replicated(k)` one is applied locally and registered to wait for its reply.
    pub fn submit(
        &mut self,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<Submitted> {
        self.check_writable()?;
        let (id, reply) = self.submit_unsettled(ops, concern, tag);
        // Our own events leave for the peers only once `Synced` says they are durable.
        let settled = self.settle();
        let reply = reply?;
        settled?;
        match reply {
            Some(r) => r.map(Submitted::Done),
            None => {
                let (tx, rx) = oneshot::channel();
                self.waiters.insert(id, tx);
                Ok(Submitted::Waiting(id, rx))
            }
        }
    }

    /// Applies one write and appends it to the log, leaving the commit to a later
    /// [`settle`](Self::settle): how a bulk write applies its chunks one at a time and
    /// still commits them as one group. Returns the request's id and the node's reply,
    /// if it gave one. The caller checks [`check_writable`](Self::check_writable) first.
    #[allow(clippy::type_complexity)]
    pub fn submit_unsettled(
        &mut self,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> (RequestId, Result<Option<Result<WriteAck>>>) {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        let request = WriteRequest {
            id,
            ops,
            concern,
            tag,
        };
        (
            id,
            self.step(Timestamp::now(), Input::Write(request), Some(id)),
        )
    }

    /// True when nothing outside this process (a log on disk, a peer, a control plane)
    /// and no quota needs to see a write before it is acknowledged, nor as an event: a
    /// lone in-memory database. Such a database stages single writes (`staged.rs`) and
    /// applies bulk writes without events (`unlogged.rs`).
    pub fn writes_stay_in_memory(&self) -> bool {
        // A node that stopped serving refuses writes in `Node::handle`, which the staged
        // and unlogged paths do not go through.
        !self.node.stopped_serving()
            && self.disk.is_none()
            && self.net.is_none()
            && self.reports.is_none()
            && self.node.config().quotas.is_none()
    }

    /// Runs a `Local` write, which the node answers at once.
    pub fn submit_local(&mut self, ops: &[ClientOp], tag: Option<ClientTag>) -> Result<WriteAck> {
        match self.submit(ops, WriteConcern::Local, tag)? {
            Submitted::Done(ack) => Ok(ack),
            Submitted::Waiting(..) => Err(held_back()),
        }
    }

    /// How many ops a bulk write applies next: `spread_chunk` when the ledger will spread
    /// the chunk over several threads, [`BULK_CHUNK`] when it will apply it on one.
    pub fn next_bulk_chunk(&self, spread_chunk: usize) -> usize {
        match self.node.ledger().spreads_next() {
            true => spread_chunk,
            false => BULK_CHUNK,
        }
    }

    pub fn check_writable(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(TidalError::Unavailable(format!(
                "an earlier WAL write failed ({why}); reopen the database to recover from its log"
            ))),
            None => Ok(()),
        }
    }

    /// Hands one input to the node and carries out its outputs in the order the contract
    /// requires: install a snapshot and append to the log, send, reply. Committing (and
    /// the `Synced` that follows) is left to [`settle`](Self::settle), so that a driver can
    /// group the commits of many inputs into one sync. Returns the reply to `claim`, if
    /// the node gave it; every other reply goes to its waiter.
    pub fn step(
        &mut self,
        now: Timestamp,
        input: Input<'_>,
        claim: Option<RequestId>,
    ) -> Result<Option<Result<WriteAck>>> {
        let mut out = self.out.take().unwrap_or_default();
        // Every step leaves the buffers cleared (below), so there is nothing to clear here.
        debug_assert!(out.is_empty(), "the output buffers were left uncleared");
        self.node.handle(now, input, &mut out);
        // Before anything is sent: a message in a new term must not outlive a crash that
        // forgets the term.
        let stored = self.store_hard_state(&mut out);
        if stored.is_err() {
            // Nothing may leave in a term a restart would not remember.
            out.messages.clear();
        }
        let persisted = stored.and_then(|()| self.persist(&out));
        if let Some(net) = &self.net {
            for (to, msg) in out.messages.drain(..) {
                net.0.send(to, msg);
            }
        }
        match &self.reports {
            Some(sink) => out.reports.drain(..).for_each(|r| sink.0(r)),
            None => out.reports.clear(),
        }
        let mut claimed = None;
        for (id, reply) in out.replies.drain(..) {
            if Some(id) == claim {
                claimed = Some(reply);
            } else if let Some(tx) = self.waiters.remove(&id) {
                // The waiter may have timed out and gone; the write stands either way.
                let _ = tx.send(reply);
            }
        }
        let reads = std::mem::take(&mut out.log_reads);
        out.clear_and_release(KEPT_OUTPUT_CAPACITY);
        self.out = Some(out);
        persisted?;
        self.serve_log_reads(now, &reads)?;
        Ok(claimed)
    }

    /// Reads back from the WAL the events the node asked for (they have left its
    /// in-memory log) and hands them in, one bounded chunk per request. Without a WAL
    /// nothing can be read back, and the node falls back to a snapshot.
    fn serve_log_reads(&mut self, now: Timestamp, reads: &[LogRead]) -> Result<()> {
        for &read in reads {
            let events = match self.disk.as_mut() {
                Some(disk) => {
                    // Only committed batches can be read back.
                    if disk.wal.uncommitted() > 0
                        && let Err(e) = disk.wal.commit()
                    {
                        return Err(self.fail(e));
                    }
                    disk.wal
                        .read_origin_range(read.origin, read.after, read.upto, read.len())?
                }
                None => Vec::new(),
            };
            self.step(
                now,
                Input::LogRead {
                    read,
                    events: &events,
                },
                None,
            )?;
        }
        Ok(())
    }

    /// Stores a changed term or membership beside the log, durably.
    fn store_hard_state(&mut self, out: &mut Outputs) -> Result<()> {
        let (Some(state), Some(disk)) = (out.hard_state.take(), self.disk.as_ref()) else {
            return Ok(());
        };
        match hard_state::write(disk.wal.dir(), &state) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Makes what the node applied durable as the policy says: a peer's snapshot replaces
    /// the stored state, new events are appended, and a commit is marked due.
    fn persist(&mut self, out: &Outputs) -> Result<()> {
        if out.persist.is_empty() && !out.install_snapshot {
            return Ok(());
        }
        let Some(disk) = self.disk.as_mut() else {
            // Memory is all there is, so applied is durable; a replicating node still needs
            // telling (that is when it pushes), a lone one has no use for it.
            self.sync_due = self.net.is_some();
            return Ok(());
        };
        for e in &out.persist {
            disk.wal.append(e);
        }
        disk.since_snapshot += out.persist.len() as u64;
        if out.install_snapshot {
            // The node's ledger now holds state no log record describes; until a snapshot
            // of it is on disk, memory is ahead of the log. The snapshot covers the events
            // appended just above, which the ledger already includes.
            let clock = self.node.clock();
            let needed = self.node.needed_by_peers();
            if let Err(e) = disk
                .wal
                .snapshot_retaining(self.node.ledger(), clock, needed.as_ref())
            {
                return Err(self.fail(e));
            }
            disk.since_snapshot = 0;
            disk.oldest_pending = None;
            self.sync_due = true;
            return Ok(());
        }
        self.sync_due |= match disk.durability {
            Durability::Immediate => true,
            Durability::Batched {
                max_batch,
                max_delay,
            } => {
                let oldest = *disk.oldest_pending.get_or_insert_with(Instant::now);
                disk.wal.uncommitted() >= max_batch || oldest.elapsed() >= max_delay
            }
        };
        Ok(())
    }

    /// Commits if something persisted asks for it now (see [`persist`](Self::persist)).
    pub fn settle(&mut self) -> Result<()> {
        if self.sync_due {
            self.commit()?;
        }
        Ok(())
    }

    fn fail(&mut self, e: TidalError) -> TidalError {
        self.failed = Some(e.to_string());
        tracing::error!(error = %e, "WAL write failed; refusing further writes");
        e
    }

    /// Syncs the WAL, then tells the node and sends what that releases (pushes of our own
    /// events, acks of pushed ones). A failure is recorded, so every later write refuses.
    pub fn sync_wal(&mut self) -> Result<()> {
        self.check_writable()?;
        if let Some(disk) = self.disk.as_mut() {
            if let Err(e) = disk.wal.commit() {
                return Err(self.fail(e));
            }
            disk.oldest_pending = None;
        }
        self.sync_due = false;
        if self.net.is_none() {
            // Durability only matters to a node for what it ships; a lone node ships nothing.
            return Ok(());
        }
        self.step(Timestamp::now(), Input::Synced, None).map(drop)
    }

    /// Syncs the WAL, then takes an automatic snapshot if one is due.
    pub fn commit(&mut self) -> Result<()> {
        self.sync_wal()?;
        let due = self
            .disk
            .as_ref()
            .is_some_and(|d| d.snapshot_every > 0 && d.since_snapshot >= d.snapshot_every);
        // The writes are durable already; a failed snapshot only means a longer replay, so
        // it is logged and retried after another interval, never reported as a failed
        // write (a caller would retry it and count it twice).
        if due && let Err(e) = self.snapshot() {
            tracing::error!(error = %e, "automatic snapshot failed; will retry");
            if let Some(disk) = self.disk.as_mut() {
                disk.since_snapshot = 0;
            }
        }
        Ok(())
    }

    pub fn snapshot(&mut self) -> Result<u64> {
        // Pending batched writes go through the one path that records a failure.
        self.sync_wal()?;
        let clock = self.node.clock();
        let Some(disk) = self.disk.as_mut() else {
            return Ok(0);
        };
        let needed = self.node.needed_by_peers();
        let lsn = disk
            .wal
            .snapshot_retaining(self.node.ledger(), clock, needed.as_ref())?;
        disk.since_snapshot = 0;
        tracing::debug!(lsn, "snapshot written");
        Ok(lsn)
    }
}

impl State {
    /// The final commit of a state dropped without `close`: nobody is left to hear of a
    /// failure, so it is logged.
    pub fn commit_at_drop(&mut self) {
        if self.failed.is_none()
            && !self.closed
            && let Err(e) = self.commit()
        {
            tracing::error!(error = %e, tenant = %self.node.config().tenant, "final WAL commit at close failed");
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.notify_one();
        // The tenants first: the default tenant's log holds the directory lock.
        self.tenants.commit_all_on_drop();
        if let Ok(state) = self.state.get_mut() {
            state.commit_at_drop();
        }
    }
}
