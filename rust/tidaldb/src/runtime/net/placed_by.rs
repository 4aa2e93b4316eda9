//! `{replica_dir}/PLACED_BY`: which of the tenant's migrations placed a replica on this
//! process, and from which source process, kept beside its data (see
//! [`HostOrder::placed_by`](super::placement::HostOrder::placed_by)). The plane keeps only
//! a tenant's latest migration, so once a later one has begun, only the replica itself
//! still knows which migration brought it. No file: placed at registration.

use std::path::Path;

use crate::error::{Result, TidalError};
use crate::runtime::layout::write_atomically;
use crate::schema::NodeId;

const FILE: &str = "PLACED_BY";

/// The migration that placed a replica, and the process of that migration's source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// 0: placed at registration.
    pub migration: u64,
    pub source: Option<NodeId>,
}

/// The placement kept in `dir`, if a migration placed the replica there.
pub fn read(dir: &Path) -> Result<Option<Placement>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TidalError::io(format!("reading {}", path.display()))(e)),
    };
    let corrupt = || TidalError::Corruption {
        path: path.clone(),
        offset: 0,
        detail: format!("not a migration and a source process: {text:?}"),
    };
    let mut fields = text.split_whitespace();
    let migration = fields
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(corrupt)?;
    let source = match fields.next() {
        None => None,
        Some(s) => Some(NodeId(s.parse().map_err(|_| corrupt())?)),
    };
    match fields.next() {
        None => Ok(Some(Placement { migration, source })),
        Some(_) => Err(corrupt()),
    }
}

/// Keeps `placement` in `dir`, durably, unless it is kept already.
pub fn write(dir: &Path, placement: Placement) -> Result<()> {
    if read(dir)? == Some(placement) {
        return Ok(());
    }
    let text = match placement.source {
        Some(source) => format!("{} {}\n", placement.migration, source.0),
        None => format!("{}\n", placement.migration),
    };
    write_atomically(dir, FILE, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_placement_reads_back_and_garbage_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        for placement in [
            Placement {
                migration: 3,
                source: Some(NodeId(2)),
            },
            Placement {
                migration: 4,
                source: None,
            },
        ] {
            write(dir.path(), placement).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(placement));
        }
        for garbage in ["three", "3 two", "3 2 1", ""] {
            std::fs::write(dir.path().join(FILE), garbage).unwrap();
            assert!(
                matches!(read(dir.path()), Err(TidalError::Corruption { .. })),
                "{garbage:?}"
            );
        }
    }
}
