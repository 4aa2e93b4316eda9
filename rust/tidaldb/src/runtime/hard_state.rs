//! The node's hard state on disk: `{wal_dir}/HARDSTATE`, beside the log it belongs to.
//!
//! The file is small and rewritten whole on every change of term or membership: written
//! to a temporary name, synced, renamed over the old one and the directory synced, so a
//! crash leaves either the old state or the new one, never a mix. A checksum guards it,
//! because a silently wrong term would let a deposed leader's messages through.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, TidalError};
use crate::node::HardState;
use crate::wal::sync_dir;

const FILE: &str = "HARDSTATE";
const MAGIC: &[u8; 4] = b"TDHS";
const VERSION: u8 = 1;
/// Magic, version, then the crc32c and length of the payload.
const HEADER: usize = 4 + 1 + 4 + 4;

fn path_in(wal_dir: &Path) -> PathBuf {
    wal_dir.join(FILE)
}

/// The hard state last stored in `wal_dir`, or `None` if the node never stored one.
pub(super) fn read(wal_dir: &Path) -> Result<Option<HardState>> {
    let path = path_in(wal_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TidalError::io(format!("reading {}", path.display()))(e)),
    };
    let corrupt = |offset: u64, detail: &str| TidalError::Corruption {
        path: path.clone(),
        offset,
        detail: format!("{detail}; the node's term and membership cannot be trusted"),
    };
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(corrupt(0, "not a hard-state file (bad magic or too short)"));
    }
    if bytes[4] != VERSION {
        return Err(corrupt(
            4,
            &format!("unknown hard-state version {}", bytes[4]),
        ));
    }
    let crc = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    let len = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]) as usize;
    let payload = &bytes[HEADER..];
    if payload.len() != len || crc32c::crc32c(payload) != crc {
        return Err(corrupt(HEADER as u64, "checksum or length mismatch"));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|e| corrupt(HEADER as u64, &format!("does not decode: {e}")))
}

/// Stores `state` in `wal_dir`, replacing the old one atomically and durably.
pub(super) fn write(wal_dir: &Path, state: &HardState) -> Result<()> {
    let payload = postcard::to_stdvec(state).map_err(|e| {
        TidalError::Unavailable(format!("could not encode the node's hard state: {e}"))
    })?;
    let len = u32::try_from(payload.len()).map_err(|_| {
        TidalError::Unavailable("the node's hard state is larger than 4 GiB".into())
    })?;
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(VERSION);
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&payload);
    let tmp = wal_dir.join(format!("{FILE}.tmp"));
    let target = path_in(wal_dir);
    File::create(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .map_err(TidalError::io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, &target).map_err(TidalError::io(format!(
        "renaming {} to {}",
        tmp.display(),
        target.display()
    )))?;
    sync_dir(wal_dir)
}

#[cfg(test)]
mod tests {
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
        };
        write(dir.path(), &state).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state));
        let path = path_in(dir.path());
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
