//! The materialized state of one signal: a slot per entity, and parallel vectors of decay
//! state and window state indexed by slot.

use serde::{Deserialize, Serialize};

use super::beside::{Beside, create_missing_beside, run_alone};
use super::parallel::{self, PARALLEL_MIN_EVENTS, RunEvents, resize_spread};
use super::slots::{EntitySlots, Slot, prefetch, prefetch_lines};
use super::windows::{WindowGap, WindowReading, WindowSet, to_micros};
use crate::crdt::{CrdtSignalState, HalfLife, LinearState};
use crate::error::{Result, TidalError};
use crate::event::EventId;
use crate::schema::{DecaySpec, EntityId, NodeId, SignalDef, Window};

/// Per-slot decay state, together with the parameter it decays by. A signal's states are
/// all of one kind, so the hot loop does not branch per entity, and no state can be paired
/// with the wrong decay.
#[derive(Clone, Debug)]
enum States {
    Exp {
        half_life: HalfLife,
        states: Vec<CrdtSignalState>,
    },
    Linear {
        lifetime: i64,
        states: Vec<LinearState>,
    },
}

/// How many events ahead a batch prefetches the states it will update.
const PREFETCH_AHEAD: usize = 8;

#[derive(Clone, Debug)]
pub struct SignalLedger {
    windows: Vec<Window>,
    slots: EntitySlots,
    states: States,
    /// One per slot when the signal has windows, else empty.
    window_sets: Vec<WindowSet>,
}

/// A signal's state as a snapshot stores it: the keys in slot order and the parallel
/// vectors (one of `exp` and `linear` is empty, by the signal's decay).
#[derive(Serialize)]
pub struct SignalPartsRef<'a> {
    pub keys: &'a [EntityId],
    pub exp: &'a [CrdtSignalState],
    pub linear: &'a [LinearState],
    pub window_sets: &'a [WindowSet],
}

/// Field for field the same as [`SignalPartsRef`]: postcard is positional.
#[derive(Deserialize)]
pub struct SignalParts {
    pub keys: Vec<EntityId>,
    pub exp: Vec<CrdtSignalState>,
    pub linear: Vec<LinearState>,
    pub window_sets: Vec<WindowSet>,
}

impl SignalLedger {
    /// How many entities ahead a batch read prefetches the states it will read: far enough
    /// ahead to cover a miss to memory, as in the first reads after a load (16 left the
    /// first top-50 of 10K after a load about 15% slower, with no gain once cached).
    pub const READ_AHEAD: usize = 64;

    pub fn new(def: &SignalDef) -> Self {
        let exp = |half_life| States::Exp {
            half_life,
            states: Vec::new(),
        };
        let states = match def.decay {
            DecaySpec::Exponential { half_life } => exp(HalfLife(half_life.as_nanos() as f64)),
            DecaySpec::Permanent => exp(HalfLife(f64::INFINITY)),
            DecaySpec::Linear { lifetime } => States::Linear {
                lifetime: lifetime.as_nanos() as i64,
                states: Vec::new(),
            },
        };
        SignalLedger {
            windows: def.windows.clone(),
            slots: EntitySlots::default(),
            states,
            window_sets: Vec::new(),
        }
    }

