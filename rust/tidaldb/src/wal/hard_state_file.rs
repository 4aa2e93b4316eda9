//! The node's hard state on disk: `{wal_dir}/HARDSTATE`, beside the log it belongs to.
//! The log stores it as opaque bytes (what they mean is the node's business); each driver
//! encodes them.
//!
//! The file is small and rewritten whole on every change of term or membership: written
//! to a temporary name, synced, renamed over the old one and the directory synced, so a
//! crash leaves either the old state or the new one, never a mix. A checksum guards it,
//! because a silently wrong term would let a deposed leader's messages through.

use std::path::{Path, PathBuf};

use super::segment::sync_dir_on;
use super::storage::Storage;
use crate::error::{Result, TidalError};

const FILE: &str = "HARDSTATE";
const MAGIC: &[u8; 4] = b"TDHS";
/// Magic, the payload's version (its encoder's, which decodes it), then the crc32c and
/// length of the payload.
const HEADER: usize = 4 + 1 + 4 + 4;

pub fn hard_state_path(wal_dir: &Path) -> PathBuf {
    wal_dir.join(FILE)
}

/// The error for a hard-state file whose bytes cannot be trusted.
pub fn hard_state_corrupt(wal_dir: &Path, offset: u64, detail: &str) -> TidalError {
    TidalError::Corruption {
        path: hard_state_path(wal_dir),
        offset,
        detail: format!("{detail}; the node's term and membership cannot be trusted"),
    }
}

/// The payload last stored in `wal_dir` and its version, verified, or `None` if none was
/// ever stored.
pub fn read_hard_state(fs: &dyn Storage, wal_dir: &Path) -> Result<Option<(u8, Vec<u8>)>> {
    let path = hard_state_path(wal_dir);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TidalError::io(format!("reading {}", path.display()))(e)),
    };
    let corrupt = |offset: u64, detail: &str| hard_state_corrupt(wal_dir, offset, detail);
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(corrupt(0, "not a hard-state file (bad magic or too short)"));
    }
    let crc = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    let len = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]) as usize;
    let payload = &bytes[HEADER..];
    if payload.len() != len || crc32c::crc32c(payload) != crc {
        return Err(corrupt(HEADER as u64, "checksum or length mismatch"));
    }
    Ok(Some((bytes[4], payload.to_vec())))
}

/// Stores `payload` of `version` in `wal_dir`, replacing the old one atomically and
/// durably.
pub fn write_hard_state(
    fs: &dyn Storage,
    wal_dir: &Path,
    (version, payload): (u8, &[u8]),
) -> Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        TidalError::Unavailable("the node's hard state is larger than 4 GiB".into())
    })?;
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(version);
    bytes.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(payload);
    let tmp = wal_dir.join(format!("{FILE}.tmp"));
    let target = hard_state_path(wal_dir);
    fs.create(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync()))
        .map_err(TidalError::io(format!("writing {}", tmp.display())))?;
    fs.rename(&tmp, &target).map_err(TidalError::io(format!(
        "renaming {} to {}",
        tmp.display(),
        target.display()
    )))?;
    sync_dir_on(fs, wal_dir)
}
