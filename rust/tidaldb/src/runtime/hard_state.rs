//! The node's hard state, encoded for the file the log keeps beside it
//! ([`crate::wal::read_hard_state`]): [`HardState::encode`]'s bytes under the file's
//! checksum, its version in the file's header.

use std::path::Path;

use crate::error::{Result, TidalError};
use crate::node::HardState;
use crate::wal::{RealFs, hard_state_corrupt, read_hard_state, write_hard_state};

/// The hard state last stored in `wal_dir`, or `None` if the node never stored one.
pub(super) fn read(wal_dir: &Path) -> Result<Option<HardState>> {
    let Some((version, payload)) = read_hard_state(&RealFs, wal_dir)? else {
        return Ok(None);
    };
    HardState::decode(version, &payload)
        .map(Some)
        .map_err(|e| hard_state_corrupt(wal_dir, 13, &e))
}

/// Stores `state` in `wal_dir`, replacing the old one atomically and durably.
pub(super) fn write(wal_dir: &Path, state: &HardState) -> Result<()> {
    let (version, payload) = state.encode().map_err(TidalError::Unavailable)?;
    write_hard_state(&RealFs, wal_dir, (version, &payload))
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
}
