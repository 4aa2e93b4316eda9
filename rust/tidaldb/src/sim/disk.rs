//! A simulated disk for one node: a snapshot, the synced log after it, and the tail that
//! was written but not yet synced. A crash may lose that tail, as a real power cut would.

use crate::event::Event;
use crate::node::HardState;

#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// The state bytes of the last installed snapshot (`wal::snapshot::encode_state`).
    pub snapshot: Option<Vec<u8>>,
    pub synced: Vec<Event>,
    pub unsynced: Vec<Event>,
    /// The last term and membership the node persisted.
    pub hard_state: HardState,
}

impl SimDisk {
    pub fn append(&mut self, events: &[Event]) {
        self.unsynced.extend_from_slice(events);
    }

    pub fn sync(&mut self) {
        self.synced.append(&mut self.unsynced);
    }

    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Stores a snapshot of the node's whole state, durably. The log is kept: a restart
    /// replays it over the snapshot (what the snapshot covers is skipped as duplicate),
    /// and the node's own events in it are what its peers may still need.
    pub fn install_snapshot(&mut self, state: Vec<u8>) {
        self.snapshot = Some(state);
        self.sync();
    }

    /// A crash: the unsynced tail survives only if `lose_unsynced` is false (the process
    /// died but the machine's page cache was written out).
    pub fn crash(&mut self, lose_unsynced: bool) -> usize {
        let lost = if lose_unsynced {
            self.unsynced.len()
        } else {
            0
        };
        if lose_unsynced {
            self.unsynced.clear();
        } else {
            self.sync();
        }
        lost
    }
}
