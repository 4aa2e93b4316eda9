//! `tidaldb verify`: every checksum of every file of a data directory, and every damaged
//! spot with its file and byte offset.
//!
//! Recovery stops at the first damage it cannot explain as a crash. Verify goes on, so
//! that one run shows an operator the whole extent of the damage (which segments, which
//! snapshot, which tenant) before they decide what to restore.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::{check_is_data_dir, stored_schema, tenant_dirs_by_name};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::runtime::hard_state;
use crate::runtime::layout::{SCHEMA_FILE, TENANT_CONFIG_FILE, scan_tenant_dirs};
use crate::schema::{Schema, ShardId};
use crate::tenancy::tenant_wal_dir;
use crate::wal::offline::ReadOnlyFs;
use crate::wal::snapshot::{self, check_frame, list_snapshots};
use crate::wal::walk::{Walked, walk_segment};
use crate::wal::{WalConfig, hard_state_path, list_segments, schema_fingerprint};

/// What verify found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub data_dir: PathBuf,
    /// Every file whose bytes were checked, in the order checked.
    pub files_checked: Vec<PathBuf>,
    /// Batches of the logs whose checksums passed and whose records all decode.
    pub batches_checked: u64,
    /// Records (events) in those batches.
    pub records_checked: u64,
    /// Whether `schema.json` was there to check the logs' schema fingerprints and decode
    /// the newest snapshots against; without it only checksums are checked.
    pub schema_checked: bool,
    /// Every damaged spot, in the order found.
    pub damage: Vec<Damage>,
}

/// One damaged spot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    pub file: PathBuf,
    /// The byte offset where the damaged unit starts (a batch, a record, a header
    /// field): the damage is at or after it.
    pub offset: u64,
    pub kind: DamageKind,
    pub detail: String,
}

/// Whether an open copes with the damage by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum DamageKind {
    /// Bytes that were synced and are now wrong, missing or unreadable: an open refuses
    /// the directory until the file is restored.
    Corruption,
    /// The unsynced end of a tenant's last segment, left by a crash during an append. It
    /// was never acknowledged; an open cuts it off and goes on.
    TornTail,
}

impl VerifyReport {
    /// True when nothing at all is damaged, not even a torn tail.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }

    /// True when some damage is corruption, which an open would refuse: the directory
    /// needs restoring. A torn tail alone does not count.
    pub fn has_corruption(&self) -> bool {
        self.damage.iter().any(|d| d.kind == DamageKind::Corruption)
    }
}

/// Checks every checksum in the data directory `dir`: every segment and snapshot of
/// every tenant, the HARDSTATE files, and that `schema.json` and each `tenant.json`
/// parse. Damage is reported, not returned as an error; an error means the directory
/// could not be read at all (missing, not a data directory, unreadable).
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    check_is_data_dir(dir)?;
    let mut v = Verifier {
        report: VerifyReport {
            data_dir: dir.to_path_buf(),
            files_checked: Vec::new(),
            batches_checked: 0,
            records_checked: 0,
            schema_checked: false,
            damage: Vec::new(),
        },
        schema: None,
    };
    let schema_path = dir.join(SCHEMA_FILE);
    if schema_path.exists() {
        v.report.files_checked.push(schema_path);
        match stored_schema(dir) {
            Ok(schema) => v.schema = schema,
            Err(e) => v.error(e)?,
        }
    }
    v.report.schema_checked = v.schema.is_some();
    let tenant_logs = tenant_dirs_by_name(dir)?;
    for (_, wal) in &tenant_logs {
        let config = wal.with_file_name(TENANT_CONFIG_FILE);
        if config.exists() {
            v.report.files_checked.push(config);
        }
    }
    match scan_tenant_dirs(dir) {
        Ok(entries) => {
            for entry in entries {
                if let Err(e) = entry {
                    v.error(e)?;
                }
            }
        }
        Err(e) => v.error(e)?,
    }
    let mut logs = vec![tenant_wal_dir(dir, TenantId::DEFAULT)];
    logs.extend(tenant_logs.into_iter().map(|(_, wal)| wal));
    for wal_dir in logs {
        v.log(&wal_dir)?;
    }
    Ok(v.report)
}

struct Verifier {
    report: VerifyReport,
    schema: Option<Arc<Schema>>,
}

fn shard() -> ShardId {
    WalConfig::default().shard
}

impl Verifier {
    fn damage(&mut self, file: &Path, offset: u64, kind: DamageKind, detail: String) {
        self.report.damage.push(Damage {
            file: file.to_path_buf(),
            offset,
            kind,
            detail,
        });
    }

    /// Records an error that names damaged bytes as damage; any other error (the disk
    /// could not be read) ends the run.
    fn error(&mut self, e: TidalError) -> Result<()> {
        match e {
            TidalError::Corruption {
                path,
                offset,
                detail,
            } => {
                self.damage(&path, offset, DamageKind::Corruption, detail);
                Ok(())
            }
            TidalError::SchemaMismatch { path, detail } => {
                let detail = format!("written under another schema than {SCHEMA_FILE}: {detail}");
                self.damage(&path, 0, DamageKind::Corruption, detail);
                Ok(())
            }
            other => Err(other),
        }
    }

