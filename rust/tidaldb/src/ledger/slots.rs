//! Dense entity slots: entity id → a stable `u32` slot in parallel state vectors.
//!
//! The index (a `hashbrown::HashTable<u32>` plus a dense key vector) is a few bytes per
//! entity, so it stays in cache while the states themselves live in plain vectors. Slots
//! never move, which lets a batch resolve every slot first and then prefetch the states it
//! is about to touch: random access over a million entities then overlaps its cache misses
//! instead of paying for each one in turn.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxBuildHasher;

use crate::schema::EntityId;

/// How many entities ahead [`EntitySlots::find_many`] prefetches the keys it compares: as
/// far as `SignalLedger::READ_AHEAD`, and for the same reason.
const KEYS_AHEAD: usize = 64;

/// One entity's slot in a batch lookup's answer, or none: four bytes where an
/// `Option<u32>` takes eight, which halves what a large batch writes and reads back.
/// `u32::MAX` stands for none; no entity holds it while there are fewer slots than that
/// (`EntitySlots::find_many` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Slot(u32);

// SAFETY: `Slot` is `repr(transparent)` over a `u32`, and every `u32` is a valid `Slot`
// (`u32::MAX` is none, any other a slot number): a bulk write's `u32` slots are looked up
// through it in place.
unsafe impl bytemuck::TransparentWrapper<u32> for Slot {}

impl Slot {
    pub const NONE: Slot = Slot(u32::MAX);

    #[inline]
    pub fn get(self) -> Option<u32> {
        (self != Self::NONE).then_some(self.0)
    }
}

impl From<Option<u32>> for Slot {
    #[inline]
    fn from(slot: Option<u32>) -> Self {
        slot.map_or(Slot::NONE, Slot)
    }
}

#[derive(Clone, Debug, Default)]
pub struct EntitySlots {
    table: HashTable<u32>,
    keys: Vec<EntityId>,
}

#[inline]
fn hash(e: EntityId) -> u64 {
    FxBuildHasher.hash_one(e.0)
}

impl EntitySlots {
    /// Rebuilds the index over keys restored from a snapshot (their order is their slots);
    /// `None` if a key appears twice.
    pub fn from_keys(keys: Vec<EntityId>) -> Option<Self> {
        let mut table = HashTable::with_capacity(keys.len());
        for (slot, key) in keys.iter().enumerate() {
            let h = hash(*key);
            if table.find(h, |&s| keys[s as usize] == *key).is_some() {
                return None;
            }
            table.insert_unique(h, slot as u32, |&s| hash(keys[s as usize]));
        }
        Some(EntitySlots { table, keys })
    }

    #[inline]
    pub fn find(&self, e: EntityId) -> Option<usize> {
        let keys = &self.keys;
        self.table
            .find(hash(e), |&s| keys[s as usize] == e)
            .map(|&s| s as usize)
    }

    /// [`Self::find`] of every entity, for a batch read (see [`Self::find_each`]).
    pub fn find_many(&self, entities: &[EntityId]) -> Vec<Slot> {
        let mut slots = vec![Slot::NONE; entities.len()];
        self.find_each(|i| entities[i], &mut slots);
        slots
    }

