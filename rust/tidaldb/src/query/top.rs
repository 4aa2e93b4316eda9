//! The best k of a stream of scored items, kept as they arrive.
//!
//! Most items of a large candidate list fall below the k-th best seen so far, and one
//! comparison turns each of those away: no vector of every scored candidate is built and
//! then selected from.

use std::cmp::Ordering;

use super::results::ScoredItem;

/// Best first: higher score, then lower item id.
pub fn rank(a: &ScoredItem, b: &ScoredItem) -> Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
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

/// Items offered beyond k before the pool is cut back to the best k: cutting costs a
/// selection over the pool, so it waits until at least this many could be dropped.
const MIN_SLACK: usize = 64;

/// The best `k` items offered so far, under [`rank`]. Items must be distinct: two offers
/// of one item would both be kept.
pub struct TopK {
    k: usize,
    pool: Vec<ScoredItem>,
    /// The pool is cut back to the best k when it reaches this size.
    cut_at: usize,
    /// The k-th best item once k were cut to: nothing ranked after it can enter.
    floor: Option<ScoredItem>,
}

impl TopK {
    /// For the best `k` of at most `offers` items.
    pub fn new(k: usize, offers: usize) -> Self {
        let cut_at = k.saturating_mul(2).max(k.saturating_add(MIN_SLACK));
        TopK {
            k,
            pool: Vec::with_capacity(cut_at.min(offers)),
            cut_at,
            floor: None,
        }
    }

    /// The k-th best score once k items were kept: an item scoring below it cannot enter.
    #[inline]
    pub fn floor_score(&self) -> Option<f64> {
        self.floor.map(|f| f.score)
    }

    #[inline]
    pub fn offer(&mut self, item: ScoredItem) {
        if self
            .floor
            .is_some_and(|f| rank(&item, &f) != Ordering::Less)
        {
            return;
        }
        self.pool.push(item);
        if self.pool.len() >= self.cut_at {
            self.cut();
        }
    }

    #[cold]
    fn cut(&mut self) {
        top_k(&mut self.pool, self.k);
        self.floor = self.pool.last().copied();
        debug_assert_eq!(self.pool.len(), self.k, "cut only from a pool beyond k");
    }

    /// The best k, best first.
    pub fn into_sorted(mut self) -> Vec<ScoredItem> {
        top_k(&mut self.pool, self.k);
        self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EntityId;

    fn items() -> Vec<ScoredItem> {
        (0..1000u64)
            .map(|i| ScoredItem {
                item: EntityId(i),
                score: ((i * 7919) % 101) as f64,
            })
            .collect()
    }

    fn full_sort(all: &[ScoredItem], k: usize) -> Vec<ScoredItem> {
        let mut slow = all.to_vec();
        slow.sort_by(rank);
        slow.truncate(k);
        slow
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        let all = items();
        for k in [0, 1, 7, 50, 999, 1000, 5000] {
            let mut fast = all.clone();
            top_k(&mut fast, k);
            assert_eq!(fast, full_sort(&all, k), "k = {k}");
        }
    }

    #[test]
    fn streamed_top_k_matches_a_full_sort() {
        let all = items();
        for k in [0, 1, 7, 50, 999, 1000, 5000] {
            for offers in [0, 10, 1000] {
                let mut top = TopK::new(k, offers);
                for item in &all[..offers] {
                    top.offer(*item);
                }
                assert_eq!(
                    top.into_sorted(),
                    full_sort(&all[..offers], k),
                    "k = {k}, {offers} offers"
                );
            }
        }
    }
}
