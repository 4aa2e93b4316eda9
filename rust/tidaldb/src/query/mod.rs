//! Retrieval: score candidates, drop hidden items, keep the top k.

mod results;
mod retrieve;

pub use results::{QueryStats, ReplicaAddr, Results, ScoredItem};
pub use retrieve::{Retrieve, RetrieveBuilder};

use std::cmp::Ordering;

use crate::error::{Result, TidalError};
use crate::ledger::Ledger;
use crate::schema::{EntityId, ShardId, SignalIdx, Timestamp};

/// Best first: higher score, then lower item id.
fn rank(a: &ScoredItem, b: &ScoredItem) -> Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
}

/// Runs a retrieval against one ledger. `now` is the driver's clock, used when the query
/// does not name a time. Elapsed time is left for the driver to fill in.
pub fn execute(ledger: &Ledger, q: &Retrieve, now: Timestamp, shard: ShardId) -> Result<Results> {
    let at = q.at.unwrap_or(now);
    let terms: Vec<(SignalIdx, f64)> = q
        .rank_by
        .iter()
        .map(|(name, c)| Ok((ledger.schema().resolve(name)?, *c)))
        .collect::<Result<_>>()?;
    let hidden_for_user = q.user.and_then(|u| ledger.hidden().for_user(u));
    let is_hidden = |item: &EntityId| {
        hidden_for_user
            .and_then(|regs| regs.get(item))
            .is_some_and(|r| r.is_hidden())
    };
    let kept: Vec<EntityId> = q
        .candidates
        .iter()
        .copied()
        .filter(|c| !is_hidden(c))
        .collect();
    let hidden_filtered = q.candidates.len() - kept.len();

    // One pass per ranking term over all kept candidates, so each pass can prefetch.
    let mut totals = vec![0.0f64; kept.len()];
    // A zero coefficient contributes nothing, so its signal is not read (nor can it overflow).
    for &(signal, coefficient) in terms.iter().filter(|(_, c)| *c != 0.0) {
        ledger.decay_scores_with(signal, &kept, at, |i, score| {
            totals[i] += coefficient * score
        })?;
    }
    if let Some(i) = totals.iter().position(|t| !t.is_finite()) {
        return Err(TidalError::ReadOverflow {
            what: format!("the ranking score of item {}", kept[i]),
            at_ns: at.as_nanos(),
        });
    }
    let mut scored: Vec<ScoredItem> = kept
        .into_iter()
        .zip(totals)
        .map(|(item, score)| ScoredItem { item, score })
        .collect();
    let after_filter = scored.len();
    top_k(&mut scored, q.limit);
    Ok(Results {
        stats: QueryStats {
            candidates_considered: q.candidates.len(),
            candidates_after_filter: after_filter,
            hidden_filtered,
            returned: scored.len(),
            elapsed: Default::default(),
            degraded: false,
            shards_reached: vec![shard],
            shards_unreachable: Vec::new(),
            replicas_unreachable: Vec::new(),
        },
        items: scored,
    })
}

/// Keeps the best `k`, best first: a linear-time selection, then a sort of the k survivors.
pub fn top_k(items: &mut Vec<ScoredItem>, k: usize) {
    if k == 0 {
        items.clear();
    } else if items.len() > k {
        items.select_nth_unstable_by(k - 1, rank);
        items.truncate(k);
    }
    items.sort_unstable_by(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EntityId;

    #[test]
    fn top_k_matches_a_full_sort() {
        let all: Vec<ScoredItem> = (0..1000u64)
            .map(|i| ScoredItem {
                item: EntityId(i),
                score: ((i * 7919) % 101) as f64,
            })
            .collect();
        for k in [1, 7, 50, 999, 1000, 5000] {
            let mut fast = all.clone();
            top_k(&mut fast, k);
            let mut slow = all.clone();
            slow.sort_by(rank);
            slow.truncate(k);
            assert_eq!(fast, slow, "k = {k}");
        }
    }
}
