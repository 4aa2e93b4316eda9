//! `TidalDb`: the embedded database. It drives one sans-IO [`Node`] per tenant with the
//! real clock, persists what each node applies to its tenant's WAL according to the
//! durability policy and, when it has peers, replicates the default tenant through a
//! [`Transport`](super::Transport). The per-tenant API is in `tenants.rs`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::builder::{DEFAULT_SNAPSHOT_EVERY, TidalDbBuilder};
use super::driver::{spawn_driver, spawn_flusher};
use super::layout::{DirLock, StoredSchema, check_schema, default_wal_dir, record_schema};
use super::state::{LogPolicy, Net, Shared, State, Submitted, held_back, open_log};
use super::tenants::{TenantEnv, TenantSet};
use crate::error::{Result, TidalError};
use crate::event::{ClientTag, EventId};
use crate::interrupt;
use crate::node::{
    ClientOp, ControlCommand, Input, Node, Outputs, RequestId, SignalColumns, Times, WriteAck,
    WriteConcern,
};
use crate::query::{self, Results, Retrieve};
use crate::schema::{EntityId, NodeId, Schema, SignalIdx, Timestamp};
use crate::wal::{Durability, RecoveryReport};

/// Ops a bulk write applies at a time: large enough for the batch path's prefetching to
/// pay, small enough that a call of millions of events neither holds them all in memory
/// at once nor leaves that peak allocated behind.
pub const BULK_CHUNK: usize = 1 << 12;

/// Ops a bulk write applies at a time when it may use several threads: the fewest the
/// ledger spreads over threads. Each of them becomes an event of about 100 bytes, built,
/// logged and applied chunk by chunk, which larger chunks would push out of the cache.
pub const PARALLEL_BULK_CHUNK: usize = crate::ledger::PARALLEL_MIN_EVENTS;

/// The same for an in-memory database's bulk write, which builds no events
/// (`runtime/unlogged.rs`). Each chunk hands work to the process's helper threads three
/// times (slot lookups, sorting into lanes, the partitioned apply) and waits for them, so
/// larger chunks wait less often: a 1M-event load took 19 ms in 256K-op chunks against
/// 23 ms in 64K ones. A chunk's scratch is about 28 bytes an op (7 MiB: a slot and a sorted
/// 24-byte event each), freed after it.
/// On one thread chunks stay at [`BULK_CHUNK`]: 32K-op chunks applied about a quarter
/// slower than 4K ones there.
pub const PARALLEL_COLUMN_CHUNK: usize = 1 << 18;

/// How long a `Replicated(k)` write waits for its acknowledgements unless the builder says
/// otherwise: long enough to ride out a retransmission or two, short enough that a caller
/// hears of a partition while it can still act.
pub const DEFAULT_REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle to an open database; clones share it. It is `Send + Sync`.
#[derive(Clone, Debug)]
pub struct TidalDb {
    pub(super) shared: Arc<Shared>,
}

impl TidalDb {
    pub fn builder() -> TidalDbBuilder {
        TidalDbBuilder::default()
    }

