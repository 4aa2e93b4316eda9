//! Deduplication of a retrieval's candidates by the slots they resolve to.
//!
//! A caller may name an item twice; it is scored and counted once. A hash set of every
//! candidate costs a hash insert each. Most candidates, though, already resolved to a dense
//! slot in the signal that ranks them, and the same item always resolves to the same slot,
//! so a bitset over the slots answers for those with one bit each; only candidates without
//! a slot (no events in that signal) go to a hash set, usually empty.

use rustc_hash::FxHashSet;

use crate::schema::EntityId;

/// The bitset is used while clearing it costs at most this many words per candidate: with
/// few candidates among many slots, the hash set is cheaper.
const MAX_WORDS_PER_CANDIDATE: usize = 2;

pub(super) struct Distinct {
    /// One bit per slot; empty when the slots are too many for the candidates, and every
    /// candidate then goes to `others`.
    bits: Vec<u64>,
    others: FxHashSet<EntityId>,
}

impl Distinct {
    /// For `candidates` candidates whose slots are below `slot_count`.
    pub fn new(slot_count: usize, candidates: usize) -> Self {
        let words = slot_count.div_ceil(64);
        if words <= candidates.saturating_mul(MAX_WORDS_PER_CANDIDATE) {
            Distinct {
                bits: vec![0; words],
                others: FxHashSet::default(),
            }
        } else {
            Distinct {
                bits: Vec::new(),
                others: FxHashSet::with_capacity_and_hasher(candidates, Default::default()),
            }
        }
    }

    /// Whether `item`, which resolved to `slot`, is seen here for the first time.
    #[inline]
    pub fn first_time(&mut self, item: EntityId, slot: Option<u32>) -> bool {
        if let Some(s) = slot
            && let Some(word) = self.bits.get_mut(s as usize / 64)
        {
            let bit = 1u64 << (s % 64);
            let first = *word & bit == 0;
            *word |= bit;
            return first;
        }
        self.others.insert(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items 0..100 hold slots (item = slot) and the others none; every item is offered
    /// three times, under both the bitset and the hash set.
    #[test]
    fn each_item_is_first_exactly_once() {
        for slot_count in [100, 1 << 20] {
            let mut d = Distinct::new(slot_count, 600);
            let mut firsts = Vec::new();
            for round in 0..3 {
                for i in 0..200u64 {
                    let slot = (i < 100).then_some(i as u32);
                    if d.first_time(EntityId(i), slot) {
                        firsts.push((round, i));
                    }
                }
            }
            let expected: Vec<(i32, u64)> = (0..200).map(|i| (0, i)).collect();
            assert_eq!(firsts, expected, "{slot_count} slots");
        }
    }
}
