//! Admission: a client's write checked and turned into an event body before it can reach
//! the log. Whatever fails here has changed nothing.

use std::time::Duration;

use crate::error::{Result, TidalError};
use crate::event::{Event, EventBody};
use crate::ledger::{Ledger, validate_weight};
use crate::schema::{EntityId, SignalIdx, Timestamp};

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

/// `claims`: the tenant caps entities, so a signal on an entity this replica holds no
/// event of claims it (see [`EventBody::Signal`]).
pub(super) fn admit(
    ledger: &Ledger,
    max_future_skew: Duration,
    now: Timestamp,
    op: ClientOp,
    claims: bool,
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
                claims_entity: claims && !ledger.holds_entity(entity),
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
pub(super) fn check_not_future(
    max_skew: Duration,
    now: Timestamp,
    ts: Timestamp,
) -> Result<Timestamp> {
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

/// In one request only the first signal on a new entity claims it; returns how many
/// entities the request claims.
pub(super) fn settle_claims(events: &mut [Event]) -> u64 {
    let mut claimed: rustc_hash::FxHashSet<EntityId> = rustc_hash::FxHashSet::default();
    for e in events {
        if let EventBody::Signal {
            entity,
            claims_entity: claims @ true,
            ..
        } = &mut e.body
            && !claimed.insert(*entity)
        {
            *claims = false;
        }
    }
    claimed.len() as u64
}

/// The number of entities one event claims.
pub(super) fn claimed(body: &EventBody) -> u64 {
    u64::from(matches!(
        body,
        EventBody::Signal {
            claims_entity: true,
            ..
        }
    ))
}
