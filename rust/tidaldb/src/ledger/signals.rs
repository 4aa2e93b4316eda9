//! The materialized state of one signal: per-entity decay state and windows.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::windows::{WindowReading, WindowSet, to_micros};
use crate::crdt::{CrdtSignalState, HalfLife, LinearState};
use crate::schema::{DecaySpec, EntityId, NodeId, SignalDef, Window};

/// The per-entity decay state; its variant follows the signal's [`DecaySpec`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DecayState {
    Exp(CrdtSignalState),
    Linear(LinearState),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntityState {
    pub decay: DecayState,
    /// Boxed so that signals without windows pay one pointer.
    pub windows: Option<Box<WindowSet>>,
}

/// How this signal's scores fall; precomputed from the schema once.
#[derive(Clone, Copy, Debug)]
enum Decay {
    Exp(HalfLife),
    Linear(i64),
}

#[derive(Clone, Debug)]
pub struct SignalLedger {
    decay: Decay,
    windows: Vec<Window>,
    pub(crate) entities: FxHashMap<EntityId, EntityState>,
}

impl SignalLedger {
    pub fn new(def: &SignalDef) -> Self {
        let decay = match def.decay {
            DecaySpec::Exponential { half_life } => {
                Decay::Exp(HalfLife(half_life.as_nanos() as f64))
            }
            DecaySpec::Permanent => Decay::Exp(HalfLife(f64::INFINITY)),
            DecaySpec::Linear { lifetime } => Decay::Linear(lifetime.as_nanos() as i64),
        };
        SignalLedger {
            decay,
            windows: def.windows.clone(),
            entities: FxHashMap::default(),
        }
    }

    /// Rebuilds a signal's state from a snapshot.
    pub fn with_entities(def: &SignalDef, entities: FxHashMap<EntityId, EntityState>) -> Self {
        SignalLedger {
            entities,
            ..SignalLedger::new(def)
        }
    }

    #[inline]
    pub fn apply(&mut self, origin: NodeId, entity: EntityId, weight: f64, ts: i64) {
        let decay = self.decay;
        let windows = &self.windows;
        let state = self
            .entities
            .entry(entity)
            .or_insert_with(|| fresh_state(decay, windows));
        match (&mut state.decay, decay) {
            (DecayState::Exp(s), Decay::Exp(h)) => s.add(origin, weight, ts, h),
            (DecayState::Linear(s), Decay::Linear(l)) => s.add(weight, ts, l),
            // The variant is chosen from the same `decay`, so the pairs always match.
            _ => {}
        }
        if let Some(w) = state.windows.as_deref_mut() {
            w.add(windows, ts, to_micros(weight));
        }
    }

    /// The decayed score at `at`; `None` when a linear signal no longer keeps that history.
    #[inline]
    pub fn score(&self, entity: EntityId, at: i64) -> Option<f64> {
        let Some(state) = self.entities.get(&entity) else {
            return Some(0.0);
        };
        match (&state.decay, self.decay) {
            (DecayState::Exp(s), Decay::Exp(h)) => Some(s.read(at, h)),
            (DecayState::Linear(s), Decay::Linear(l)) => s.read(at, l),
            _ => Some(0.0),
        }
    }

    /// `None` when the window needs history that was dropped.
    pub fn window(&self, entity: EntityId, window: Window, at: i64) -> Option<WindowReading> {
        match self
            .entities
            .get(&entity)
            .and_then(|s| s.windows.as_deref())
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
        self.entities.len()
    }
}

fn fresh_state(decay: Decay, windows: &[Window]) -> EntityState {
    EntityState {
        decay: match decay {
            Decay::Exp(_) => DecayState::Exp(CrdtSignalState::default()),
            Decay::Linear(_) => DecayState::Linear(LinearState::default()),
        },
        windows: (!windows.is_empty()).then(|| Box::new(WindowSet::new(windows))),
    }
}
