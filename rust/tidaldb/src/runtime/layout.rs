//! Where a data directory keeps things, and guarding it against a second opener.
//!
//! ```text
//! {data_dir}/LOCK                      held while open
//! {data_dir}/schema.json
//! {data_dir}/wal/                      the default tenant's log
//! {data_dir}/tenants/{id}/tenant.json  a registered tenant's config
//! {data_dir}/tenants/{id}/wal/         its log
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};

use super::open_dirs::{OpenHere, is_open_here};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::Schema;
use crate::tenancy::{TenantConfig, tenant_wal_dir};
use crate::wal;

const LOCK_FILE: &str = "LOCK";
/// The schema the directory was created with, as JSON.
pub const SCHEMA_FILE: &str = "schema.json";
const SCHEMA_TMP: &str = "schema.json.tmp";

/// A registered tenant's config inside its directory.
pub const TENANT_CONFIG_FILE: &str = "tenant.json";
const TENANT_CONFIG_TMP: &str = "tenant.json.tmp";
/// A tenant's log directory inside its own: `tenants/{id}/wal/`.
const TENANT_WAL_DIR: &str = "wal";

/// The default tenant's log: `{data_dir}/wal/`.
pub fn default_wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

/// Holds an exclusive lock on `{data_dir}/LOCK` for as long as the database is open, so
/// that two processes never append to the same log.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    _here: OpenHere,
}

impl DirLock {
    /// Checks the directory, then takes its lock. Nothing is created or written before
    /// the checks pass: a refused open leaves the file system as it was.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        check_data_dir(data_dir)?;
        fs::create_dir_all(data_dir)
            .map_err(TidalError::io(format!("creating {}", data_dir.display())))?;
        let path = data_dir.join(LOCK_FILE);
        // Never truncated: the lock is the file's existence and its advisory lock.
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(TidalError::io(format!("creating {}", path.display())))?;
        if file.try_lock().is_err() {
            let reason = if is_open_here(data_dir) {
                "is open in this process already; close that database first, or keep using it"
            } else {
                "is open in another process; close it there first"
            };
            return Err(TidalError::Unavailable(format!(
                "{} {reason}",
                data_dir.display()
            )));
        }
        Ok(DirLock {
            _file: file,
            _here: OpenHere::register(data_dir),
        })
    }
}

/// Refuses a data directory path that cannot be one (empty, or an existing file), and any
/// symbolic link among the entries tidaldb keeps in it (see [`wal::refuse_link`]).
pub fn check_data_dir(data_dir: &Path) -> Result<()> {
    if data_dir.as_os_str().is_empty() {
        return Err(TidalError::InvalidArgument {
            name: "data_dir",
            reason: "the path is empty; give the directory to keep the database in \
                     (\".\" for the current one)"
                .into(),
        });
    }
    match fs::metadata(data_dir) {
        Ok(m) if !m.is_dir() => {
            return Err(TidalError::InvalidArgument {
                name: "data_dir",
                reason: format!("{} exists and is not a directory", data_dir.display()),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(TidalError::Io {
                context: format!("inspecting {}", data_dir.display()),
                source: e,
            });
        }
    }
    for name in [LOCK_FILE, SCHEMA_FILE, SCHEMA_TMP] {
        wal::refuse_link(&data_dir.join(name))?;
    }
    wal::refuse_link(&tenants_root(data_dir))?;
    wal::refuse_links_in_log_dir(&default_wal_dir(data_dir))
}

/// Whether `schema.json` holds the schema given, or is missing (a new directory, or one
/// whose file was lost: then the log's own schema fingerprint decides, see
/// [`wal::schema_fingerprint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredSchema {
    Same,
    Missing,
}

/// Checks `schema` against the one the directory was created with. Writes nothing: a
/// missing record is written by [`record_schema`] once the log has accepted the schema.
pub fn check_schema(data_dir: &Path, schema: &Schema) -> Result<StoredSchema> {
    match read_stored_schema(data_dir)? {
        Some(stored) if &stored != schema => Err(TidalError::SchemaMismatch {
            path: data_dir.to_path_buf(),
            detail: describe_difference(&stored, schema),
        }),
        Some(_) => Ok(StoredSchema::Same),
        None => Ok(StoredSchema::Missing),
    }
}

/// The schema recorded in `{data_dir}/schema.json`, or `None` when there is no such file.
/// The file is parsed, not validated: a caller compares it with a valid schema, or
/// validates it itself.
pub fn read_stored_schema(data_dir: &Path) -> Result<Option<Schema>> {
    let path = data_dir.join(SCHEMA_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TidalError::Corruption {
                path: path.clone(),
                offset: e.column() as u64,
                detail: format!("schema.json does not parse: {e}"),
            }),
        Err(e) if e.kind() == IoKind::NotFound => Ok(None),
        Err(e) => Err(TidalError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// Records `schema` as the directory's.
pub fn record_schema(data_dir: &Path, schema: &Schema) -> Result<()> {
    let json =
        serde_json::to_vec_pretty(schema).map_err(|e| TidalError::InvalidSchema(e.to_string()))?;
    write_atomically(data_dir, SCHEMA_FILE, &json)
}

fn describe_difference(stored: &Schema, given: &Schema) -> String {
    let (a, b) = (stored.signals(), given.signals());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return format!("signal #{i} was `{x}`, now `{y}`");
        }
    }
    format!(
        "it had {} signals, the given schema has {}",
        a.len(),
        b.len()
    )
}

/// Writes `{dir}/{name}` so that a crash leaves either the old file or the whole new one:
/// a temporary file, synced, renamed over it, and the directory synced.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    fs::write(&tmp, bytes)
        .and_then(|_| File::open(&tmp)?.sync_all())
        .and_then(|_| fs::rename(&tmp, &path))
        .map_err(TidalError::io(format!("writing {}", path.display())))?;
    wal::sync_dir(dir)
}

