//! A bitset over one signal's slots, for a query to mark its candidates by.
//!
//! Slots are dense (`0..entity_count`) and an item always resolves to the same one, so one
//! bit per slot stands for the item: a set of candidates costs a bit test each instead of
//! a hash probe. The bitset is cleared whole, so it pays only while the slots are not far
//! more numerous than the candidates.

/// The bitset is used while clearing it costs at most this many words per candidate: with
/// few candidates among many slots, a hash set is cheaper.
const MAX_WORDS_PER_CANDIDATE: usize = 2;

pub(super) struct SlotBits(Vec<u64>);

impl SlotBits {
    /// A cleared bitset over `slot_count` slots, or `None` when it would cost more to clear
    /// than `candidates` hash probes.
    pub fn for_query(slot_count: usize, candidates: usize) -> Option<Self> {
        let words = slot_count.div_ceil(64);
        (words <= candidates.saturating_mul(MAX_WORDS_PER_CANDIDATE))
            .then(|| SlotBits(vec![0; words]))
    }

    /// Sets the bit of `slot`; whether it was clear. `slot` must be below the slot count.
    #[inline]
    pub fn insert(&mut self, slot: u32) -> bool {
        let (word, bit) = Self::locate(slot);
        match self.0.get_mut(word) {
            Some(w) => {
                let clear = *w & bit == 0;
                *w |= bit;
                clear
            }
            None => {
                debug_assert!(false, "slot {slot} is beyond the bitset");
                false
            }
        }
    }

    #[inline]
    pub fn contains(&self, slot: u32) -> bool {
        let (word, bit) = Self::locate(slot);
        self.0.get(word).is_some_and(|w| w & bit != 0)
    }

    #[inline]
    fn locate(slot: u32) -> (usize, u64) {
        (slot as usize / 64, 1 << (slot % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_set_once_and_read_back() {
        let mut bits = SlotBits::for_query(1000, 500).unwrap();
        for slot in (0..1000).step_by(3) {
            assert!(bits.insert(slot));
            assert!(!bits.insert(slot));
        }
        for slot in 0..1000 {
            assert_eq!(bits.contains(slot), slot % 3 == 0, "slot {slot}");
        }
        assert!(SlotBits::for_query(1 << 20, 100).is_none());
        assert!(SlotBits::for_query(0, 0).is_some());
    }
}
