//! `{replica_dir}/PLACED_BY`: the number of the tenant's migration that placed a replica
//! on this process, kept beside its data (see
//! [`HostOrder::placed_by`](super::placement::HostOrder::placed_by)). The plane keeps only
//! a tenant's latest migration, so once a later one has begun, only the replica itself
//! still knows which migration brought it. No file: placed at registration (0).

use std::path::Path;

use crate::error::{Result, TidalError};
use crate::runtime::layout::write_atomically;

const FILE: &str = "PLACED_BY";

/// The number kept in `dir`, if a migration placed the replica there.
pub fn read(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TidalError::io(format!("reading {}", path.display()))(e)),
    };
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| TidalError::Corruption {
            path,
            offset: 0,
            detail: format!("not a migration number ({e}): {text:?}"),
        })
}

/// Keeps `migration` in `dir`, durably, unless the same number is kept already.
pub fn write(dir: &Path, migration: u64) -> Result<()> {
    if read(dir)? == Some(migration) {
        return Ok(());
    }
    write_atomically(dir, FILE, format!("{migration}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_number_reads_back_and_garbage_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), 3).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(3));
        std::fs::write(dir.path().join(FILE), "three").unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(TidalError::Corruption { .. })
        ));
    }
}