    /// [`Self::find`] of `entity(i)` into `out[i]`, for every `i` below `out.len()`. A
    /// lookup loads the index entry, then the key of the slot it names, to compare: one
    /// after the other, the second load waits on the first. So a first pass takes the
    /// first entry whose hash tag matches (the entity's own, when it has a slot, unless a
    /// rare false match comes first), and the second compares the keys, prefetched a few
    /// entities ahead, looking up in full only where they differ. A 1M-event bulk write
    /// whose lookups went one full lookup after another was about 7% slower.
    pub fn find_each(&self, entity: impl Fn(usize) -> EntityId, out: &mut [Slot]) {
        debug_assert!(
            self.keys.len() < Slot::NONE.0 as usize,
            "no slot may stand for none"
        );
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = Slot::from(self.table.find(hash(entity(i)), |_| true).copied());
        }
        for i in 0..out.len() {
            if let Some(ahead) = out.get(i + KEYS_AHEAD).and_then(|s| s.get()) {
                self.keys.get(ahead as usize).map(prefetch);
            }
            if let Some(tagged) = out[i].get() {
                let e = entity(i);
                if self.keys.get(tagged as usize) != Some(&e) {
                    out[i] = Slot::from(self.find(e).map(|s| s as u32));
                }
            }
        }
    }

    /// The slot of `e`, and whether it was just created (the caller then gives it its
    /// state). One probe either way: a new entity takes the bucket its lookup ended at.
    #[inline]
    pub fn find_or_insert(&mut self, e: EntityId) -> (usize, bool) {
        // `entry` grows a full table before it probes, whether or not `e` is new; growing
        // it here first, at the same moment and to the same size, leaves it nothing to do.
        if self.table.len() == self.table.capacity() {
            self.grow();
        }
        let slot = self.keys.len() as u32;
        let keys = &self.keys;
        match self.table.entry(
            hash(e),
            |&s| keys[s as usize] == e,
            |&s| hash(keys[s as usize]),
        ) {
            Entry::Occupied(found) => (*found.get() as usize, false),
            Entry::Vacant(free) => {
                free.insert(slot);
                push_grown_by_eighths(&mut self.keys, e);
                (slot as usize, true)
            }
        }
    }

    /// Doubles the table (to the size hashbrown's own growth picks), refilled from the keys
    /// in slot order. hashbrown's rehash walks its buckets and hashes the key each names, a
    /// random read of the keys per entity; reading them in order is sequential, which made
    /// creating a fresh load's 92K entities from 256K events 12% faster.
    #[cold]
    fn grow(&mut self) {
        self.refill(self.table.capacity() + 1);
    }

    /// Removes the entities created since there were `len`: a write refused after its
    /// slots were created (see `ledger::Beside`) leaves the index as it found it.
    pub fn truncate(&mut self, len: usize) {
        if len < self.keys.len() {
            self.keys.truncate(len);
            self.refill(self.table.capacity());
        }
    }

    /// A table for `capacity` entities holding the keys, each at its slot.
    fn refill(&mut self, capacity: usize) {
        debug_assert!(capacity >= self.keys.len(), "room for every key");
        let mut table = HashTable::with_capacity(capacity);
        let keys = &self.keys;
        for (slot, key) in keys.iter().enumerate() {
            // The capacity holds every key, so the hasher (for growing) is never called.
            table.insert_unique(hash(*key), slot as u32, |&s| hash(keys[s as usize]));
        }
        self.table = table;
    }

    pub fn keys(&self) -> &[EntityId] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Growth of the per-entity vectors: an eighth of their length, at least this many.
const MIN_GROWTH: usize = 64;

/// Pushes onto one of a signal's per-entity vectors (keys, states, window sets), growing
/// it by an eighth rather than doubling: a vector then leaves at most 12.5% of its memory
/// unused (doubling leaves up to half), for reallocations still amortized constant.
#[inline]
pub fn push_grown_by_eighths<T>(v: &mut Vec<T>, value: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(MIN_GROWTH));
    }
    v.push(value);
}

/// Lengthens one of a signal's per-entity vectors to `len` entries of `value`, growing
/// its capacity as [`push_grown_by_eighths`] does, or to `len` exactly when that is more.
pub fn resize_grown_by_eighths<T: Clone>(v: &mut Vec<T>, len: usize, value: T) {
    reserve_grown_by_eighths(v, len);
    v.resize(len, value);
}

/// Makes room in `v` for `len` entries as [`resize_grown_by_eighths`] does.
pub fn reserve_grown_by_eighths<T>(v: &mut Vec<T>, len: usize) {
    if len > v.capacity() {
        v.reserve_exact((len - v.len()).max(v.len() / 8).max(MIN_GROWTH));
    }
}

/// Hints the CPU to fetch `value`'s cache line now; it is needed a few iterations later.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is only a hint; it never faults and has no visible effect,
        // and the pointer comes from a live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// [`prefetch`] of every cache line `value` spans: a 32-byte state in a vector that is
