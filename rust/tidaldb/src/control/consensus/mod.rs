//! The control plane replicated by Raft.
//!
//! Each voter holds a [`ControlPlane`](super::ControlPlane) and a raft-rs `RawNode`
//! over the plane's command log. Commands change the plane only once Raft has committed
//! them, and every voter applies the same committed commands in the same order, as of the
//! time their proposer stamped on them, so every voter's plane is the same. Failover is a
//! command too: only the Raft leader proposes promotions, from the heartbeats it hears, so
//! a control plane cut off from the majority can no longer promote anyone.
//!
//! The voter is sans-IO, like the data plane's node: the driver hands it ticks, messages
//! from other voters, proposals and heartbeats, and carries out what it returns (records
//! to persist first, then messages to send). The simulator drives it on virtual time over
//! its seeded network; the runtime on the wall clock over TCP.

mod log;
mod membership;
mod proposal;
mod raft_logger;
mod store;
mod voter;

pub use log::{ControlLog, ControlRecord, StoredEntry, StoredSnapshot};
pub use proposal::{Proposal, ProposalId};
pub use store::{CONTROL_LOG_FILE, ControlStore};
pub use voter::{ControlVoter, VoterOutputs, VoterSpec};

use std::path::PathBuf;

use crate::error::TidalError;

/// Damage found in the control plane's Raft log; `index` is the entry's place in it.
pub(crate) fn corrupt(index: u64, detail: String) -> TidalError {
    TidalError::Corruption {
        path: PathBuf::from("control-plane raft log"),
        offset: index,
        detail,
    }
}

/// A Raft message as it travels between voters: raft-rs's protobuf encoding.
pub fn encode_message(msg: &raft::prelude::Message) -> crate::error::Result<Vec<u8>> {
    use protobuf::Message as _;
    msg.write_to_bytes()
        .map_err(|e| TidalError::InvalidArgument {
            name: "raft message",
            reason: format!("it does not encode: {e}"),
        })
}

/// A Raft message from the wire; damaged bytes are refused, never half-read.
pub fn decode_message(bytes: &[u8]) -> crate::error::Result<raft::prelude::Message> {
    use protobuf::Message as _;
    raft::prelude::Message::parse_from_bytes(bytes).map_err(|e| TidalError::InvalidArgument {
        name: "raft message",
        reason: format!("it does not decode: {e}"),
    })
}