    pub(crate) fn open_with(mut b: TidalDbBuilder, schema: Arc<Schema>) -> Result<TidalDb> {
        // Checked before the directory is touched, so a refused open leaves nothing behind.
        let network = match b.transport.take() {
            Some(slot) => Some((slot, b.driver_runtime()?)),
            None => None,
        };
        let policy = LogPolicy {
            wal: b.wal,
            durability: b.durability,
            snapshot_every: b.snapshot_every.unwrap_or(DEFAULT_SNAPSHOT_EVERY),
            ingest_threads: b.node.ingest_threads,
        };
        let log = match &b.data_dir {
            None => open_log(&schema, None, &policy, None)?,
            Some(dir) => {
                let lock = DirLock::acquire(dir)?;
                let stored = check_schema(dir, &schema)?;
                let log = open_log(&schema, Some(&default_wal_dir(dir)), &policy, Some(lock))?;
                // Only once the log accepted the schema, so a refused one is not recorded.
                if stored == StoredSchema::Missing {
                    record_schema(dir, &schema)?;
                }
                tracing::info!(
                    dir = %dir.display(),
                    snapshot_lsn = log.report.snapshot_lsn,
                    replayed = log.report.events_replayed,
                    torn_bytes = log.report.torn_bytes_truncated,
                    "opened tidaldb"
                );
                log
            }
        };
        let restarting = log.is_restart();
        let mut node = Node::new(b.node.clone(), log.ledger, log.clock);
        if restarting {
            let state = log.hard_state.clone();
            let mut out = Outputs::default();
            if network.is_some() {
                // As a restarted simulated replica does: a follower in its last term,
                // with its last membership.
                node.handle(Timestamp::now(), Input::Rejoin(state), &mut out);
            } else if state.is_some_and(|s| s.stopped_serving) {
                // A lone database has no group to rejoin, but still refuses writes.
                let stop = Input::Control(ControlCommand::StopServing);
                node.handle(Timestamp::now(), stop, &mut out);
            }
        }
        let (disk, recovery) = (log.disk, log.report);
        // After the default tenant's log, which holds the directory lock.
        let tenants = TenantSet::open(
            schema.clone(),
            TenantEnv {
                data_dir: b.data_dir.clone(),
                policy,
                node: b.node.clone(),
            },
        )?;
        let net = network
            .as_ref()
            .map(|(slot, _)| Net(slot.transport.clone()));
        let mut state = State::new(node, disk, net);
        state.reports = b.reports.clone();
        let shared = Arc::new(Shared {
            tenants,
            state: Mutex::new(state),
            schema,
            recovery,
            stop: Arc::new(Notify::new()),
            replication_timeout: b.replication_timeout.unwrap_or(DEFAULT_REPLICATION_TIMEOUT),
        });
        if let Durability::Batched { max_delay, .. } = b.durability
            && b.data_dir.is_some()
        {
            spawn_flusher(Arc::downgrade(&shared), max_delay);
        }
        if let Some((slot, runtime)) = network {
            spawn_driver(&runtime, &shared, slot.inbox, b.node.heartbeat_interval);
        }
        Ok(TidalDb { shared })
    }

    /// Whether writes reach nothing but this process's memory: no log, no peer, no control
    /// plane and no quota. No thread of the database's own then takes its lock, so a
    /// caller that holds a lock of its own around a write waits for no one else.
    pub fn writes_stay_in_memory(&self) -> Result<bool> {
        Ok(self.lock_staged()?.writes_stay_in_memory())
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.shared.schema
    }

