//! The background work of an open database: the replication driver task, which feeds the
//! node its peers' messages and its timer, and the batched-durability flusher thread.
//! Both hold only a weak handle, so they end with the database.

use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

use super::state::{Shared, State};
use super::transport::Inbox;
use crate::node::{Input, Message};
use crate::schema::{NodeId, Timestamp};

/// Messages handled per hold of the lock at most, so client calls are not starved while
/// a burst is drained; their appends share one commit.
const MAX_DRAIN: usize = 1024;

/// Spawns the task that drives a replicated database on the current tokio runtime.
pub(super) fn spawn_driver(
    runtime: &tokio::runtime::Handle,
    shared: &Arc<Shared>,
    inbox: Inbox,
    every: Duration,
) {
    runtime.spawn(drive(
        Arc::downgrade(shared),
        shared.stop.clone(),
        inbox,
        every,
    ));
}

/// Waits for a message or the next tick, then hands it, and every message already queued,
/// to the node under the lock. Ends on close, or once the last handle is dropped.
async fn drive(shared: Weak<Shared>, stop: Arc<Notify>, mut inbox: Inbox, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    // After a stall, one tick is enough: the node measures time itself.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut inbox_open = true;
    loop {
        let first = tokio::select! {
            () = stop.notified() => return,
            m = inbox.recv(), if inbox_open => match m {
                Some(m) => Some(m),
                None => {
                    // No sender is left; keep ticking, so heartbeats and repair go on.
                    inbox_open = false;
                    continue;
                }
            },
            _ = ticker.tick() => None,
        };
        match with_open_state(&shared, |st| wake(st, first, &mut inbox)) {
            None => return,
            Some(open) => inbox_open &= open,
        }
    }
}

/// Runs `f` on the state while the database is open; `None` once it is closed or dropped,
/// which ends the background worker that asked.
fn with_open_state<R>(shared: &Weak<Shared>, f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let shared = shared.upgrade()?;
    let mut st = shared.state.lock().ok()?;
    if st.closed {
        return None;
    }
    Some(f(&mut st))
}

/// Runs one wake-up's inputs through the node and commits once for all of them. Returns
/// false when the inbox turned out to be closed.
fn wake(st: &mut State, first: Option<(NodeId, Message)>, inbox: &mut Inbox) -> bool {
    if st.failed.is_some() {
        // Memory may be ahead of the log: stay silent, so that peers count this replica
        // unreachable instead of waiting for acknowledgements it can no longer give.
        return true;
    }
    let now = Timestamp::now();
    let input = match first {
        Some((from, msg)) => Input::Peer { from, msg },
        None => Input::Tick,
    };
    let mut open = true;
    // A failure is recorded in the state and reported to the next client call.
    if st.step(now, input, None).is_ok() {
        for _ in 0..MAX_DRAIN {
            match inbox.try_recv() {
                Ok((from, msg)) => {
                    if st.step(now, Input::Peer { from, msg }, None).is_err() {
                        break;
                    }
                }
                Err(closed) => {
                    open = !closed;
                    break;
                }
            }
        }
    }
    let _ = st.settle();
    open
}

/// Commits batched writes once the oldest has waited `max_delay`, even when no further
/// write arrives to trigger it: it sleeps until the oldest pending write of any tenant
/// falls due, so on an idle machine no write waits much more than 1.25 × `max_delay`.
/// It is a thread like any other: while the process is starved of CPU, or a long call
/// holds a tenant's lock, it cannot sync, and writes wait longer. The bound that holds
/// regardless is on the writer's path (`State::persist`): a write call that ends after an
/// earlier write fell due syncs it first. Its commits feed `Synced`
/// like any other, so the pushes and acks that batched writes were waiting for go out
/// from here.
pub(super) fn spawn_flusher(shared: Weak<Shared>, max_delay: Duration) {
    let floor = Duration::from_micros(100);
    let spawned = thread::Builder::new()
        .name("tidaldb-flusher".into())
        .spawn(move || {
            let mut wait = max_delay;
            loop {
                thread::sleep(wait.max(floor));
                let Some(mut next) = with_open_state(&shared, |st| flush_if_due(st, max_delay))
                else {
                    return;
                };
                // The other tenants, one at a time: each has its own lock and log.
                let tenants = shared.upgrade().and_then(|s| {
                    s.tenants
                        .for_each_open(|st| next = next.min(flush_if_due(st, max_delay)))
                });
                if tenants.is_none() {
                    return;
                }
                wait = next;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the flusher thread; batches commit on the next write");
    }
}

/// Commits the state's batch if its oldest write has waited `max_delay`; returns how long
/// until it should look again.
fn flush_if_due(st: &mut State, max_delay: Duration) -> Duration {
    match st.disk.as_ref().and_then(|d| d.oldest_pending) {
        Some(t) if t.elapsed() >= max_delay => {
            // A failure is recorded in the state and reported to the next caller.
            let _ = st.commit();
            max_delay
        }
        Some(t) => max_delay.saturating_sub(t.elapsed()),
        // Idle: look again soon, so a write arriving now waits at most 1.25 x.
        None => max_delay / 4,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::state::{LogPolicy, State, open_log};
    use crate::node::{ClientOp, Node, NodeConfig, WriteConcern};
    use crate::schema::{DecaySpec, EntityId, EntityKind, Schema, SignalIdx, Timestamp};
    use crate::wal::{Durability, WalConfig};

    /// A lone node over a batched log, with no flusher thread: what the writer's path
    /// does on its own.
    fn batched_state(dir: &std::path::Path, max_delay: Duration) -> State {
        let schema = Arc::new(
            Schema::builder()
                .signal("count", EntityKind::Item, DecaySpec::Permanent)
                .add()
                .build()
                .unwrap(),
        );
        let policy = LogPolicy {
            wal: WalConfig::default(),
            durability: Durability::Batched {
                max_batch: usize::MAX,
                max_delay,
            },
            snapshot_every: 0,
            ingest_threads: 1,
        };
        let log = open_log(&schema, Some(dir), &policy, None).unwrap();
        State::new(
            Node::new(NodeConfig::default(), log.ledger, log.clock),
            log.disk,
            None,
        )
    }

    fn write(st: &mut State) {
        let op = ClientOp::Signal {
            signal: SignalIdx(0),
            entity: EntityId(1),
            weight: 1.0,
            ts: Some(Timestamp::now()),
        };
        st.submit(&[op], WriteConcern::Local, None).unwrap();
    }

    fn unsynced(st: &State) -> usize {
        st.disk.as_ref().map_or(0, |d| d.wal.uncommitted())
    }

    #[test]
    fn a_write_after_max_delay_syncs_its_predecessors_before_it_returns() {
        // The flusher cannot keep max_delay while the process is stalled; this is what
        // holds whatever the scheduling: once a write's max_delay has passed, the next
        // write call does not return before that write is synced.
        let dir = tempfile::tempdir().unwrap();
        let max_delay = Duration::from_millis(20);
        let mut st = batched_state(dir.path(), max_delay);
        write(&mut st);
        let first = Instant::now();
        if first.elapsed() < max_delay {
            // Still within its delay (the usual case): it waits for a sync.
            write(&mut st);
            if first.elapsed() < max_delay {
                assert_eq!(unsynced(&st), 2, "within max_delay, writes are batched");
            }
        }
        std::thread::sleep(max_delay);
        write(&mut st);
        assert_eq!(
            unsynced(&st),
            0,
            "a write after max_delay returns only once its predecessors are synced"
        );
    }
}