/// only 16-byte aligned straddles two lines every other slot.
#[inline(always)]
pub fn prefetch_lines<T>(value: &T) {
    prefetch(value);
    if size_of::<T>() > 1 {
        // SAFETY: the last byte of a live value, in bounds of its allocation.
        let last = unsafe { (value as *const T).cast::<u8>().add(size_of::<T>() - 1) };
        // SAFETY: as for `prefetch`; the pointer is in bounds and only hinted at.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(last.cast::<i8>())
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_and_survive_a_rebuild() {
        let mut s = EntitySlots::default();
        let ids: Vec<u64> = (0..10_000).map(|i| i * 7919 % 100_003).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(s.find_or_insert(EntityId(*id)), (i, true));
        }
        assert_eq!(s.find_or_insert(EntityId(ids[42])), (42, false));
        let rebuilt = EntitySlots::from_keys(s.keys().to_vec()).unwrap();
        assert!(EntitySlots::from_keys(vec![EntityId(1), EntityId(2), EntityId(1)]).is_none());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(rebuilt.find(EntityId(*id)), Some(i));
        }
        assert_eq!(rebuilt.find(EntityId(100_004)), None);
    }

    #[test]
    fn truncating_forgets_exactly_the_entities_created_since() {
        let mut s = EntitySlots::default();
        for id in 0..1_000u64 {
            s.find_or_insert(EntityId(id * 5));
        }
        let capacity = s.table.capacity();
        for id in 1_000..5_000u64 {
            s.find_or_insert(EntityId(id * 5));
        }
        s.truncate(1_000);
        assert_eq!(s.len(), 1_000);
        for id in 0..5_000u64 {
            let want = (id < 1_000).then_some(id as usize);
            assert_eq!(s.find(EntityId(id * 5)), want, "entity {}", id * 5);
        }
        assert!(s.table.capacity() >= capacity);
        assert_eq!(s.find_or_insert(EntityId(3)), (1_000, true));
    }

    /// Every growth keeps each entity's slot, and the table stays the size hashbrown's own
    /// growth gives the same entities inserted the same way (the oracle: a plain table).
    #[test]
    fn growing_keeps_every_slot_at_hashbrowns_size() {
        let mut s = EntitySlots::default();
        let mut plain: HashTable<u64> = HashTable::new();
        let ids: Vec<u64> = (0..300_000u64)
            .map(|i| (i * 2_654_435_761) % 150_001)
            .collect();
        for id in &ids {
            s.find_or_insert(EntityId(*id));
            let hasher = |k: &u64| hash(EntityId(*k));
            if let Entry::Vacant(free) = plain.entry(hash(EntityId(*id)), |k| k == id, hasher) {
                free.insert(*id);
            }
            assert_eq!(s.table.capacity(), plain.capacity(), "after {id}");
        }
        assert_eq!(s.len(), plain.len());
        let mut first_slot = std::collections::HashMap::new();
        for id in &ids {
            let next = first_slot.len();
            first_slot.entry(*id).or_insert(next);
        }
        for (id, slot) in first_slot {
            assert_eq!(s.find(EntityId(id)), Some(slot), "entity {id}");
        }
    }

    /// Present and absent entities, some twice, against `find` one at a time: a false
    /// tag match (a 7-bit tag, so frequent among 20,000 absent ids) must not leak through.
    #[test]
    fn find_many_is_find_of_each() {
        let mut s = EntitySlots::default();
        for i in 0..20_000u64 {
            s.find_or_insert(EntityId(i * 3));
        }
        let probe: Vec<EntityId> = (0..60_000u64).chain(0..100).map(EntityId).collect();
        let one_by_one: Vec<Option<u32>> =
            probe.iter().map(|e| s.find(*e).map(|x| x as u32)).collect();
        let many: Vec<Option<u32>> = s.find_many(&probe).iter().map(|s| s.get()).collect();
        assert_eq!(many, one_by_one);
        assert_eq!(
            EntitySlots::default().find_many(&probe[..5]),
            vec![Slot::NONE; 5]
        );
    }

    #[test]
    fn per_entity_vectors_grow_by_an_eighth() {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..100_000 {
            push_grown_by_eighths(&mut v, i);
            assert!(v.capacity() <= v.len() + (v.len() / 8).max(MIN_GROWTH));
        }
        assert_eq!(v.iter().sum::<u64>(), 100_000 * 99_999 / 2);
        v.shrink_to_fit();
        let before = v.len();
        resize_grown_by_eighths(&mut v, before + 3, 7);
        assert_eq!(v.capacity(), before + (before / 8));
        resize_grown_by_eighths(&mut v, 400_000, 7);
        assert_eq!((v.len(), v.capacity()), (400_000, 400_000));
        assert!(v[before..].iter().all(|&x| x == 7));
    }
}