    /// What the last open recovered from disk.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared.recovery
    }

    /// The default tenant's state, with every staged write applied: how every call but a
    /// staged write reaches it, so none can see the database without them.
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let mut st = self.lock_staged()?;
        st.apply_staged()?;
        Ok(st)
    }

    /// The default tenant's state while the database is open, staged writes still queued:
    /// only for staging another.
    pub(super) fn lock_staged(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.shared.state.lock().map_err(|_| poisoned())?;
        if_open(st)
    }

    /// Syncs every write of every tenant, releases the data directory (another process may
    /// open it as soon as this returns), and makes every later call on any clone fail with
    /// `Unavailable`. Dropping the last handle closes too, but only `close` reports a
    /// failed final sync. If a write failed earlier, `close` returns that failure: under
    /// `Batched` it may be the only report of writes that were acknowledged but never
    /// reached the disk.
    pub fn close(&self) -> Result<()> {
        let mut st = self.lock()?;
        // The other tenants first: the default tenant's log holds the directory lock.
        let tenants_synced = self.shared.tenants.close();
        // After a failure this reports it (a batched write may have been lost), and syncs
        // nothing more.
        let synced = st.commit();
        st.disk = None;
        st.closed = true;
        // Pending `Replicated(k)` callers hear `Unavailable` at once rather than time out.
        st.waiters.clear();
        st.net = None;
        self.shared.stop.notify_one();
        synced.and(tenants_synced)
    }

    pub(super) fn resolve(&self, name: &str) -> Result<SignalIdx> {
        self.shared.schema.resolve(name)
    }

    /// Records many signals of one kind in one call: validated as a whole, then written as
    /// one group. If any weight or timestamp is invalid, nothing is written.
    pub fn signal_batch(
        &self,
        name: &str,
        entities: &[EntityId],
        weights: &[f64],
        ts: Option<&[Timestamp]>,
    ) -> Result<usize> {
        self.signal_columns(name, entities, weights, ts.map(Times::Stamps))
    }

    /// [`Self::signal_batch`] with the times in Unix seconds, as Python and numpy hold
    /// them: an in-memory database reads them as they are, with no column of timestamps
    /// built first. A time out of range refuses the whole write with
    /// [`TidalError::TimestampOutOfRange`].
    pub fn signal_batch_secs(
        &self,
        name: &str,
        entities: &[EntityId],
        weights: &[f64],
        ts_secs: Option<&[f64]>,
    ) -> Result<usize> {
        self.signal_columns(name, entities, weights, ts_secs.map(Times::Seconds))
    }

    pub(super) fn signal_columns(
        &self,
        name: &str,
        entities: &[EntityId],
        weights: &[f64],
        ts: Option<Times<'_>>,
    ) -> Result<usize> {
        let signal = self.resolve(name)?;
        check_batch_lengths(entities.len(), weights.len(), ts.map(|t| t.len()))?;
        let mut st = self.lock()?;
        if st.writes_stay_in_memory() {
            let mut columns = SignalColumns {
                signal,
                entities,
                weights,
                ts,
            };
            st.write_unlogged(signal, &mut columns)?;
            return Ok(entities.len());
        }
        // Each op is logged with its timestamp: times in seconds are converted first.
        let stamps: Option<Cow<'_, [Timestamp]>> = match ts {
            None => None,
            Some(Times::Stamps(t)) => Some(Cow::Borrowed(t)),
            Some(Times::Seconds(secs)) => {
                let mut t = vec![Timestamp::EPOCH; secs.len()];
                Timestamp::fill_from_secs_f64(&mut t, secs).map_err(|(_, e)| e)?;
                Some(Cow::Owned(t))
            }
        };
        let op = |i: usize| ClientOp::Signal {
            signal,
            entity: entities[i],
            weight: weights[i],
            ts: stamps.as_ref().map(|t| t[i]),
        };
        Self::write_streamed(st, entities.len(), op)?;
        Ok(entities.len())
    }

    /// Writes `n` ops, `op(i)` each, whole or not at all, in bounded memory: every op is
    /// validated first, then they are applied [`BULK_CHUNK`] at a time ([`PARALLEL_BULK_CHUNK`]
    /// when the ledger will spread the chunk over several threads) and committed as
    /// one group (so a crash keeps all of them or none). Applying a chunk cannot fail once
    /// its ops are admitted, because applying checks nothing admission has not. A tenant
    /// with quotas is written as one request instead, so that the quota judges the call
    /// as a whole.
    ///
    /// An [`interrupt`] stops it between two chunks: stopped while validating, it writes
    /// nothing; while applying, it keeps (and commits) the chunks applied, and its error
    /// says how many events they held. That is the one way to write part of a batch.
    fn write_streamed(
        mut st: MutexGuard<'_, State>,
        n: usize,
        op: impl Fn(usize) -> ClientOp,
    ) -> Result<()> {
        if n <= BULK_CHUNK || st.node.config().quotas.is_some() {
            let ops: Vec<ClientOp> = (0..n).map(&op).collect();
            return st.submit_local(&ops, None).map(|_| ());
        }
        st.check_writable()?;
        let now = Timestamp::now();
        for i in 0..n {
            if i % BULK_CHUNK == 0 {
                interrupt::checkpoint()?;
            }
            st.node.check_op(now, op(i))?;
        }
        let mut ops = Vec::with_capacity(PARALLEL_BULK_CHUNK);
        let mut outcome = Ok(());
        let mut start = 0;
        while start < n {
            if let Err(stopped) = interrupt::checkpoint() {
                outcome = Err(interrupt::after_writing(stopped, start));
                break;
            }
            let chunk = st.next_bulk_chunk(PARALLEL_BULK_CHUNK);
            ops.clear();
            ops.extend((start..n.min(start + chunk)).map(&op));
            start += ops.len();
            let (_, applied) = st.submit_unsettled(&ops, WriteConcern::Local, None);
            debug_assert!(
                !matches!(applied, Ok(Some(Err(ref e))) if e.kind() != crate::error::ErrorKind::Unavailable),
                "a chunk of admitted ops was refused: {applied:?}"
            );
            outcome = match applied {
                Ok(Some(Ok(_))) => Ok(()),
                Ok(Some(Err(e))) | Err(e) => Err(e),
                Ok(None) => Err(held_back()),
            };
            if outcome.is_err() {
                break;
            }
        }
        // Commit what was applied even after a failure: memory must not run ahead of the log.
        let settled = st.settle();
        outcome.and(settled)
    }

    /// Records one signal under a write concern. `Local` returns as [`signal`](Self::signal)
    /// does; `Replicated(k)` returns once `k` other replicas hold the event durably, so it
    /// survives the loss of this one.
    ///
    /// A `Replicated(k)` write waits at most the builder's `replication_timeout`
    /// ([`DEFAULT_REPLICATION_TIMEOUT`] unless set) and must be awaited on a tokio runtime.
    /// On timeout it fails with `Timeout`, but the write is *not* undone: it stays
    /// applied here and keeps replicating, so a blind retry would count it twice.
    pub async fn signal_with(
        &self,
        name: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
        concern: WriteConcern,
    ) -> Result<EventId> {
        let signal = self.resolve(name)?;
        let op = ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        };
        self.write_with(&[op], concern)
            .await
            .map(|ack| ack.event_id())
    }

    /// Writes `ops` as one request (whole or not at all) under a write concern; see
    /// [`signal_with`](Self::signal_with) for what `Replicated(k)` waits for.
    pub async fn write_with(&self, ops: &[ClientOp], concern: WriteConcern) -> Result<WriteAck> {
        self.write_request(ops, concern, None).await
    }

    /// [`write_with`](Self::write_with) with an idempotency tag: a retry with the same tag
    /// is acknowledged as the original and applied once.
    pub async fn write_request(
        &self,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        let k = match concern {
            WriteConcern::Replicated(k) if k > 0 => k,
            _ => return self.write_local(ops, tag),
        };
        // Refused before anything is written: waiting needs tokio's timer.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TidalError::InvalidArgument {
                name: "write_concern",
                reason: "a Replicated(k) write is awaited on a tokio runtime; call it from one"
                    .into(),
            });
        }
        let submitted = self.lock()?.submit(ops, concern, tag)?;
        let (id, rx) = match submitted {
            Submitted::Done(ack) => return Ok(ack),
            Submitted::Waiting(id, rx) => (id, rx),
        };
        let _forget = ForgetWaiter {
            shared: &self.shared,
            id,
        };
        let timeout = self.shared.replication_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(TidalError::Unavailable(format!(
                "the database closed before {k} replicas acknowledged the write; it is \
                 applied here, and durable as the durability policy says"
            ))),
            Err(_) => Err(TidalError::Timeout(format!(
                "write_concern={k}: fewer than {k} other replicas acknowledged the write \
                 within {} s (unreachable nodes: {:?}); it is applied here and keeps \
                 replicating, so do not retry it blindly: that would count it twice",
                timeout.as_secs_f64(),
                self.unreachable_peers()
                    .unwrap_or_default()
                    .iter()
                    .map(|n| n.0)
                    .collect::<Vec<_>>()
            ))),
        }
    }

    fn write_local(&self, ops: &[ClientOp], tag: Option<ClientTag>) -> Result<WriteAck> {
        self.lock()?.submit_local(ops, tag)
    }

    pub fn is_hidden(&self, user: EntityId, item: EntityId) -> Result<bool> {
        Ok(self.lock()?.node.ledger().is_hidden(user, item))
    }

    /// Scores the candidates, removes the user's hidden items and returns the top `limit`.
    ///
    /// The answer always comes from this replica, which holds its whole shard, so
    /// `shards_reached` is this node's shard. When some replica of the shard has not been
    /// heard within `peer_timeout`, this one may lack writes made there: `degraded` is set
    /// and the answer stands for what reached this replica. Every peer of a node is a
    /// replica of the same shard, so no *shard* is ever unreachable here and
    /// `shards_unreachable` stays empty; which replicas were silent is in
    /// [`unreachable_peers`](Self::unreachable_peers).
    pub fn retrieve(&self, q: &Retrieve) -> Result<Results> {
        let started = Instant::now();
        let mut results = {
            let st = self.lock()?;
            let now = Timestamp::now();
            let mut r = query::execute(st.node.ledger(), q, now, st.node.config().shard)?;
            r.stats.replicas_unreachable = st.node.unreachable_replicas(now);
            r.stats.degraded = !r.stats.replicas_unreachable.is_empty();
            r
        };
        results.stats.elapsed = started.elapsed();
        Ok(results)
    }

    /// Peers (replicas of this shard) not heard from within `peer_timeout`: queries here
    /// may miss their latest writes, and `Replicated(k)` writes may wait on them.
    pub fn unreachable_peers(&self) -> Result<Vec<NodeId>> {
        Ok(self.lock()?.node.unreachable_peers(Timestamp::now()))
    }

    /// Syncs every acknowledged write of every tenant to disk now (a no-op when
    /// ephemeral).
    pub fn flush(&self) -> Result<()> {
        let synced = self.lock()?.commit();
        synced.and(self.shared.tenants.flush())
    }

    /// Writes a snapshot of the default tenant's log now, so that the next open replays
    /// nothing before it. (Other tenants snapshot automatically, every `snapshot_every`.)
    /// Returns the log position it covers; 0 when ephemeral.
    pub fn snapshot(&self) -> Result<u64> {
        let mut st = self.lock()?;
        st.check_writable()?;
        st.snapshot()
    }

    /// Events applied in total, summed over origins.
    pub fn events_applied(&self) -> Result<u64> {
        Ok(self.lock()?.node.ledger().version_vector().sum())
    }

    /// The default tenant's version vector: the highest seq applied from each origin.
    pub fn version_vector(&self) -> Result<crate::event::VersionVector> {
        Ok(self.lock()?.node.ledger().version_vector().clone())
    }

    /// Events in the default tenant's in-memory retained log, and the most it may hold.
    pub fn retained_log_len(&self) -> Result<(usize, usize)> {
        let st = self.lock()?;
        let log = st.node.retained_log();
        Ok((log.len(), log.bound()))
    }
}

