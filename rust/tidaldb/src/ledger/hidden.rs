//! The hidden set: one hide register per (user, item), grouped by user so that a
//! retrieval for one user probes one small map.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crdt::{HideRegister, HideStamp};
use crate::schema::EntityId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HiddenSet {
    by_user: FxHashMap<EntityId, UserHides>,
}

/// One user's registers, and the items they hide now, listed on the first retrieval
/// after a change. A retrieval that marks the hidden items walks the list, 8 bytes an
/// item, rather than every register: walking 1K registers was a twelfth of a top-50 of
/// 10K candidates. Stored and compared as the registers alone.
#[derive(Clone, Debug, Default)]
pub struct UserHides {
    registers: FxHashMap<EntityId, HideRegister>,
    hidden_now: OnceLock<Vec<EntityId>>,
}

impl HiddenSet {
    pub fn hide(&mut self, user: EntityId, item: EntityId, at: HideStamp) {
        self.register(user, item).hide(at);
    }

    pub fn unhide(&mut self, user: EntityId, item: EntityId, at: HideStamp) {
        self.register(user, item).unhide(at);
    }

    /// Merges a whole register in, as a snapshot of another format hands it over.
    pub fn merge_register(&mut self, user: EntityId, item: EntityId, register: &HideRegister) {
        self.register(user, item).merge(register);
    }

    /// The register to change; the user's listing is dropped, to be made again.
    fn register(&mut self, user: EntityId, item: EntityId) -> &mut HideRegister {
        let hides = self.by_user.entry(user).or_default();
        hides.hidden_now.take();
        hides.registers.entry(item).or_default()
    }

    pub fn is_hidden(&self, user: EntityId, item: EntityId) -> bool {
        self.for_user(user)
            .and_then(|hides| hides.registers.get(&item))
            .is_some_and(HideRegister::is_hidden)
    }

    /// The hides of one user, for a retrieval loop to probe without re-hashing the user.
    pub fn for_user(&self, user: EntityId) -> Option<&UserHides> {
        self.by_user.get(&user)
    }

    /// Every register as (user, item, register), in no particular order.
    pub fn registers(&self) -> impl Iterator<Item = (EntityId, EntityId, &HideRegister)> {
        self.by_user.iter().flat_map(|(user, hides)| {
            hides
                .registers
                .iter()
                .map(move |(item, r)| (*user, *item, r))
        })
    }
}

impl UserHides {
    pub fn registers(&self) -> &FxHashMap<EntityId, HideRegister> {
        &self.registers
    }

    /// The items hidden now, in no particular order.
    pub fn hidden_items(&self) -> &[EntityId] {
        self.hidden_now.get_or_init(|| {
            let items: Vec<EntityId> = self
                .registers
                .iter()
                .filter(|(_, r)| r.is_hidden())
                .map(|(item, _)| *item)
                .collect();
            debug_assert!(items.len() <= self.registers.len());
            items
        })
    }
}

impl PartialEq for UserHides {
    fn eq(&self, other: &Self) -> bool {
        self.registers == other.registers
    }
}

impl Serialize for UserHides {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.registers.serialize(s)
    }
}

impl<'de> Deserialize<'de> for UserHides {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(UserHides {
            registers: FxHashMap::deserialize(d)?,
            hidden_now: OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::HlcTimestamp;

    fn at(ns: u64) -> HideStamp {
        HideStamp::from_hlc(HlcTimestamp {
            wall_ns: ns,
            logical: 0,
            node_id: 1,
        })
    }

    fn listed(set: &HiddenSet, user: EntityId) -> Vec<EntityId> {
        let mut items = set
            .for_user(user)
            .map_or(vec![], |h| h.hidden_items().to_vec());
        items.sort();
        items
    }

    /// The listing follows every change, against the registers probed one by one.
    #[test]
    fn the_listing_is_the_items_hidden_after_every_change() {
        let user = EntityId(7);
        let mut set = HiddenSet::default();
        let mut ns = 1;
        for step in 0..200u64 {
            let item = EntityId(step * 31 % 17);
            ns += 1;
            match step % 3 {
                0 | 1 => set.hide(user, item, at(ns)),
                _ => set.unhide(user, item, at(ns)),
            }
            let expected: Vec<EntityId> = (0..17)
                .map(EntityId)
                .filter(|&i| set.is_hidden(user, i))
                .collect();
            assert_eq!(listed(&set, user), expected, "after step {step}");
        }
    }

    /// Stored as the registers alone: the bytes of a map of maps, and back.
    #[test]
    fn stored_as_its_registers() {
        let mut set = HiddenSet::default();
        set.hide(EntityId(1), EntityId(2), at(5));
        set.hide(EntityId(1), EntityId(3), at(6));
        set.unhide(EntityId(1), EntityId(3), at(7));
        assert_eq!(listed(&set, EntityId(1)), vec![EntityId(2)]);
        let plain: FxHashMap<EntityId, FxHashMap<EntityId, HideRegister>> = set
            .by_user
            .iter()
            .map(|(u, h)| (*u, h.registers.clone()))
            .collect();
        let bytes = postcard::to_allocvec(&set).expect("encodes");
        assert_eq!(bytes, postcard::to_allocvec(&(plain,)).expect("encodes"));
        let back: HiddenSet = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, set);
        assert_eq!(listed(&back, EntityId(1)), vec![EntityId(2)]);
    }
}
