//! What a normal Raft entry of the control plane carries: one command, the time it was
//! proposed (every voter applies it as of that time, so all reach the same state), and who
//! proposed it (so that voter can tell its caller the outcome).

use serde::{Deserialize, Serialize};

use crate::control::LoggedCommand;
use crate::error::{Result, TidalError};

/// Names one proposal: the voter that made it, which run of that voter (a restarted voter
/// counts its proposals from zero again, and must not mistake a committed proposal of its
/// earlier run for one of its own), and its sequence number in that run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    pub voter: u64,
    pub run: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub logged: LoggedCommand,
}

impl Proposal {
    pub fn encode(&self) -> Result<Vec<u8>> {
        postcard::to_stdvec(self).map_err(|e| TidalError::InvalidArgument {
            name: "command",
            reason: format!("it does not encode: {e}"),
        })
    }

    /// `index` is the entry's place in the Raft log, for the error.
    pub fn decode(bytes: &[u8], index: u64) -> Result<Self> {
        postcard::from_bytes(bytes)
            .map_err(|e| super::corrupt(index, format!("an entry does not decode: {e}")))
    }
}
