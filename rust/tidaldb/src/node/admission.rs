//! Admission: a client's write checked and turned into an event body before it can reach
//! the log. Whatever fails here has changed nothing.

use std::time::Duration;

use crate::error::{Result, TidalError};
use crate::event::EventBody;
use crate::ledger::{Ledger, validate_weight};
use crate::schema::{EntityId, SignalIdx, Timestamp};
use crate::tenancy::{TenantQuotas, TenantUsage};

/// A write as a client asks for it, before it has an id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClientOp {
    /// `ts = None` stamps the event with the node's current time.
    Signal {
        signal: SignalIdx,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
    },
    /// `ts = None` stamps the hide with the node's current time.
    Hide {
        user: EntityId,
        item: EntityId,
        ts: Option<Timestamp>,
    },
    Unhide {
        user: EntityId,
        item: EntityId,
        ts: Option<Timestamp>,
    },
}

pub(super) fn admit(
    ledger: &Ledger,
    max_future_skew: Duration,
    now: Timestamp,
    op: ClientOp,
) -> Result<EventBody> {
    Ok(match op {
        ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        } => {
            ledger.schema().checked(signal)?;
            EventBody::Signal {
                signal,
                entity,
                weight: validate_weight(weight)?,
                ts: check_not_future(max_future_skew, now, ts.unwrap_or(now))?,
            }
        }
        ClientOp::Hide { user, item, ts } => EventBody::Hide {
            user,
            item,
            ts: check_not_future(max_future_skew, now, ts.unwrap_or(now))?,
        },
        ClientOp::Unhide { user, item, ts } => EventBody::Unhide {
            user,
            item,
            ts: check_not_future(max_future_skew, now, ts.unwrap_or(now))?,
        },
    })
}

/// Scores read before an event grow back exponentially, so an event dated years ahead
/// would make its entity's score overflow; a little skew between machines is fine.
fn check_not_future(max_skew: Duration, now: Timestamp, ts: Timestamp) -> Result<Timestamp> {
    let ahead = ts.as_nanos() - now.as_nanos();
    let max = i64::try_from(max_skew.as_nanos()).unwrap_or(i64::MAX);
    if ahead > max {
        return Err(TidalError::TimestampInFuture {
            ts_ns: ts.as_nanos(),
            ahead_ns: ahead,
            max_skew_ns: max,
        });
    }
    Ok(ts)
}

/// The tenant's quotas for a write of `ops`, all of them already admitted. Runs before
/// anything is stamped, so a refused write leaves no event, no seq and no token spent on
/// a write that a hard cap refuses.
pub(super) fn check_quotas(
    quotas: &TenantQuotas,
    ledger: &Ledger,
    now: Timestamp,
    ops: &[ClientOp],
) -> Result<()> {
    let usage = TenantUsage {
        entities: ledger.distinct_entities(),
        events: ledger.version_vector().sum(),
    };
    // Only near the cap is it worth looking up which entities are new: if every op
    // brought one, would the cap still hold?
    let near_cap = quotas
        .max_entities()
        .is_some_and(|max| usage.entities.saturating_add(ops.len() as u64) > max);
    let new_entities = if near_cap {
        let mut fresh: smallvec::SmallVec<[EntityId; 8]> = smallvec::SmallVec::new();
        for op in ops {
            if let ClientOp::Signal { entity, .. } = op
                && !ledger.holds_entity(*entity)
                && !fresh.contains(entity)
            {
                fresh.push(*entity);
            }
        }
        fresh.len() as u64
    } else {
        0
    };
    quotas.admit(now, usage, ops.len() as u64, new_entities)
}