    /// One tenant's log directory: its snapshots, its segments in order, its HARDSTATE.
    fn log(&mut self, wal_dir: &Path) -> Result<()> {
        if !wal_dir.is_dir() {
            return Ok(());
        }
        let snapshot_lsn = self.snapshots(wal_dir)?;
        self.segments(wal_dir, snapshot_lsn)?;
        let hard_state_file = hard_state_path(wal_dir);
        if hard_state_file.exists() {
            self.report.files_checked.push(hard_state_file);
            if let Err(e) = hard_state::read(wal_dir) {
                self.error(e)?;
            }
        }
        Ok(())
    }

    /// Checks every snapshot's checksum, and decodes the newest (the one recovery would
    /// start from) under the schema when it is known. Returns the position it covers.
    fn snapshots(&mut self, wal_dir: &Path) -> Result<u64> {
        let snapshots = list_snapshots(&ReadOnlyFs, wal_dir, shard())?;
        let newest = snapshots.last().map_or(0, |(lsn, _)| *lsn);
        for (i, (lsn, path)) in snapshots.iter().enumerate() {
            self.report.files_checked.push(path.clone());
            let bytes = read(path)?;
            if let Err(e) = check_frame(path, &bytes, *lsn) {
                self.error(e)?;
                continue;
            }
            if let Some(schema) = &self.schema
                && i + 1 == snapshots.len()
                && let Err(e) = snapshot::read(&ReadOnlyFs, path, *lsn, schema)
            {
                self.error(e)?;
            }
        }
        Ok(newest)
    }

    /// Walks every segment, checking each batch's checksums, that its records decode,
    /// that positions run on from segment to segment after the snapshot, and that each
    /// batch was written under the recorded schema.
    fn segments(&mut self, wal_dir: &Path, snapshot_lsn: u64) -> Result<()> {
        let fingerprint = match &self.schema {
            Some(schema) => Some(schema_fingerprint(schema)?),
            None => None,
        };
        let segments = list_segments(wal_dir, shard())?;
        let mut files = Vec::with_capacity(segments.len());
        for (first, path) in segments {
            let bytes = read(&path)?;
            self.report.files_checked.push(path.clone());
            // An empty segment is the trace of a crash before its first write; an open
            // removes it, and it holds nothing to check.
            if !bytes.is_empty() {
                files.push((first, path, bytes));
            }
        }
        let mut expected = match files.first() {
            Some((first, path, _)) if *first > snapshot_lsn + 1 => {
                let detail = format!(
                    "the log starts at position {first} but the snapshot covers only \
                     through {snapshot_lsn}; a segment is missing"
                );
                self.damage(path, 0, DamageKind::Corruption, detail);
                *first
            }
            Some((first, _, _)) => *first,
            None => snapshot_lsn + 1,
        };
        let last = files.len().saturating_sub(1);
        for (i, (first, path, bytes)) in files.iter().enumerate() {
            if *first != expected {
                let detail = format!(
                    "expected log position {expected}, the segment starts at {first}: \
                     records are missing"
                );
                self.damage(path, 0, DamageKind::Corruption, detail);
            }
            expected = *first;
            let mut schema_reported = false;
            for step in walk_segment(bytes, *first, i == last) {
                match step {
                    Walked::Batch {
                        offset,
                        header,
                        records,
                    } => {
                        self.report.batches_checked += 1;
                        self.report.records_checked += records;
                        expected = header.first_seq.saturating_add(records);
                        let found = header.schema();
                        if let (Some(found), Some(want)) = (found, fingerprint)
                            && found != want
                            && !schema_reported
                        {
                            schema_reported = true;
                            let detail = format!(
                                "the batch was written under the schema with fingerprint \
                                 {found:#010x}, {SCHEMA_FILE} has {want:#010x} (later batches \
                                 of this segment not reported)"
                            );
                            self.damage(path, offset, DamageKind::Corruption, detail);
                        }
                    }
                    Walked::Corruption { offset, detail } => {
                        self.damage(path, offset, DamageKind::Corruption, detail);
                    }
                    Walked::TornTail {
                        offset,
                        bytes,
                        detail,
                    } => {
                        let detail = format!(
                            "{bytes} byte(s): {detail}; never acknowledged, an open cuts \
                             them off"
                        );
                        self.damage(path, offset, DamageKind::TornTail, detail);
                    }
                }
            }
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| TidalError::Io {
        context: format!("reading {}", path.display()),
        source: e,
    })
}

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DamageKind::Corruption => "corruption",
            DamageKind::TornTail => "torn tail",
        })
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} at byte offset {}: {}",
            self.file.display(),
            self.kind,
            self.offset,
            self.detail
        )
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "verified {}", self.data_dir.display())?;
        writeln!(
            f,
            "  {} file(s), {} batch(es), {} record(s) checked{}",
            self.files_checked.len(),
            self.batches_checked,
            self.records_checked,
            if self.schema_checked {
                ""
            } else {
                " (no schema.json: checksums only)"
            }
        )?;
        if self.is_clean() {
            return writeln!(f, "  clean: every checksum passes");
        }
        let corrupt = self.has_corruption();
        writeln!(
            f,
            "  {} damaged spot(s){}:",
            self.damage.len(),
            if corrupt {
                "; an open refuses this directory until the corrupt files are restored"
            } else {
                "; only torn tails, which an open cuts off"
            }
        )?;
        for d in &self.damage {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}
