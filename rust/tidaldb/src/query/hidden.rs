//! Which candidates the user has hidden.
//!
//! Probing the user's hide registers once per candidate costs a hash probe each. When the
//! user has hidden far fewer items than there are candidates, it is cheaper to resolve the
//! hidden items' slots once, mark them in a bitset over the ranking signal's slots, and test
//! each candidate's bit: an item resolves to the same slot as candidate and as hidden item.

use rustc_hash::{FxHashMap, FxHashSet};

use super::slot_bits::SlotBits;
use crate::crdt::HideRegister;
use crate::ledger::{SignalLedger, Slot, UserHides};
use crate::schema::EntityId;

/// The registers are marked by slot when there are at least this many candidates per
/// register: resolving one hidden item's slot probes the signal's (large) index, which
/// costs about as much as a few probes of the user's (small) registers.
const CANDIDATES_PER_MARKED_REGISTER: usize = 4;

pub(super) enum Hidden<'a> {
    /// The user hid nothing, or no user was named.
    Nothing,
    /// Probed per candidate.
    Registers(&'a FxHashMap<EntityId, HideRegister>),
    /// The hidden items with a slot in the ranking signal, and those without one.
    Marked {
        slots: SlotBits,
        slotless: FxHashSet<EntityId>,
    },
}

impl<'a> Hidden<'a> {
    /// For `candidates` candidates, ranked first by `ranking`, whose slots resolve there.
    pub fn new(
        hides: Option<&'a UserHides>,
        ranking: Option<&SignalLedger>,
        candidates: usize,
    ) -> Self {
        let Some(hides) = hides.filter(|h| !h.registers().is_empty()) else {
            return Hidden::Nothing;
        };
        let registers = hides.registers();
        let few = registers
            .len()
            .saturating_mul(CANDIDATES_PER_MARKED_REGISTER)
            <= candidates;
        let marked = ranking
            .filter(|_| few)
            .and_then(|r| Some((r, SlotBits::for_query(r.entity_count(), candidates)?)));
        let Some((ranking, mut slots)) = marked else {
            return Hidden::Registers(registers);
        };
        let items = hides.hidden_items();
        let mut slotless = FxHashSet::default();
        for (item, slot) in items.iter().zip(ranking.slots_of(items)) {
            match slot.get() {
                Some(s) => {
                    slots.insert(s);
                }
                None => {
                    slotless.insert(*item);
                }
            }
        }
        Hidden::Marked { slots, slotless }
    }

    /// Whether the user hid `item`, which resolved to `slot` in the ranking signal. Inlined
    /// into the pass over the candidates, where a call per candidate shows; the hash probes
    /// stay out of line so as not to crowd it.
    #[inline(always)]
    pub fn hides(&self, item: EntityId, slot: Slot) -> bool {
        match self {
            Hidden::Nothing => false,
            Hidden::Registers(r) => registered(r, item),
            Hidden::Marked { slots, slotless } => match slot.get() {
                Some(s) => slots.contains(s),
                None => !slotless.is_empty() && slotless_hidden(slotless, item),
            },
        }
    }
}

/// The probe of [`Hidden::Registers`], out of line (see `hides`).
#[inline(never)]
fn registered(registers: &FxHashMap<EntityId, HideRegister>, item: EntityId) -> bool {
    registers.get(&item).is_some_and(HideRegister::is_hidden)
}

/// The probe of [`Hidden::Marked`]'s slotless items, out of line (see `hides`).
#[inline(never)]
fn slotless_hidden(slotless: &FxHashSet<EntityId>, item: EntityId) -> bool {
    slotless.contains(&item)
}