/// `{data_dir}/tenants/`, the parent of every registered tenant's directory.
pub fn tenants_root(data_dir: &Path) -> PathBuf {
    data_dir.join("tenants")
}

/// `{data_dir}/tenants/{id}/`: the tenant's WAL directory's parent, so the two can never
/// disagree.
pub fn tenant_dir(data_dir: &Path, tenant: TenantId) -> PathBuf {
    let wal = tenant_wal_dir(data_dir, tenant);
    wal.parent().map_or(wal.clone(), Path::to_path_buf)
}

/// The tenant a directory under `tenants/` belongs to, if its name is one `tenant_dir`
/// would write: a decimal `u64` without sign, spaces or leading zeros, and not 0 (the
/// default tenant lives in `{data_dir}/wal/`). Anything else was not put there by us.
pub fn parse_tenant_dir_name(name: &str) -> Option<TenantId> {
    let canonical =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && !name.starts_with('0');
    if !canonical {
        return None;
    }
    name.parse::<u64>().ok().map(TenantId)
}

fn corrupt(path: PathBuf, offset: u64, detail: String) -> TidalError {
    TidalError::Corruption {
        path,
        offset,
        detail,
    }
}

/// True when `path` is a directory itself, not a symbolic link to one: a link could point
/// a tenant's log outside the data directory.
fn is_real_dir(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.file_type().is_dir()),
        Err(e) if e.kind() == IoKind::NotFound => Ok(false),
        Err(e) => Err(TidalError::Io {
            context: format!("inspecting {}", path.display()),
            source: e,
        }),
    }
}

/// Reads the config of every registered tenant, in id order.
///
/// `tenants/` holds only what registration put there, so anything else (a name that is
/// not a canonical tenant id, a file, a symbolic link, a missing, unparsable or
/// mismatched `tenant.json`) is reported as `Corruption` naming the path, rather than
/// skipped: skipping would silently drop a tenant's data from the database. The one
/// exception is the trace of a registration interrupted before its config was renamed
/// into place (a directory holding nothing or only `tenant.json.tmp`): that registration
/// was never acknowledged and no write can have reached it, so it is removed.
pub fn load_tenant_configs(data_dir: &Path) -> Result<Vec<TenantConfig>> {
    let mut configs = Vec::new();
    for entry in scan_tenant_dirs(data_dir)? {
        match entry? {
            TenantDirEntry::Registered(cfg) => configs.push(cfg),
            TenantDirEntry::Interrupted(dir) => {
                tracing::warn!(dir = %dir.display(), "removing a tenant registration that was interrupted before it completed");
                fs::remove_dir_all(&dir)
                    .map_err(TidalError::io(format!("removing {}", dir.display())))?;
            }
        }
    }
    configs.sort_by_key(|c| c.tenant_id);
    Ok(configs)
}

