//! The materialized state of one signal: a slot per entity, and parallel vectors of decay
//! state and window state indexed by slot.

use serde::{Deserialize, Serialize};

use super::slots::{EntitySlots, prefetch};
use super::windows::{WindowReading, WindowSet, to_micros};
use crate::crdt::{CrdtSignalState, HalfLife, LinearState};
use crate::error::{Result, TidalError};
use crate::schema::{DecaySpec, EntityId, NodeId, SignalDef, Window};

/// Per-slot decay state; the variant follows the signal's [`DecaySpec`], so a signal's
/// states are all of one kind and the hot loop does not branch per entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DecayStates {
    Exp(Vec<CrdtSignalState>),
    Linear(Vec<LinearState>),
}

#[derive(Clone, Copy, Debug)]
enum Decay {
    Exp(HalfLife),
    Linear(i64),
}

/// How many events ahead a batch prefetches the states it will update.
const PREFETCH_AHEAD: usize = 8;

#[derive(Clone, Debug)]
pub struct SignalLedger {
    decay: Decay,
    windows: Vec<Window>,
    slots: EntitySlots,
    states: DecayStates,
    /// One per slot when the signal has windows, else empty.
    window_sets: Vec<WindowSet>,
}

/// A signal's state as a snapshot stores it: the keys in slot order and the parallel vectors.
#[derive(Serialize)]
pub struct SignalPartsRef<'a> {
    pub keys: &'a [EntityId],
    pub states: &'a DecayStates,
    pub window_sets: &'a [WindowSet],
}

#[derive(Deserialize)]
pub struct SignalParts {
    pub keys: Vec<EntityId>,
    pub states: DecayStates,
    pub window_sets: Vec<WindowSet>,
}

impl SignalLedger {
    pub fn new(def: &SignalDef) -> Self {
        let (decay, states) = match def.decay {
            DecaySpec::Exponential { half_life } => (
                Decay::Exp(HalfLife(half_life.as_nanos() as f64)),
                DecayStates::Exp(Vec::new()),
            ),
            DecaySpec::Permanent => (
                Decay::Exp(HalfLife(f64::INFINITY)),
                DecayStates::Exp(Vec::new()),
            ),
            DecaySpec::Linear { lifetime } => (
                Decay::Linear(lifetime.as_nanos() as i64),
                DecayStates::Linear(Vec::new()),
            ),
        };
        SignalLedger {
            decay,
            windows: def.windows.clone(),
            slots: EntitySlots::default(),
            states,
            window_sets: Vec::new(),
        }
    }

    pub fn parts(&self) -> SignalPartsRef<'_> {
        SignalPartsRef {
            keys: self.slots.keys(),
            states: &self.states,
            window_sets: &self.window_sets,
        }
    }

    /// Rebuilds a signal from snapshot parts, checking that they fit together and the schema.
    pub fn from_parts(def: &SignalDef, parts: SignalParts) -> Result<Self> {
        let mut ledger = SignalLedger::new(def);
        let n = parts.keys.len();
        let states_len = match &parts.states {
            DecayStates::Exp(v) => v.len(),
            DecayStates::Linear(v) => v.len(),
        };
        let same_kind = matches!(
            (&ledger.states, &parts.states),
            (DecayStates::Exp(_), DecayStates::Exp(_))
                | (DecayStates::Linear(_), DecayStates::Linear(_))
        );
        let windows_len = if def.windows.is_empty() { 0 } else { n };
        if !same_kind || states_len != n || parts.window_sets.len() != windows_len {
            return Err(TidalError::InvalidArgument {
                name: "snapshot",
                reason: format!("the state of signal {:?} is inconsistent", def.name),
            });
        }
        ledger.slots = EntitySlots::from_keys(parts.keys);
        ledger.states = parts.states;
        ledger.window_sets = parts.window_sets;
        Ok(ledger)
    }

    /// The slot of `entity`, created with empty state if new.
    #[inline]
    fn slot_for_write(&mut self, entity: EntityId) -> usize {
        let (slot, created) = self.slots.find_or_insert(entity);
        if created {
            match &mut self.states {
                DecayStates::Exp(v) => v.push(CrdtSignalState::default()),
                DecayStates::Linear(v) => v.push(LinearState::default()),
            }
            if !self.windows.is_empty() {
                self.window_sets.push(WindowSet::new(&self.windows));
            }
        }
        slot
    }

    #[inline]
    fn apply_at(&mut self, slot: usize, origin: NodeId, weight: f64, ts: i64) {
        match (&mut self.states, self.decay) {
            (DecayStates::Exp(v), Decay::Exp(h)) => v[slot].add(origin, weight, ts, h),
            (DecayStates::Linear(v), Decay::Linear(l)) => v[slot].add(weight, ts, l),
            // `new` and `from_parts` pair the variants, so this arm is unreachable.
            _ => {}
        }
        if let Some(w) = self.window_sets.get_mut(slot) {
            w.add(&self.windows, ts, to_micros(weight));
        }
    }

    #[inline]
    pub fn apply(&mut self, origin: NodeId, entity: EntityId, weight: f64, ts: i64) {
        let slot = self.slot_for_write(entity);
        self.apply_at(slot, origin, weight, ts);
    }

    /// Applies a run of one origin's events in order. Same result as `apply` one by one,
    /// but it resolves every slot first, then prefetches the states a few events ahead.
    pub fn apply_run(&mut self, origin: NodeId, run: &[(EntityId, f64, i64)]) {
        let slots: Vec<usize> = run.iter().map(|r| self.slot_for_write(r.0)).collect();
        for (i, &(_, weight, ts)) in run.iter().enumerate() {
            if let Some(&ahead) = slots.get(i + PREFETCH_AHEAD) {
                self.prefetch_slot(ahead);
            }
            if let Some(&near) = slots.get(i + PREFETCH_AHEAD / 2)
                && let Some(w) = self.window_sets.get(near)
            {
                w.prefetch_buckets();
            }
            self.apply_at(slots[i], origin, weight, ts);
        }
    }

    #[inline]
    fn prefetch_slot(&self, slot: usize) {
        match &self.states {
            DecayStates::Exp(v) => {
                if let Some(s) = v.get(slot) {
                    prefetch(s);
                }
            }
            DecayStates::Linear(v) => {
                if let Some(s) = v.get(slot) {
                    prefetch(s);
                }
            }
        }
        if let Some(w) = self.window_sets.get(slot) {
            prefetch(w);
        }
    }

    /// The decayed score at `at`; `None` when a linear signal no longer keeps that history.
    #[inline]
    pub fn score(&self, entity: EntityId, at: i64) -> Option<f64> {
        let Some(slot) = self.slots.find(entity) else {
            return Some(0.0);
        };
        match (&self.states, self.decay) {
            (DecayStates::Exp(v), Decay::Exp(h)) => Some(v[slot].read(at, h)),
            (DecayStates::Linear(v), Decay::Linear(l)) => v[slot].read(at, l),
            _ => Some(0.0),
        }
    }

    /// `None` when the window needs history that was dropped.
    pub fn window(&self, entity: EntityId, window: Window, at: i64) -> Option<WindowReading> {
        match self
            .slots
            .find(entity)
            .and_then(|s| self.window_sets.get(s))
        {
            Some(w) => w.read(&self.windows, window, at),
            None => Some(WindowReading::default()),
        }
    }

    pub fn has_window(&self, window: Window) -> bool {
        self.windows.contains(&window)
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    pub fn entity_count(&self) -> usize {
        self.slots.len()
    }
}
