//! `TidalDb`: the embedded database. It drives one sans-IO [`Node`] with the real clock,
//! and persists what the node applies to the WAL according to the durability policy.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::builder::{DEFAULT_SNAPSHOT_EVERY, TidalDbBuilder};
use super::layout::{DirLock, check_or_record_schema, default_wal_dir};
use crate::error::{Result, TidalError};
use crate::event::{Event, EventId};
use crate::ledger::{Ledger, WindowReading};
use crate::node::{ClientOp, Input, Node, Outputs, WriteAck, WriteConcern, WriteRequest};
use crate::query::{self, Results, Retrieve};
use crate::schema::{EntityId, Schema, ShardId, SignalIdx, Timestamp, Window};
use crate::wal::{Durability, RecoveryReport, Wal};

/// The durable half of an open database.
#[derive(Debug)]
struct Disk {
    wal: Wal,
    durability: Durability,
    /// When the oldest uncommitted event was appended (Batched only).
    oldest_pending: Option<Instant>,
    since_snapshot: u64,
    snapshot_every: u64,
    _lock: DirLock,
}

#[derive(Debug)]
struct State {
    node: Node,
    /// The node's output buffers, reused from call to call.
    out: Outputs,
    disk: Option<Disk>,
    /// Set when a WAL write failed: memory may now be ahead of disk, so no further write
    /// may be acknowledged until the database is reopened and recovers from its log.
    failed: Option<String>,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    schema: Arc<Schema>,
    recovery: RecoveryReport,
}

/// A handle to an open database; clones share it. It is `Send + Sync`.
#[derive(Clone, Debug)]
pub struct TidalDb {
    shared: Arc<Shared>,
}

impl TidalDb {
    pub fn builder() -> TidalDbBuilder {
        TidalDbBuilder::default()
    }

