//! The node's hard state, encoded for the file the log keeps beside it
//! ([`crate::wal::read_hard_state`]): postcard, under the file's checksum.

use std::path::Path;

use crate::error::{Result, TidalError};
use crate::node::HardState;
use crate::wal::{RealFs, hard_state_corrupt, read_hard_state, write_hard_state};

/// The hard state last stored in `wal_dir`, or `None` if the node never stored one.
pub(super) fn read(wal_dir: &Path) -> Result<Option<HardState>> {
    let Some(payload) = read_hard_state(&RealFs, wal_dir)? else {
        return Ok(None);
    };
    decode(&payload)
        .map(Some)
        .map_err(|e| hard_state_corrupt(wal_dir, 13, &format!("does not decode: {e}")))
}

/// The hard state as releases before `stopped_serving` stored it. postcard has no field
/// names, so a file of theirs ends where the flag would begin.
#[derive(serde::Deserialize)]
struct TermAndPeers {
    term: u64,
    peers: Vec<crate::node::PeerAddr>,
}

/// A file of this release, or failing that one of the releases before it (a rolling
/// upgrade reopens those): every byte of the payload must be used either way, so a
/// truncated file of this release is not read as an older one by accident.
fn decode(payload: &[u8]) -> postcard::Result<HardState> {
    match postcard::take_from_bytes::<HardState>(payload) {
        Ok((state, [])) => Ok(state),
        Ok(_) => Err(postcard::Error::DeserializeBadEncoding),
        Err(current) => match postcard::take_from_bytes::<TermAndPeers>(payload) {
            Ok((old, [])) => Ok(HardState {
                term: old.term,
                peers: old.peers,
                stopped_serving: false,
            }),
            _ => Err(current),
        },
    }
}

/// Stores `state` in `wal_dir`, replacing the old one atomically and durably.
pub(super) fn write(wal_dir: &Path, state: &HardState) -> Result<()> {
    let payload = postcard::to_stdvec(state).map_err(|e| {
        TidalError::Unavailable(format!("could not encode the node's hard state: {e}"))
    })?;
    write_hard_state(&RealFs, wal_dir, &payload)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::node::PeerAddr;
    use crate::schema::{NodeId, RegionId};

    #[test]
    fn round_trips_and_refuses_a_flipped_bit() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let state = HardState {
            term: 7,
            peers: vec![PeerAddr::new(NodeId(2), RegionId(1))],
            stopped_serving: true,
        };
        write(dir.path(), &state).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state));
        let path = crate::wal::hard_state_path(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(TidalError::Corruption { .. })
        ));
    }

    #[test]
    fn reads_the_hard_state_of_releases_before_the_serving_flag() {
        #[derive(serde::Serialize)]
        struct Before {
            term: u64,
            peers: Vec<PeerAddr>,
        }
        let peers = vec![PeerAddr::new(NodeId(4), RegionId(2))];
        let old = postcard::to_stdvec(&Before {
            term: 9,
            peers: peers.clone(),
        })
        .unwrap();
        let want = HardState {
            term: 9,
            peers,
            stopped_serving: false,
        };
        assert_eq!(decode(&old).unwrap(), want);
        let current = postcard::to_stdvec(&HardState {
            stopped_serving: true,
            ..want.clone()
        })
        .unwrap();
        assert!(decode(&current).unwrap().stopped_serving);
        // Neither a byte too many nor one too few passes.
        let mut longer = current.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&old[..old.len() - 1]).is_err());
    }
}
