//! Retrieval: score candidates, drop hidden items, keep the top k.

mod distinct;
mod results;
mod retrieve;

pub use results::{QueryStats, ReplicaAddr, Results, ScoredItem};
pub use retrieve::{Retrieve, RetrieveBuilder};

use std::cmp::Ordering;

use distinct::Distinct;

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
    // A zero coefficient contributes nothing, so its signal is not read (nor can it overflow).
    let scored_terms: Vec<(SignalIdx, f64)> =
        terms.into_iter().filter(|(_, c)| *c != 0.0).collect();
    let visible = Visible::of(ledger, q, scored_terms.first().map(|t| t.0))?;
    let kept = visible.items;

    // One pass per ranking term over all kept candidates, so each pass can prefetch; the
    // first term reuses the slots the candidates were deduplicated by.
    let mut totals = vec![0.0f64; kept.len()];
    for (k, &(signal, coefficient)) in scored_terms.iter().enumerate() {
        let add = |i: usize, score: f64| totals[i] += coefficient * score;
        if k == 0 {
            ledger.decay_scores_at_slots(signal, &kept, &visible.slots, at, add)?;
        } else {
            ledger.decay_scores_with(signal, &kept, at, add)?;
        }
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
            candidates_considered: visible.distinct,
            candidates_after_filter: after_filter,
            hidden_filtered: visible.hidden,
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
        let (slots, slot_count) = match ranking {
            Some(signal) => (
                ledger.slots_of(signal, candidates)?,
                ledger.slot_count(signal)?,
            ),
            None => (vec![None; candidates.len()], 0),
        };
        let hidden_for_user = q
            .user
            .and_then(|u| ledger.hidden().for_user(u))
            .filter(|regs| !regs.is_empty());
        let is_hidden = |item: &EntityId| {
            hidden_for_user
                .and_then(|regs| regs.get(item))
                .is_some_and(|r| r.is_hidden())
        };
        let mut distinct = Distinct::new(slot_count, candidates.len());
        let mut visible = Visible {
            items: Vec::with_capacity(candidates.len()),
            slots: Vec::with_capacity(candidates.len()),
            distinct: 0,
            hidden: 0,
        };
        for (&item, &slot) in candidates.iter().zip(&slots) {
            if !distinct.first_time(item, slot) {
                continue;
            }
            visible.distinct += 1;
            if is_hidden(&item) {
                visible.hidden += 1;
            } else {
                visible.items.push(item);
                visible.slots.push(slot);
            }
        }
        Ok(visible)
    }
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
