//! Deduplication of a retrieval's candidates by the slots they resolve to.
//!
//! A caller may name an item twice; it is scored and counted once. A hash set of every
//! candidate costs a hash insert each. Most candidates, though, already resolved to a slot
//! in the signal that ranks them, so a bitset over the slots answers for those; only
//! candidates without a slot (no events in that signal) go to a hash set, usually empty.

use rustc_hash::FxHashSet;

use super::slot_bits::SlotBits;
use crate::ledger::Slot;
use crate::schema::EntityId;

pub(super) struct Distinct {
    /// `None` when the slots are too many for the candidates: every candidate then goes to
    /// `others`.
    bits: Option<SlotBits>,
    others: FxHashSet<EntityId>,
}

impl Distinct {
    /// For `candidates` candidates whose slots are below `slot_count`.
    pub fn new(slot_count: usize, candidates: usize) -> Self {
        let bits = SlotBits::for_query(slot_count, candidates);
        let others = match bits {
            Some(_) => FxHashSet::default(),
            None => FxHashSet::with_capacity_and_hasher(candidates, Default::default()),
        };
        Distinct { bits, others }
    }

    /// Whether `item`, which resolved to `slot`, is seen here for the first time.
    #[inline(always)]
    pub fn first_time(&mut self, item: EntityId, slot: Slot) -> bool {
        match (&mut self.bits, slot.get()) {
            (Some(bits), Some(s)) => bits.insert(s),
            _ => first_other(&mut self.others, item),
        }
    }
}

/// Out of line, so as not to crowd the pass over the candidates it is inlined into.
#[inline(never)]
fn first_other(others: &mut FxHashSet<EntityId>, item: EntityId) -> bool {
    others.insert(item)
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
                    let slot = Slot::from((i < 100).then_some(i as u32));
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
