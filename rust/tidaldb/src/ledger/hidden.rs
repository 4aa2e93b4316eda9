//! The hidden set: one hide register per (user, item), grouped by user so that a
//! retrieval for one user probes one small map.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::crdt::{HideRegister, HideStamp};
use crate::schema::EntityId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HiddenSet {
    by_user: FxHashMap<EntityId, FxHashMap<EntityId, HideRegister>>,
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

    fn register(&mut self, user: EntityId, item: EntityId) -> &mut HideRegister {
        self.by_user
            .entry(user)
            .or_default()
            .entry(item)
            .or_default()
    }

    pub fn is_hidden(&self, user: EntityId, item: EntityId) -> bool {
        self.for_user(user)
            .and_then(|items| items.get(&item))
            .is_some_and(HideRegister::is_hidden)
    }

    /// The registers of one user, for a retrieval loop to probe without re-hashing the user.
    pub fn for_user(&self, user: EntityId) -> Option<&FxHashMap<EntityId, HideRegister>> {
        self.by_user.get(&user)
    }

    /// Every register as (user, item, register), in no particular order.
    pub fn registers(&self) -> impl Iterator<Item = (EntityId, EntityId, &HideRegister)> {
        self.by_user
            .iter()
            .flat_map(|(user, items)| items.iter().map(move |(item, r)| (*user, *item, r)))
    }
}
