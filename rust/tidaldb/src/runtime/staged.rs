//! Single writes to a lone in-memory database, admitted at once and applied in batches.
//!
//! A write on its own pays the whole request path (the node's step, stamping, the
//! ledger's cache misses with nothing to overlap them) for one event. A lone in-memory
//! database loses nothing by applying it a little later: no peer waits for it, no log
//! must hold it before it is acknowledged, no quota judges it. So such a write is checked
//! when it is made (admission's checks, at the time of the call; its timestamp and event
//! id are fixed then) and queued. The queue goes through the batch path, prefetching and
//! all, when it fills, and before anything else touches the database: every other call
//! takes the state through [`TidalDb::lock`](super::TidalDb), which applies the queue
//! first. No read, write, flush or close can observe the database without the staged
//! writes, so the deferral cannot be seen, only timed.

use super::db::BULK_CHUNK;
use super::state::{State, Submitted};
use crate::error::{Result, TidalError};
use crate::event::EventId;
use crate::node::{ClientOp, WriteConcern};
use crate::schema::Timestamp;

/// The most writes staged at once: one bulk chunk, so that applying them is one batch of
/// the size the batch path is tuned for.
pub const STAGED_MAX: usize = BULK_CHUNK;

/// Admitted writes not yet applied, in the order they were acknowledged.
#[derive(Debug, Default)]
pub(super) struct StagedWrites {
    ops: Vec<ClientOp>,
}

/// The op with its time fixed: a write that names none happened when it was made, not
/// when the queue is applied.
fn dated(op: ClientOp, now: Timestamp) -> ClientOp {
    match op {
        ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        } => ClientOp::Signal {
            signal,
            entity,
            weight,
            ts: Some(ts.unwrap_or(now)),
        },
        ClientOp::Hide { user, item, ts } => ClientOp::Hide {
            user,
            item,
            ts: Some(ts.unwrap_or(now)),
        },
        ClientOp::Unhide { user, item, ts } => ClientOp::Unhide {
            user,
            item,
            ts: Some(ts.unwrap_or(now)),
        },
    }
}

impl State {
    /// Admits `op` now and queues it; returns the id it will have. Refused, it queues
    /// nothing.
    pub fn stage(&mut self, op: ClientOp) -> Result<EventId> {
        debug_assert!(
            self.writes_stay_in_memory(),
            "a write staged where it must not be"
        );
        self.check_writable()?;
        let now = Timestamp::now();
        self.node.check_op(now, op)?;
        let origin = self.node.id();
        // Applied in order right after the events already applied, nothing between them:
        // every other write takes the lock through `TidalDb::lock`, which applies the
        // queue first.
        let id = EventId {
            origin,
            seq: self.node.ledger().version_vector().get(origin) + 1 + self.staged.ops.len() as u64,
        };
        self.staged.ops.push(dated(op, now));
        if self.staged.ops.len() >= STAGED_MAX {
            self.apply_staged()?;
        }
        Ok(id)
    }

    /// Applies the staged writes as one batch. Each was admitted when it was made, and
    /// admission later (with the clock further on) only accepts more, so the batch cannot
    /// be refused; if it were, the writes were acknowledged and are lost, and the database
    /// says so from then on, as after a failed log write.
    pub fn apply_staged(&mut self) -> Result<()> {
        if self.staged.ops.is_empty() {
            return Ok(());
        }
        let mut ops = std::mem::take(&mut self.staged.ops);
        let origin = self.node.id();
        let expected = self.node.ledger().version_vector().get(origin) + ops.len() as u64;
        let submitted = self.submit(&ops, WriteConcern::Local, None);
        ops.clear();
        self.staged.ops = ops;
        match submitted {
            Ok(Submitted::Done(_)) => {
                debug_assert_eq!(
                    self.node.ledger().version_vector().get(origin),
                    expected,
                    "the staged writes got other ids than they were acknowledged with"
                );
                Ok(())
            }
            Ok(Submitted::Waiting(..)) => Err(self.lost_staged("the node held back its reply")),
            Err(e) => Err(self.lost_staged(&e.to_string())),
        }
    }

    #[cold]
    fn lost_staged(&mut self, why: &str) -> TidalError {
        debug_assert!(false, "staged writes were refused: {why}");
        let why = format!("acknowledged writes could not be applied ({why})");
        tracing::error!("{why}");
        self.failed = Some(why.clone());
        TidalError::Unavailable(why)
    }
}
