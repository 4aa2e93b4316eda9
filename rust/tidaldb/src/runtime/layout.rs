//! Where a data directory keeps things, and guarding it against a second opener.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Result, TidalError};
use crate::schema::Schema;
use crate::wal;

/// The default tenant's log: `{data_dir}/wal/`.
pub fn default_wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

/// Holds an exclusive lock on `{data_dir}/LOCK` for as long as the database is open, so
/// that two processes never append to the same log.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir)
            .map_err(TidalError::io(format!("creating {}", data_dir.display())))?;
        let path = data_dir.join("LOCK");
        let file =
            File::create(&path).map_err(TidalError::io(format!("creating {}", path.display())))?;
        file.try_lock().map_err(|_| {
            TidalError::Unavailable(format!(
                "{} is open in another process; close it there first",
                data_dir.display()
            ))
        })?;
        Ok(DirLock { _file: file })
    }
}

/// Checks `schema` against the one the directory was created with, or records it.
pub fn check_or_record_schema(data_dir: &Path, schema: &Schema) -> Result<()> {
    let path = data_dir.join("schema.json");
    match fs::read(&path) {
        Ok(bytes) => {
            let stored: Schema =
                serde_json::from_slice(&bytes).map_err(|e| TidalError::Corruption {
                    path: path.clone(),
                    offset: e.column() as u64,
                    detail: format!("schema.json does not parse: {e}"),
                })?;
            if &stored != schema {
                return Err(TidalError::SchemaMismatch {
                    path: data_dir.to_path_buf(),
                    detail: describe_difference(&stored, schema),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let json = serde_json::to_vec_pretty(schema)
                .map_err(|e| TidalError::InvalidSchema(e.to_string()))?;
            let tmp = data_dir.join("schema.json.tmp");
            fs::write(&tmp, json)
                .and_then(|_| File::open(&tmp)?.sync_all())
                .and_then(|_| fs::rename(&tmp, &path))
                .map_err(TidalError::io(format!("writing {}", path.display())))?;
            wal::sync_dir(data_dir)
        }
        Err(e) => Err(TidalError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

fn describe_difference(stored: &Schema, given: &Schema) -> String {
    let (a, b) = (stored.signals(), given.signals());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return format!("signal #{i} was {x:?}, now {y:?}");
        }
    }
    format!(
        "it had {} signals, the given schema has {}",
        a.len(),
        b.len()
    )
}
