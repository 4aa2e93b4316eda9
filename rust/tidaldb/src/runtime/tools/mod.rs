//! The library half of the operator tools `tidaldb inspect`, `tidaldb verify` and
//! `tidaldb export`: the command-line binary is a thin layer over these functions.
//!
//! All three read a data directory that no process has open, and none of them writes
//! anything into it: no lock is taken (a lock file left by a killed process is ignored),
//! a torn tail is reported but never cut, and no snapshot is written. They recover each
//! tenant's log with the database's own recovery code over a read-only storage
//! (`wal::offline`), so what they report is what an open would find.
//!
//! Because they take no lock, they also run beside a process that has the directory
//! open; their report is then a moment's view, and an append in flight at that moment
//! shows as a torn tail.

mod export;
#[cfg(feature = "parquet")]
mod export_parquet;
mod inspect;
mod verify;

pub use export::{EVENT_COLUMNS, ExportFormat, ExportWhat, ROW_GROUP_ROWS, SCORE_COLUMNS, export};
pub use inspect::{
    Inspection, OriginSeq, SegmentInfo, SignalEntities, SignalInfo, SnapshotInfo, TenantInspection,
    inspect,
};
pub use verify::{Damage, DamageKind, VerifyReport, verify};

use std::fs;
use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::layout::{
    SCHEMA_FILE, TenantDirEntry, check_data_dir, default_wal_dir, read_stored_schema,
    scan_tenant_dirs, tenants_root,
};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::Schema;
use crate::tenancy::{TenantConfig, tenant_wal_dir};

/// Refuses a path that is not a tidaldb data directory, with a message saying what was
/// expected, before anything else looks at it.
fn check_is_data_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(TidalError::InvalidArgument {
                name: "data_dir",
                reason: format!(
                    "{} is a file, not a tidaldb data directory; give the directory the \
                     database was opened with",
                    dir.display()
                ),
            });
        }
        Err(e) if e.kind() == IoKind::NotFound => {
            return Err(TidalError::NotFound(format!(
                "the data directory {} does not exist; give the directory the database \
                 was opened with",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(TidalError::Io {
                context: format!("inspecting {}", dir.display()),
                source: e,
            });
        }
    }
    // The same refusals an open makes (symbolic links inside the directory).
    check_data_dir(dir)?;
    let holds = |name: &Path| fs::symlink_metadata(name).is_ok();
    if !holds(&dir.join(SCHEMA_FILE)) && !holds(&default_wal_dir(dir)) {
        return Err(TidalError::InvalidArgument {
            name: "data_dir",
            reason: format!(
                "{} is not a tidaldb data directory: it has neither {SCHEMA_FILE} nor wal/; \
                 give the directory the database was opened with",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// The schema recorded in the directory, validated as the builder would validate it:
/// a hand-edited or damaged file must not reach the ledger.
fn stored_schema(dir: &Path) -> Result<Option<Arc<Schema>>> {
    let Some(stored) = read_stored_schema(dir)? else {
        return Ok(None);
    };
    let mut builder = Schema::builder();
    for def in stored.signals() {
        let mut signal = builder.signal(&def.name, def.kind, def.decay);
        if !def.windows.is_empty() {
            signal = signal.windows(&def.windows);
        }
        builder = signal.velocity(def.velocity).add();
    }
    let invalid = |detail: String| TidalError::Corruption {
        path: dir.join(SCHEMA_FILE),
        offset: 0,
        detail,
    };
    let rebuilt = builder
        .build()
        .map_err(|e| invalid(format!("{SCHEMA_FILE} holds an invalid schema: {e}")))?;
    if rebuilt != stored {
        return Err(invalid(format!(
            "{SCHEMA_FILE} lists windows out of order or twice; it was not written by tidaldb"
        )));
    }
    Ok(Some(Arc::new(rebuilt)))
}

/// The schema, for the tools that decode events by it.
fn require_schema(dir: &Path) -> Result<Arc<Schema>> {
    stored_schema(dir)?.ok_or_else(|| {
        TidalError::NotFound(format!(
            "{} has no {SCHEMA_FILE}, so its signals cannot be named; open the directory \
             once with its schema (TidalDb::builder().with_schema(..)), which records it",
            dir.display()
        ))
    })
}

/// One tenant of a data directory: the default one (no config of its own) or a
/// registered one.
#[derive(Clone, Debug)]
struct TenantDir {
    id: TenantId,
    config: Option<TenantConfig>,
    wal_dir: PathBuf,
}

/// The default tenant, then every registered tenant in id order. A bad entry under
/// `tenants/` fails the call, as it fails an open; `verify` reports such entries one by
/// one instead. A registration interrupted before its commit point holds no data and is
/// left out (an open removes it).
fn tenants(dir: &Path) -> Result<Vec<TenantDir>> {
    let mut out = vec![TenantDir {
        id: TenantId::DEFAULT,
        config: None,
        wal_dir: tenant_wal_dir(dir, TenantId::DEFAULT),
    }];
    for entry in scan_tenant_dirs(dir)? {
        if let TenantDirEntry::Registered(cfg) = entry? {
            out.push(TenantDir {
                id: cfg.tenant_id,
                wal_dir: tenant_wal_dir(dir, cfg.tenant_id),
                config: Some(cfg),
            });
        }
    }
    Ok(out)
}

/// The tenant `wanted` (the default one for `None`), or `UnknownTenant`.
fn tenant(dir: &Path, wanted: Option<TenantId>) -> Result<TenantDir> {
    let id = wanted.unwrap_or(TenantId::DEFAULT);
    tenants(dir)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(TidalError::UnknownTenant(id.0))
}

/// Every directory under `tenants/` named by a tenant id, whatever its config holds:
/// `verify` checks their logs even when a config is damaged.
fn tenant_dirs_by_name(dir: &Path) -> Result<Vec<(TenantId, PathBuf)>> {
    let root = tenants_root(dir);
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), IoKind::NotFound | IoKind::NotADirectory) => {
            return Ok(Vec::new());
        }
        Err(e) => {
            return Err(TidalError::Io {
                context: format!("listing {}", root.display()),
                source: e,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(TidalError::io(format!("listing {}", root.display())))?;
        let id = entry
            .file_name()
            .to_str()
            .and_then(super::layout::parse_tenant_dir_name);
        if let Some(id) = id {
            out.push((id, tenant_wal_dir(dir, id)));
        }
    }
    out.sort();
    Ok(out)
}

/// A file's name for a report: its last component.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}