/// A batch's columns must line up: one weight (and, when given, one timestamp) per entity.
pub(crate) fn check_batch_lengths(
    entities: usize,
    weights: usize,
    ts: Option<usize>,
) -> Result<()> {
    if weights != entities || ts.is_some_and(|t| t != entities) {
        return Err(TidalError::InvalidArgument {
            name: "weights",
            reason: format!(
                "entities, weights and ts must have the same length (got {entities}, {weights}, {})",
                ts.unwrap_or(entities)
            ),
        });
    }
    Ok(())
}

/// Removes a `Replicated(k)` caller's waiter when it stops waiting (answered, timed out or
/// cancelled), so abandoned waits do not pile up.
struct ForgetWaiter<'a> {
    shared: &'a Shared,
    id: RequestId,
}

impl Drop for ForgetWaiter<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock()
            && st.waiters.remove(&self.id).is_some()
        {
            // Still waiting: the caller gave up, so the node may drop the pending reply.
            st.node.handle(
                Timestamp::now(),
                Input::Cancel(self.id),
                &mut Outputs::default(),
            );
        }
    }
}

pub(super) fn poisoned() -> TidalError {
    TidalError::Unavailable("a thread panicked while holding the database; reopen it".into())
}

/// The state behind `st`, unless the database was closed.
pub(super) fn if_open(st: MutexGuard<'_, State>) -> Result<MutexGuard<'_, State>> {
    if st.closed {
        return Err(TidalError::Unavailable("the database is closed".into()));
    }
    Ok(st)
}
