//! Reading version 1 snapshots (written before replication): no client table, and decay
//! partials without their `through` progress marker. They read as partials whose progress
//! is unknown (0), which only matters to `CrdtSignalState::merge`; reads are unchanged.

use serde::Deserialize;

use super::untimed_hides::UntimedHiddenSet;
use crate::crdt::{CrdtSignalState, ExpAccumulator, HlcTimestamp, LinearState, Partial, Seq48};
use crate::event::VersionVector;
use crate::ledger::{SignalParts, WindowSet};
use crate::schema::{EntityId, NodeId, Schema};

#[derive(Deserialize)]
struct PartialV1 {
    origin: NodeId,
    acc: ExpAccumulator,
}

#[derive(Deserialize)]
struct ExpStateV1 {
    partials: Vec<PartialV1>,
}

#[derive(Deserialize)]
struct SignalPartsV1 {
    keys: Vec<EntityId>,
    exp: Vec<ExpStateV1>,
    linear: Vec<LinearState>,
    window_sets: Vec<WindowSet>,
}

/// Field for field a version 1 snapshot body (postcard is positional).
#[derive(Deserialize)]
pub(super) struct SnapshotV1 {
    pub schema: Schema,
    pub vv: VersionVector,
    pub clock: HlcTimestamp,
    pub hidden: UntimedHiddenSet,
    signals: Vec<SignalPartsV1>,
}

impl SnapshotV1 {
    /// The signal parts in today's shape.
    pub fn take_signals(&mut self) -> Vec<SignalParts> {
        std::mem::take(&mut self.signals)
            .into_iter()
            .map(|s| SignalParts {
                keys: s.keys,
                exp: s
                    .exp
                    .into_iter()
                    .map(|state| {
                        CrdtSignalState::from_partials(state.partials.into_iter().map(|p| {
                            Partial {
                                origin: p.origin,
                                through: Seq48::default(),
                                acc: p.acc,
                            }
                        }))
                    })
                    .collect(),
                linear: s.linear,
                window_sets: s.window_sets,
            })
            .collect()
    }
}