    pub fn parts(&self) -> SignalPartsRef<'_> {
        let (exp, linear): (&[CrdtSignalState], &[LinearState]) = match &self.states {
            States::Exp { states, .. } => (states, &[]),
            States::Linear { states, .. } => (&[], states),
        };
        SignalPartsRef {
            keys: self.slots.keys(),
            exp,
            linear,
            window_sets: &self.window_sets,
        }
    }

    /// Rebuilds a signal from snapshot parts. The parts were checksummed, but they are still
    /// checked against the schema and against every invariant the write path keeps, so a
    /// crafted file gets an error, never a panic later.
    pub fn from_parts(def: &SignalDef, parts: SignalParts) -> Result<Self> {
        let inconsistent = |what: &str| TidalError::InvalidArgument {
            name: "snapshot",
            reason: format!("the state of signal {:?} is inconsistent: {what}", def.name),
        };
        let mut ledger = SignalLedger::new(def);
        let n = parts.keys.len();
        let well_formed = match &mut ledger.states {
            States::Exp { states, .. } if parts.linear.is_empty() && parts.exp.len() == n => {
                *states = parts.exp;
                states.iter().all(CrdtSignalState::is_well_formed)
            }
            States::Linear { states, .. } if parts.exp.is_empty() && parts.linear.len() == n => {
                *states = parts.linear;
                states.iter().all(LinearState::is_well_formed)
            }
            _ => {
                return Err(inconsistent(
                    "the decay states do not match the keys or the decay",
                ));
            }
        };
        let windows_len = if def.windows.is_empty() { 0 } else { n };
        if !well_formed || parts.window_sets.len() != windows_len {
            return Err(inconsistent("malformed decay or window state"));
        }
        if !parts
            .window_sets
            .iter()
            .all(|w| w.is_well_formed(&def.windows))
        {
            return Err(inconsistent("malformed window buckets"));
        }
        ledger.slots = EntitySlots::from_keys(parts.keys)
            .ok_or_else(|| inconsistent("an entity appears twice"))?;
        ledger.window_sets = parts.window_sets;
        Ok(ledger)
    }

    /// The slot of `entity`, created with empty state if new.
    #[inline]
    fn slot_for_write(&mut self, entity: EntityId) -> usize {
        let (slot, created) = self.slots.find_or_insert(entity);
        if created {
            self.add_empty_states(1);
        }
        slot
    }

    /// Gives every slot created since the states were last lengthened its empty state:
    /// a batch creates its slots first and the states for all of them at once.
    fn add_empty_states(&mut self, threads: usize) {
        let n = self.slots.len();
        match &mut self.states {
            States::Exp { states, .. } => {
                resize_spread(states, n, &CrdtSignalState::default(), threads)
            }
            States::Linear { states, .. } => {
                resize_spread(states, n, &LinearState::default(), threads)
            }
        }
        if !self.windows.is_empty() {
            resize_spread(&mut self.window_sets, n, &WindowSet::default(), threads);
        }
    }

    #[inline]
    fn apply_at(&mut self, slot: usize, id: EventId, weight: f64, ts: i64) {
        match &mut self.states {
            States::Exp { half_life, states } => {
                states[slot].add(id.origin, id.seq, weight, ts, *half_life)
            }
            States::Linear { lifetime, states } => states[slot].add(weight, ts, *lifetime),
        }
        if let Some(w) = self.window_sets.get_mut(slot) {
            w.add(&self.windows, ts, to_micros(weight));
        }
    }

    #[inline]
    pub fn apply(&mut self, id: EventId, entity: EntityId, weight: f64, ts: i64) {
        let slot = self.slot_for_write(entity);
        self.apply_at(slot, id, weight, ts);
    }

    /// Applies a run of one origin's events in order. Same result as `apply` one by one,
    /// but it resolves every slot first, then prefetches the states a few events ahead.
    /// A run of at least [`PARALLEL_MIN_EVENTS`] is spread over `threads` threads,
    /// partitioned by entity (see `parallel.rs`), with the same result. `beside` runs
    /// before anything is written, beside the creation of slots when spread (see
    /// `beside.rs`); if it refuses, nothing is.
    pub fn apply_run<R: RunEvents + ?Sized>(
        &mut self,
        origin: NodeId,
        run: &R,
        threads: usize,
        beside: Option<&dyn Beside>,
    ) -> Result<()> {
        // A partitioned apply numbers events in `u32`; no chunk comes near that.
        if threads > 1 && run.len() >= PARALLEL_MIN_EVENTS && u32::try_from(run.len()).is_ok() {
            return self.apply_run_partitioned(origin, run, threads, beside);
        }
        if let Some(beside) = beside {
            run_alone(beside)?;
        }
        let slots: Vec<usize> = (0..run.len())
            .map(|i| self.slots.find_or_insert(run.entity(i)).0)
            .collect();
        self.add_empty_states(1);
        for (i, &slot) in slots.iter().enumerate() {
            if let Some(&ahead) = slots.get(i + PREFETCH_AHEAD) {
                self.prefetch_slot(ahead);
            }
            let (_, weight, ts, seq) = run.item(i);
            self.apply_at(slot, EventId { origin, seq }, weight, ts);
        }
        Ok(())
    }

    /// Looks the slots up on `threads` threads, creates the new ones here in run order (so
    /// they are numbered as the serial path numbers them) while the other threads run
    /// `beside`, then, if it accepts, applies by partition.
    fn apply_run_partitioned<R: RunEvents + ?Sized>(
        &mut self,
        origin: NodeId,
        run: &R,
        threads: usize,
        beside: Option<&dyn Beside>,
    ) -> Result<()> {
        let mut slots = parallel::find_slots(&self.slots, run, threads);
        create_missing_beside(&mut self.slots, run, &mut slots, threads, beside)?;
        self.add_empty_states(threads);
        let shared = parallel::Run {
            items: run,
            slots: &slots,
            windows: &self.windows,
        };
        let window_sets = &mut self.window_sets;
        match &mut self.states {
            States::Exp { half_life, states } => {
                let h = *half_life;
                parallel::apply_partitioned(
                    threads,
                    &shared,
                    states,
                    window_sets,
                    |s, weight, ts, seq| s.add(origin, seq, weight, ts, h),
                );
            }
            States::Linear { lifetime, states } => {
                let l = *lifetime;
                parallel::apply_partitioned(
                    threads,
                    &shared,
                    states,
                    window_sets,
                    |s, weight, ts, _| s.add(weight, ts, l),
                );
            }
        }
        Ok(())
    }

    #[inline]
    fn prefetch_state(&self, slot: usize) {
        match &self.states {
            States::Exp { states, .. } => states.get(slot).map(prefetch),
            States::Linear { states, .. } => states.get(slot).map(prefetch),
        };
    }

    #[inline]
    fn prefetch_slot(&self, slot: usize) {
        self.prefetch_state(slot);
        if let Some(w) = self.window_sets.get(slot) {
            w.prefetch();
        }
    }

    /// The decayed score at `at`; `None` when a linear signal no longer keeps that history.
    #[inline]
    pub fn score(&self, entity: EntityId, at: i64) -> Option<f64> {
        self.score_at_slot(self.slot_of(entity).into(), at)
    }

    /// The slot holding `entity`'s state, `None` when it has no events here. A batch read
    /// resolves its slots once and reads by them ([`Self::score_at_slot`]).
    #[inline]
    pub fn slot_of(&self, entity: EntityId) -> Option<u32> {
        let slot = self.slots.find(entity)?;
        debug_assert!(u32::try_from(slot).is_ok(), "slots are u32 in the index");
        Some(slot as u32)
    }

    /// [`Self::slot_of`] of every entity, faster than one at a time.
    pub fn slots_of(&self, entities: &[EntityId]) -> Vec<Slot> {
        debug_assert!(
            u32::try_from(self.slots.len()).is_ok(),
            "slots are u32 in the index"
        );
        self.slots.find_many(entities)
    }

    /// The score of the entity in `slot` (no slot: no events, score 0), as
    /// [`Self::score`] reads it.
    #[inline]
    pub fn score_at_slot(&self, slot: Slot, at: i64) -> Option<f64> {
        let Some(s) = slot.get() else {
            return Some(0.0);
        };
        match &self.states {
            States::Exp { half_life, states } => Some(states[s as usize].read(at, *half_life)),
            States::Linear { lifetime, states } => states[s as usize].read(at, *lifetime),
        }
    }

    /// A bound on `|score_at_slot(slot, at)|` computed without decaying anything (see
    /// `CrdtSignalState::read_bound`); `None` when there is none to be had cheaply: a linear
    /// signal, or a read before the state's latest events.
    #[inline]
    pub fn score_bound_at_slot(&self, slot: Slot, at: i64) -> Option<f64> {
        let Some(s) = slot.get() else {
            return Some(0.0);
        };
        match &self.states {
            States::Exp { half_life, states } => states[s as usize].read_bound(at, *half_life),
            States::Linear { .. } => None,
        }
    }

    /// Hints the CPU to fetch the state of `slot`, which a batch read reads a few entities
    /// later.
    #[inline]
    pub fn prefetch_read(&self, slot: Slot) {
        let Some(s) = slot.get() else {
            return;
        };
        match &self.states {
            States::Exp { states, .. } => states.get(s as usize).map(prefetch_lines),
            States::Linear { states, .. } => states.get(s as usize).map(prefetch_lines),
        };
    }

    /// Scores of many entities at `at`, handed to `each(index, score)` in order. Slots are
    /// resolved first and states prefetched ahead, as in `apply_run`. `None` stands for an
    /// entity whose linear history no longer reaches back to `at`.
    pub fn scores_each(
        &self,
        entities: &[EntityId],
        at: i64,
        mut each: impl FnMut(usize, Option<f64>),
    ) {
        let slots = self.slots_of(entities);
        for (i, slot) in slots.iter().enumerate() {
            if let Some(ahead) = slots.get(i + Self::READ_AHEAD) {
                self.prefetch_read(*ahead);
            }
            each(i, self.score_at_slot(*slot, at));
        }
    }

    /// [`Self::scores_each`] that stops at the first entity without a score: `Err(index)`
    /// names it.
    pub fn scores_with(
        &self,
        entities: &[EntityId],
        at: i64,
        mut each: impl FnMut(usize, f64),
    ) -> Result<(), usize> {
        let mut gap = None;
        self.scores_each(entities, at, |i, score| match (score, gap) {
            (Some(score), None) => each(i, score),
            (None, None) => gap = Some(i),
            (_, Some(_)) => {}
        });
        gap.map_or(Ok(()), Err)
    }

    /// Only signals that declare windows keep window state, so the caller checks
    /// `has_window` first.
    pub fn window(
        &self,
        entity: EntityId,
        window: Window,
        at: i64,
    ) -> Result<WindowReading, WindowGap> {
        match self
            .slots
            .find(entity)
            .and_then(|s| self.window_sets.get(s))
        {
            Some(w) => w.read(&self.windows, window, at),
            None => Ok(WindowReading::default()),
        }
    }

    /// Every signal with any window keeps an all-time total too.
    pub fn has_window(&self, window: Window) -> bool {
        self.windows.contains(&window) || (window == Window::AllTime && !self.windows.is_empty())
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    pub fn entity_count(&self) -> usize {
        self.slots.len()
    }

    pub fn holds(&self, entity: EntityId) -> bool {
        self.slots.find(entity).is_some()
    }

    /// Entities in the order their slots were created: `entities()[n..]` are the ones
    /// created since the count was `n`.
    pub fn entities(&self) -> &[EntityId] {
        self.slots.keys()
    }

    /// Applied events over every entity, from the all-time window totals; `None` when
    /// the signal keeps no windows.
    pub fn total_count(&self) -> Option<u64> {
        if self.windows.is_empty() {
            return None;
        }
        Some(
            self.window_sets
                .iter()
                .filter_map(|w| w.read(&self.windows, Window::AllTime, 0).ok())
                .map(|r| r.count)
                .sum(),
        )
    }
}
