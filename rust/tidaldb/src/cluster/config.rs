//! The cluster's timings and write-concern policy, shared by both drivers.

use std::time::Duration;

use crate::node::WriteConcern;

/// Protocol timings: virtual time in the simulator, the wall clock in the runtime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    /// The control plane promotes a new leader after this much leader silence.
    pub election_timeout: Duration,
    pub peer_timeout: Duration,
    pub repair_after: Duration,
    /// How often nodes and the control plane are ticked.
    pub tick: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            peer_timeout: Duration::from_millis(250),
            repair_after: Duration::from_millis(200),
            tick: Duration::from_millis(10),
        }
    }
}

/// A write concern counted in the replica group that serves each write, so that it
/// means the same for a tenant kept in one region as for one kept in every region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupConcern {
    /// A majority of the group's replicas, the writer included: ⌊n/2⌋ others.
    Majority,
    /// Every other replica of the group.
    All,
}

impl GroupConcern {
    /// The concern for a group in which the writer has `peers` other replicas.
    pub fn for_peers(self, peers: usize) -> WriteConcern {
        let others = match self {
            GroupConcern::Majority => peers.div_ceil(2),
            GroupConcern::All => peers,
        };
        match u8::try_from(others) {
            Ok(0) => WriteConcern::Local,
            Ok(k) => WriteConcern::Replicated(k),
            Err(_) => WriteConcern::Replicated(u8::MAX),
        }
    }
}