    pub(crate) fn open_with(b: TidalDbBuilder, schema: Arc<Schema>) -> Result<TidalDb> {
        let (node, disk, recovery) = match &b.data_dir {
            None => (
                Node::new(
                    b.node.clone(),
                    Ledger::new(schema.clone()),
                    Default::default(),
                ),
                None,
                RecoveryReport::default(),
            ),
            Some(dir) => {
                let lock = DirLock::acquire(dir)?;
                check_or_record_schema(dir, &schema)?;
                let (wal, ledger, clock, report) =
                    Wal::open(&default_wal_dir(dir), b.wal, &schema, |ledger, events| {
                        ledger.apply_batch(events)
                    })?;
                tracing::info!(
                    dir = %dir.display(),
                    snapshot_lsn = report.snapshot_lsn,
                    replayed = report.events_replayed,
                    torn_bytes = report.torn_bytes_truncated,
                    "opened tidaldb"
                );
                let disk = Disk {
                    wal,
                    durability: b.durability,
                    oldest_pending: None,
                    since_snapshot: report.events_replayed,
                    snapshot_every: b.snapshot_every.unwrap_or(DEFAULT_SNAPSHOT_EVERY),
                    _lock: lock,
                };
                (Node::new(b.node.clone(), ledger, clock), Some(disk), report)
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                node,
                out: Outputs::default(),
                disk,
                failed: None,
                closed: false,
            }),
            schema,
            recovery,
        });
        if let Durability::Batched { max_delay, .. } = b.durability
            && b.data_dir.is_some()
        {
            spawn_flusher(Arc::downgrade(&shared), max_delay);
        }
        Ok(TidalDb { shared })
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.shared.schema
    }

    /// What the last open recovered from disk.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared.recovery
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.shared.state.lock().map_err(|_| {
            TidalError::Unavailable(
                "a thread panicked while holding the database; reopen it".into(),
            )
        })?;
        if st.closed {
            return Err(TidalError::Unavailable("the database is closed".into()));
        }
        Ok(st)
    }

    /// Syncs every write, releases the data directory (another process may open it as soon
    /// as this returns), and makes every later call on any clone fail with `Unavailable`.
    /// Dropping the last handle closes too, but only `close` reports a failed final sync.
    /// If a write failed earlier, `close` returns that failure: under `Batched` it may be
    /// the only report of writes that were acknowledged but never reached the disk.
    pub fn close(&self) -> Result<()> {
        let mut st = self.lock()?;
        // After a failure this reports it (a batched write may have been lost), and syncs
        // nothing more.
        let synced = st.commit();
        st.disk = None;
        st.closed = true;
        synced
    }

    fn resolve(&self, name: &str) -> Result<SignalIdx> {
        self.shared.schema.resolve(name)
    }

    /// Records one signal. `ts = None` means now. Returns the event's id once it is
    /// applied and, under `Durability::Immediate`, synced.
    pub fn signal(
        &self,
        name: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
    ) -> Result<EventId> {
        let signal = self.resolve(name)?;
        self.write(ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        })
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
        let signal = self.resolve(name)?;
        if weights.len() != entities.len() || ts.is_some_and(|t| t.len() != entities.len()) {
            return Err(TidalError::InvalidArgument {
                name: "weights",
                reason: format!(
                    "entities, weights and ts must have the same length (got {}, {}, {})",
                    entities.len(),
                    weights.len(),
                    ts.map_or(entities.len(), <[Timestamp]>::len)
                ),
            });
        }
        let ops: Vec<ClientOp> = (0..entities.len())
            .map(|i| ClientOp::Signal {
                signal,
                entity: entities[i],
                weight: weights[i],
                ts: ts.map(|t| t[i]),
            })
            .collect();
        self.write_many(&ops)?;
        Ok(ops.len())
    }

    pub fn hide_item(&self, user: EntityId, item: EntityId) -> Result<EventId> {
        self.write(ClientOp::Hide { user, item })
    }

    pub fn unhide_item(&self, user: EntityId, item: EntityId) -> Result<EventId> {
        self.write(ClientOp::Unhide { user, item })
    }

    fn write(&self, op: ClientOp) -> Result<EventId> {
        Ok(self.lock()?.submit(&[op])?.event_id())
    }

    fn write_many(&self, ops: &[ClientOp]) -> Result<()> {
        self.lock()?.submit(ops).map(|_| ())
    }

    /// The decayed score of `entity` on `signal` now.
    pub fn read_decay_score(&self, entity: EntityId, signal: &str) -> Result<f64> {
        self.read_decay_score_at(entity, signal, Timestamp::now())
    }

    pub fn read_decay_score_at(
        &self,
        entity: EntityId,
        signal: &str,
        at: Timestamp,
    ) -> Result<f64> {
        let signal = self.resolve(signal)?;
        self.lock()?.node.ledger().decay_score(signal, entity, at)
    }

    /// Scores of many entities at once into `out` (same length as `entities`).
    pub fn read_decay_scores_at(
        &self,
        signal: &str,
        entities: &[EntityId],
        at: Timestamp,
        out: &mut [f64],
    ) -> Result<()> {
        let signal = self.resolve(signal)?;
        if out.len() != entities.len() {
            return Err(TidalError::InvalidArgument {
                name: "out",
                reason: format!("has {} slots for {} entities", out.len(), entities.len()),
            });
        }
        let st = self.lock()?;
        st.node
            .ledger()
            .decay_scores_with(signal, entities, at, |i, score| out[i] = score)
    }

    pub fn read_windowed_count(
        &self,
        entity: EntityId,
        signal: &str,
        window: Window,
    ) -> Result<u64> {
        Ok(self
            .read_window_at(entity, signal, window, Timestamp::now())?
            .count)
    }

    /// Count and weight sum of `signal` on `entity` in `window`, as of `at`.
    pub fn read_window_at(
        &self,
        entity: EntityId,
        signal: &str,
        window: Window,
        at: Timestamp,
    ) -> Result<WindowReading> {
        let signal = self.resolve(signal)?;
        self.lock()?
            .node
            .ledger()
            .window(signal, entity, window, at)
    }

    /// Weight per hour over the signal's shortest window, now.
    pub fn read_velocity(&self, entity: EntityId, signal: &str) -> Result<f64> {
        self.read_velocity_at(entity, signal, Timestamp::now())
    }

    pub fn read_velocity_at(&self, entity: EntityId, signal: &str, at: Timestamp) -> Result<f64> {
        let signal = self.resolve(signal)?;
        self.lock()?.node.ledger().velocity(signal, entity, at)
    }

    pub fn is_hidden(&self, user: EntityId, item: EntityId) -> Result<bool> {
        Ok(self.lock()?.node.ledger().is_hidden(user, item))
    }

    /// Scores the candidates, removes the user's hidden items and returns the top `limit`.
    pub fn retrieve(&self, q: &Retrieve) -> Result<Results> {
        let started = Instant::now();
        let mut results = {
            let st = self.lock()?;
            query::execute(st.node.ledger(), q, Timestamp::now(), ShardId(0))?
        };
        results.stats.elapsed = started.elapsed();
        Ok(results)
    }

    /// Syncs every acknowledged write to disk now (a no-op when ephemeral).
    pub fn flush(&self) -> Result<()> {
        self.lock()?.commit()
    }

    /// Writes a snapshot now, so that the next open replays nothing before it.
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
}

