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

use top::TopK;

use crate::error::Result;
use crate::ledger::Ledger;
use crate::schema::{ShardId, SignalIdx, Timestamp};

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
    let mut top = TopK::new(q.limit, q.candidates.len());
    let counts = rank::rank(ledger, q, &terms, at, &mut top)?;
    let items = top.into_sorted();
    Ok(Results {
        stats: QueryStats {
            candidates_considered: counts.distinct,
            candidates_after_filter: counts.distinct - counts.hidden,
            hidden_filtered: counts.hidden,
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
