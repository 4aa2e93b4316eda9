//! A simulated disk for one node: a snapshot, the synced log after it, and the tail that
//! was written but not yet synced. A crash may lose that tail, as a real power cut would.

use rustc_hash::FxHashMap;

use crate::event::Event;
use crate::node::HardState;
use crate::schema::NodeId;

#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// The state bytes of the last installed snapshot (`wal::snapshot::encode_state`).
    pub snapshot: Option<Vec<u8>>,
    pub synced: Vec<Event>,
    pub unsynced: Vec<Event>,
    /// The last term and membership the node persisted.
    pub hard_state: HardState,
    /// Where each origin's events sit in `synced`, in seq order, for reading them back.
    by_origin: OriginIndex,
}

/// Positions in `synced` per origin, extended lazily up to `indexed`.
#[derive(Clone, Debug, Default)]
struct OriginIndex {
    indexed: usize,
    positions: FxHashMap<NodeId, Vec<usize>>,
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

    /// The logged events of `origin` with seq in `after+1 ..= upto`, consecutive from
    /// `after + 1`, as far as the log holds them: the node reads back what has left its
    /// in-memory log. The simulated log is never collected, so only events the node
    /// received in a snapshot (never logged) are missing.
    pub fn read_origin_range(&mut self, origin: NodeId, after: u64, upto: u64) -> Vec<Event> {
        let index = &mut self.by_origin;
        if index.indexed > self.synced.len() {
            *index = OriginIndex::default();
        }
        for (at, e) in self.synced.iter().enumerate().skip(index.indexed) {
            index.positions.entry(e.id.origin).or_default().push(at);
        }
        index.indexed = self.synced.len();
        let synced = &self.synced;
        let logged = index.positions.get(&origin).map_or(&[][..], Vec::as_slice);
        let from = logged.partition_point(|&at| synced[at].id.seq <= after);
        let tail = (self.unsynced.iter()).filter(|e| e.id.origin == origin && e.id.seq > after);
        let events = logged[from..].iter().map(|&at| &synced[at]).chain(tail);
        (after + 1..=upto)
            .zip(events)
            .take_while(|(seq, e)| e.id.seq == *seq)
            .map(|(_, e)| *e)
            .collect()
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