impl State {
    /// Runs one client write through the node, persists what it applied, and returns the
    /// node's reply.
    fn submit(&mut self, ops: &[ClientOp]) -> Result<WriteAck> {
        self.check_writable()?;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let request = WriteRequest {
            id: 0,
            ops,
            concern: WriteConcern::Local,
            tag: None,
        };
        self.node
            .handle(Timestamp::now(), Input::Write(request), &mut out);
        let reply = out.replies.pop().map(|(_, r)| r);
        let persisted = self.persist(&out.persist);
        self.out = out;
        persisted?;
        reply.unwrap_or_else(|| {
            Err(TidalError::Unavailable(
                "the node did not answer a local write".into(),
            ))
        })
    }

    fn check_writable(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(TidalError::Unavailable(format!(
                "an earlier WAL write failed ({why}); reopen the database to recover from its log"
            ))),
            None => Ok(()),
        }
    }

    /// Appends applied events to the log and commits as the durability policy says.
    fn persist(&mut self, events: &[Event]) -> Result<()> {
        let Some(disk) = self.disk.as_mut() else {
            return Ok(());
        };
        for e in events {
            disk.wal.append(e);
        }
        disk.since_snapshot += events.len() as u64;
        let due = match disk.durability {
            Durability::Immediate => true,
            Durability::Batched {
                max_batch,
                max_delay,
            } => {
                let oldest = *disk.oldest_pending.get_or_insert_with(Instant::now);
                disk.wal.uncommitted() >= max_batch || oldest.elapsed() >= max_delay
            }
        };
        if due {
            self.commit()?;
        }
        Ok(())
    }

    /// Syncs the WAL; a failure is recorded, so every later write and commit refuses.
    fn sync_wal(&mut self) -> Result<()> {
        if self.failed.is_some() {
            return self.check_writable();
        }
        let Some(disk) = self.disk.as_mut() else {
            return Ok(());
        };
        if let Err(e) = disk.wal.commit() {
            self.failed = Some(e.to_string());
            tracing::error!(error = %e, "WAL commit failed; refusing further writes");
            return Err(e);
        }
        disk.oldest_pending = None;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.node.handle(Timestamp::now(), Input::Synced, &mut out);
        self.out = out;
        Ok(())
    }

    /// Syncs the WAL, then takes an automatic snapshot if one is due.
    fn commit(&mut self) -> Result<()> {
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

    fn snapshot(&mut self) -> Result<u64> {
        // Pending batched writes go through the one path that records a failure.
        self.sync_wal()?;
        let clock = self.node.clock();
        let Some(disk) = self.disk.as_mut() else {
            return Ok(0);
        };
        let lsn = disk.wal.snapshot(self.node.ledger(), clock)?;
        disk.since_snapshot = 0;
        tracing::debug!(lsn, "snapshot written");
        Ok(lsn)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut()
            && state.failed.is_none()
            && let Err(e) = state.commit()
        {
            tracing::error!(error = %e, "final WAL commit at close failed");
        }
    }
}

/// Commits batched writes once the oldest has waited `max_delay`, even when no further
/// write arrives to trigger it: it sleeps until the oldest pending write falls due, so no
/// write waits more than 1.25 × `max_delay`. Holds only a weak handle, so it ends with the database.
fn spawn_flusher(shared: Weak<Shared>, max_delay: Duration) {
    let floor = Duration::from_micros(100);
    let spawned = thread::Builder::new()
        .name("tidaldb-flusher".into())
        .spawn(move || {
            let mut wait = max_delay;
            loop {
                thread::sleep(wait.max(floor));
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let Ok(mut st) = shared.state.lock() else {
                    return;
                };
                if st.closed {
                    return;
                }
                let oldest = st.disk.as_ref().and_then(|d| d.oldest_pending);
                wait = match oldest {
                    Some(t) if t.elapsed() >= max_delay => {
                        // A failure is recorded in the state and reported to the next caller.
                        let _ = st.commit();
                        max_delay
                    }
                    Some(t) => max_delay.saturating_sub(t.elapsed()),
                    // Idle: look again soon, so a write arriving now waits at most 1.25 x.
                    None => max_delay / 4,
                };
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the flusher thread; batches commit on the next write");
    }
}
