//! Retrieval: score candidates, drop hidden items, keep the top k.

mod distinct;
mod hidden;
mod rank;
mod results;
mod retrieve;
mod slot_bits;
mod top;

pub use results::{QueryStats, ReplicaAddr, Results, ScoredItem};
pub use retrieve::{Retrieve, RetrieveBuilder};
pub use top::top_k;

use distinct::Distinct;
use hidden::Hidden;
use top::TopK;

use crate::error::Result;
use crate::ledger::Ledger;
use crate::schema::{EntityId, ShardId, SignalIdx, Timestamp};

/// Runs a retrieval against one ledger. `now` is the driver's clock, used when the query
/// does not name a time. Elapsed time is left for the driver to fill in.
pub fn execute(ledger: &Ledger, q: &Retrieve, now: Timestamp, shard: ShardId) -> Result<Results> {
    let at = q.at.unwrap_or(now);
    let terms: Vec<(SignalIdx, f64)> = q
        .rank_by
        .iter()
        .map(|(name, c)| Ok((ledger.schema().resolve(name)?, *c)))
        .collect::<Result<_>>()?;
    // A zero coefficient contributes nothing, so its signal is not read (nor can it overflow).
    let terms: Vec<(SignalIdx, f64)> = terms.into_iter().filter(|(_, c)| *c != 0.0).collect();
    let visible = Visible::of(ledger, q, terms.first().map(|t| t.0))?;
    let after_filter = visible.items.len();
    let mut top = TopK::new(q.limit, after_filter);
    rank::rank(ledger, &terms, &visible.items, visible.slots, at, &mut top)?;
    let items = top.into_sorted();
    Ok(Results {
        stats: QueryStats {
            candidates_considered: visible.distinct,
            candidates_after_filter: after_filter,
            hidden_filtered: visible.hidden,
            returned: items.len(),
            elapsed: Default::default(),
            degraded: false,
            shards_reached: vec![shard],
            shards_unreachable: Vec::new(),
            replicas_unreachable: Vec::new(),
        },
        items,
    })
}

/// The distinct candidates the user has not hidden, in the order first given.
struct Visible {
    items: Vec<EntityId>,
    /// The slot of each item in the first ranking signal, when there is one.
    slots: Vec<Option<u32>>,
    /// Distinct candidates, hidden or not.
    distinct: usize,
    /// Distinct candidates the user has hidden.
    hidden: usize,
}

impl Visible {
    /// Resolves every candidate's slot in `ranking` (the first signal read), deduplicates
    /// by it and drops the user's hidden items, in one pass.
    fn of(ledger: &Ledger, q: &Retrieve, ranking: Option<SignalIdx>) -> Result<Self> {
        let candidates = &q.candidates;
        let reader = ranking.map(|s| ledger.signal_ledger(s)).transpose()?;
        let registers = q.user.and_then(|u| ledger.hidden().for_user(u));
        let hidden = Hidden::new(registers, reader, candidates.len());
        let mut distinct = Distinct::new(reader.map_or(0, |r| r.entity_count()), candidates.len());
        let mut visible = Visible {
            items: Vec::with_capacity(candidates.len()),
            slots: Vec::with_capacity(candidates.len()),
            distinct: 0,
            hidden: 0,
        };
        let slots = match reader {
            Some(r) => r.slots_of(candidates),
            None => vec![None; candidates.len()],
        };
        for (&item, &slot) in candidates.iter().zip(&slots) {
            if !distinct.first_time(item, slot) {
                continue;
            }
            visible.distinct += 1;
            if hidden.hides(item, slot) {
                visible.hidden += 1;
            } else {
                visible.items.push(item);
                visible.slots.push(slot);
            }
        }
        Ok(visible)
    }
}