/// One entry of `tenants/`, as [`scan_tenant_dirs`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantDirEntry {
    Registered(TenantConfig),
    /// The directory of a registration interrupted before its commit point, which an
    /// open removes (see [`load_tenant_configs`]).
    Interrupted(PathBuf),
}

/// Reads every entry of `tenants/` without changing anything, one result per entry, in
/// tenant id order (entries whose name is no tenant id last). The operator tools use it
/// to report each bad entry and go on; [`load_tenant_configs`] stops at the first. The
/// outer error is for `tenants/` itself.
pub fn scan_tenant_dirs(data_dir: &Path) -> Result<Vec<Result<TenantDirEntry>>> {
    let root = tenants_root(data_dir);
    if fs::symlink_metadata(&root).is_err_and(|e| e.kind() == IoKind::NotFound) {
        return Ok(Vec::new());
    }
    if !is_real_dir(&root)? {
        return Err(corrupt(
            root,
            0,
            "tenants/ must be a directory (not a file or a symbolic link); move it away".into(),
        ));
    }
    let entries =
        fs::read_dir(&root).map_err(TidalError::io(format!("listing {}", root.display())))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(TidalError::io(format!("listing {}", root.display())))?;
        let id = entry.file_name().to_str().and_then(parse_tenant_dir_name);
        found.push((id, entry.path()));
    }
    found.sort_by_key(|(id, _)| id.map_or(u128::MAX, |t| t.0 as u128));
    Ok(found
        .into_iter()
        .map(|(id, path)| scan_tenant_dir(id, path))
        .collect())
}

fn scan_tenant_dir(id: Option<TenantId>, path: PathBuf) -> Result<TenantDirEntry> {
    let Some(id) = id else {
        return Err(corrupt(
            path,
            0,
            "tenants/ holds only directories named by a tenant id (a decimal number \
             without leading zeros, not 0); this was not created by tidaldb, move it away"
                .into(),
        ));
    };
    if !is_real_dir(&path)? {
        return Err(corrupt(
            path,
            0,
            format!("tenant {id}'s entry must be a directory, not a file or symbolic link"),
        ));
    }
    Ok(match read_tenant_config(&path, id)? {
        Some(cfg) => TenantDirEntry::Registered(cfg),
        None => TenantDirEntry::Interrupted(path),
    })
}

/// The config in one tenant's directory; `None` for an interrupted registration. Reads
/// only: the caller decides what to do with an interrupted one.
fn read_tenant_config(dir: &Path, id: TenantId) -> Result<Option<TenantConfig>> {
    let path = dir.join(TENANT_CONFIG_FILE);
    // Neither the config nor the log may be a symbolic link: either could lead outside
    // the data directory.
    if fs::symlink_metadata(&path).is_ok_and(|m| !m.file_type().is_file()) {
        return Err(corrupt(
            path,
            0,
            format!("tenant {id}'s tenant.json must be a regular file, not a link or directory"),
        ));
    }
    let wal_dir = dir.join(TENANT_WAL_DIR);
    if fs::symlink_metadata(&wal_dir).is_ok() && !is_real_dir(&wal_dir)? {
        return Err(corrupt(
            wal_dir,
            0,
            format!("tenant {id}'s wal must be a directory, not a file or symbolic link"),
        ));
    }
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == IoKind::NotFound => {
            if is_interrupted_registration(dir)? {
                return Ok(None);
            }
            return Err(corrupt(
                path,
                0,
                format!("tenant {id}'s directory has data but no tenant.json; restore the file"),
            ));
        }
        Err(e) => {
            return Err(TidalError::Io {
                context: format!("reading {}", path.display()),
                source: e,
            });
        }
    };
    let cfg: TenantConfig = serde_json::from_slice(&bytes).map_err(|e| {
        corrupt(
            path.clone(),
            e.column() as u64,
            format!("tenant.json does not parse: {e}"),
        )
    })?;
    if cfg.tenant_id != id {
        return Err(corrupt(
            path,
            0,
            format!(
                "tenant.json is for tenant {} but lives in tenant {id}'s directory",
                cfg.tenant_id
            ),
        ));
    }
    cfg.validate()
        .map_err(|e| corrupt(path, 0, format!("the stored config is invalid: {e}")))?;
    Ok(Some(cfg))
}

