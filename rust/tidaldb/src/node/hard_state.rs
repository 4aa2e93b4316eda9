//! The part of a node's state that is not derived from its log: the last term it knew,
//! the members of its replica group, and whether it stopped serving. A restart needs all
//! three to rejoin as it left: the term fences messages from deposed leaders, the
//! membership says whom to ship to (a migration may have added or removed peers since the
//! node was configured), and a migrated-away source must not take writes again, since
//! the migration already counted everything it had acknowledged.

use serde::{Deserialize, Serialize};

use super::PeerAddr;

/// What a driver persists whenever [`Outputs::hard_state`](super::Outputs::hard_state)
/// carries a new value, and hands back in [`Input::Rejoin`](super::Input::Rejoin) after a
/// restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    /// The other replicas of the node's group, in the order they joined.
    pub peers: Vec<PeerAddr>,
    /// Set by [`ControlCommand::StopServing`](super::ControlCommand::StopServing).
    pub stopped_serving: bool,
}
