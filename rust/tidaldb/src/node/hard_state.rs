//! The part of a node's state that is not derived from its log: the last term it knew,
//! the members of its replica group, and whether it stopped serving. A restart needs all
//! three to rejoin as it left: the term fences messages from deposed leaders, the
//! membership says whom to ship to (a migration may have added or removed peers since the
//! node was configured), and a migrated-away source must not take writes again, since
//! the migration already counted everything it had acknowledged.

use serde::{Deserialize, Serialize};

use super::PeerAddr;

/// The encoding of a hard state without the serving flag, which releases before it wrote
/// and every node that never stopped serving still writes.
const TERM_AND_PEERS: u8 = 1;
/// The encoding with the serving flag, written only once a node stopped serving: a
/// release before the flag would read the file's first fields and ignore the rest, and
/// take writes again; it refuses a version it does not know instead.
const WITH_SERVING_FLAG: u8 = 2;

#[derive(Serialize, Deserialize)]
struct TermAndPeers {
    term: u64,
    peers: Vec<PeerAddr>,
}

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

impl HardState {
    /// The encoding a driver stores (postcard), and its version, which the file keeps
    /// beside it.
    pub fn encode(&self) -> Result<(u8, Vec<u8>), String> {
        let encoded = if self.stopped_serving {
            postcard::to_stdvec(self).map(|bytes| (WITH_SERVING_FLAG, bytes))
        } else {
            let old = TermAndPeers {
                term: self.term,
                peers: self.peers.clone(),
            };
            postcard::to_stdvec(&old).map(|bytes| (TERM_AND_PEERS, bytes))
        };
        encoded.map_err(|e| format!("the node's hard state does not encode: {e}"))
    }

    /// The hard state `encode` stored as `version`; every byte must belong to it.
    pub fn decode(version: u8, payload: &[u8]) -> Result<HardState, String> {
        match version {
            TERM_AND_PEERS => whole::<TermAndPeers>(payload).map(|old| HardState {
                term: old.term,
                peers: old.peers,
                stopped_serving: false,
            }),
            WITH_SERVING_FLAG => whole::<HardState>(payload),
            v => Err(format!("unknown hard-state version {v}")),
        }
    }
}

/// `T` decoded from all of `payload`: a byte left over is an error too.
fn whole<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} bytes past its end", rest.len())),
        Err(e) => Err(format!("does not decode: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{NodeId, RegionId};

    fn state(stopped_serving: bool) -> HardState {
        HardState {
            term: 9,
            peers: vec![PeerAddr::new(NodeId(4), RegionId(2))],
            stopped_serving,
        }
    }

    #[test]
    fn a_serving_node_is_stored_as_releases_before_the_flag_stored_it() {
        let (version, bytes) = state(false).encode().unwrap();
        assert_eq!(version, TERM_AND_PEERS);
        let before = TermAndPeers {
            term: 9,
            peers: state(false).peers,
        };
        assert_eq!(bytes, postcard::to_stdvec(&before).unwrap());
        assert_eq!(HardState::decode(version, &bytes).unwrap(), state(false));
    }

    #[test]
    fn a_stopped_node_is_stored_in_a_version_older_releases_refuse() {
        let (version, bytes) = state(true).encode().unwrap();
        assert_eq!(version, WITH_SERVING_FLAG);
        assert_eq!(HardState::decode(version, &bytes).unwrap(), state(true));
        // Neither a byte too many nor one too few, nor the other version, passes.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(HardState::decode(version, &longer).is_err());
        assert!(HardState::decode(version, &bytes[..bytes.len() - 1]).is_err());
        assert!(HardState::decode(TERM_AND_PEERS, &bytes).is_err());
        assert!(HardState::decode(3, &bytes).is_err());
    }
}