/// A tenant directory with nothing in it, or only the temporary config file.
fn is_interrupted_registration(dir: &Path) -> Result<bool> {
    let entries =
        fs::read_dir(dir).map_err(TidalError::io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(TidalError::io(format!("listing {}", dir.display())))?;
        if entry.file_name() != TENANT_CONFIG_TMP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Creates `{data_dir}/tenants/{id}/` and writes the tenant's config into it atomically,
/// every new directory entry synced. This is the registration's commit point: the
/// tenant's log is created only after it. An existing directory is a `Conflict`, and a
/// failure removes what this call created.
pub fn create_tenant_dir(data_dir: &Path, cfg: &TenantConfig) -> Result<PathBuf> {
    let root = tenants_root(data_dir);
    if !is_real_dir(&root)? {
        fs::create_dir(&root).map_err(TidalError::io(format!("creating {}", root.display())))?;
        wal::sync_dir(data_dir)?;
    }
    let dir = tenant_dir(data_dir, cfg.tenant_id);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == IoKind::AlreadyExists => {
            return Err(TidalError::Conflict(format!(
                "{} exists already, but tenant {} is not registered; move it away",
                dir.display(),
                cfg.tenant_id
            )));
        }
        Err(e) => {
            return Err(TidalError::Io {
                context: format!("creating {}", dir.display()),
                source: e,
            });
        }
    }
    let written = serde_json::to_vec_pretty(cfg)
        .map_err(|e| TidalError::InvalidTenantConfig {
            tenant: cfg.tenant_id.0,
            reason: format!("the config does not serialize: {e}"),
        })
        .and_then(|json| {
            wal::sync_dir(&root)?;
            write_atomically(&dir, TENANT_CONFIG_FILE, &json)
        });
    if let Err(e) = written {
        remove_tenant_dir(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Undoes [`create_tenant_dir`] (and the log opened after it) when a later step of
/// registration failed. It removes in the reverse order of creation, the commit point
/// (`tenant.json`) last but one, so that whatever an error or a crash part-way leaves
/// behind is a state [`load_tenant_configs`] accepts: the whole tenant, empty, or nothing.
/// Best effort: each failure is logged.
pub fn remove_tenant_dir(dir: &Path) {
    if let Err(e) = undo_tenant_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not undo a tenant registration");
    }
}

fn undo_tenant_dir(dir: &Path) -> std::io::Result<()> {
    let missing_is_fine = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != IoKind::NotFound => Err(e),
        _ => Ok(()),
    };
    missing_is_fine(fs::remove_dir_all(dir.join(TENANT_WAL_DIR)))?;
    missing_is_fine(fs::remove_file(dir.join(TENANT_CONFIG_FILE)))?;
    fs::File::open(dir)?.sync_all()?;
    fs::remove_dir_all(dir)?;
    match dir.parent() {
        Some(parent) => fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_nonzero_decimal_ids_name_tenant_dirs() {
        assert_eq!(parse_tenant_dir_name("1"), Some(TenantId(1)));
        assert_eq!(parse_tenant_dir_name("42"), Some(TenantId(42)));
        assert_eq!(
            parse_tenant_dir_name(&u64::MAX.to_string()),
            Some(TenantId(u64::MAX))
        );
        for bad in [
            "",
            "0",
            "00",
            "007",
            "+7",
            "-1",
            " 7",
            "7 ",
            "abc",
            "..",
            ".",
            "1e3",
            "0x10",
            "18446744073709551616",
            "٣",
        ] {
            assert_eq!(parse_tenant_dir_name(bad), None, "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_tenant_dir_is_its_wal_dirs_parent_and_names_round_trip() {
        let root = Path::new("/data");
        for id in [1, 42, u64::MAX] {
            let t = TenantId(id);
            let dir = tenant_dir(root, t);
            assert_eq!(dir.join("wal"), tenant_wal_dir(root, t));
            assert_eq!(dir.parent(), Some(tenants_root(root).as_path()));
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap();
            assert_eq!(parse_tenant_dir_name(name), Some(t));
        }
    }
}
