//! `tidaldb inspect`: what a data directory holds, tenant by tenant.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::{TenantDir, check_is_data_dir, file_name, require_schema, tenants};
use crate::error::{Result, TidalError};
use crate::runtime::hard_state;
use crate::schema::{DecaySpec, Schema, format_duration};
use crate::tenancy::TenantConfig;
use crate::wal::offline::{OfflineLog, replay_read_only};

/// What a data directory holds. Serializes to JSON for scripts; `Display` is the text
/// report for people.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub data_dir: PathBuf,
    /// The signals of the recorded schema, in schema order.
    pub schema: Vec<SignalInfo>,
    /// The default tenant (0) first, then the registered ones in id order.
    pub tenants: Vec<TenantInspection>,
}

/// One signal of the schema, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignalInfo {
    pub name: String,
    /// `item`, `user` or `creator`.
    pub kind: String,
    /// `exponential, half-life 1h`, `linear, lifetime 7d` or `permanent`.
    pub decay: String,
    /// `1h`, `24h`, `7d`, `30d`, `all`.
    pub windows: Vec<String>,
    pub velocity: bool,
}

/// One tenant's log and the state it replays to.
#[derive(Clone, Debug, Serialize)]
pub struct TenantInspection {
    pub tenant: u64,
    /// The stored config (quotas, residency, label); `None` for the default tenant,
    /// whose quotas are whatever the opening builder gives.
    pub config: Option<TenantConfig>,
    pub wal_dir: PathBuf,
    pub segments: Vec<SegmentInfo>,
    /// The newest snapshot, which replay starts from.
    pub snapshot: Option<SnapshotInfo>,
    /// Events applied: the sum of the version vector after replay.
    pub events_applied: u64,
    /// The highest seq applied from each origin node, by origin.
    pub version_vector: Vec<OriginSeq>,
    /// Events an open would replay from the segments (those after the snapshot).
    pub events_replayed: u64,
    /// Records the segments hold, snapshot-covered ones included.
    pub records_logged: u64,
    /// Bytes of a torn or unfinished last commit group that an open would cut off.
    pub torn_bytes: u64,
    /// Distinct entities carrying each signal.
    pub entities: Vec<SignalEntities>,
    /// The replication term stored beside the log (HARDSTATE), if the node stored one.
    pub term: Option<u64>,
}

/// One segment file of a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    pub file: String,
    pub bytes: u64,
    /// The log position (LSN) of its first record, from its name.
    pub first_position: u64,
    /// The position of its last whole record; `None` when it holds none (an empty or
    /// wholly torn segment).
    pub last_position: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub file: String,
    pub bytes: u64,
    /// The last log position (LSN) it covers.
    pub covers_through: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OriginSeq {
    pub origin: u16,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignalEntities {
    pub signal: String,
    pub entities: u64,
}

/// Reports the schema, the tenants, and for each tenant its segments, newest snapshot,
/// event count and version vector. Every tenant's log is replayed in memory, read-only:
/// the counts are the ones an open would recover. Fails on a directory that is missing,
/// is not a tidaldb data directory, or has a log an open would refuse (run
/// [`verify`](super::verify) for the details of damage).
pub fn inspect(dir: &Path) -> Result<Inspection> {
    check_is_data_dir(dir)?;
    let schema = require_schema(dir)?;
    let tenants = tenants(dir)?
        .iter()
        .map(|t| inspect_tenant(t, &schema))
        .collect::<Result<Vec<_>>>()?;
    Ok(Inspection {
        data_dir: dir.to_path_buf(),
        schema: schema.signals().iter().map(signal_info).collect(),
        tenants,
    })
}

fn signal_info(def: &crate::schema::SignalDef) -> SignalInfo {
    SignalInfo {
        name: def.name.clone(),
        kind: def.kind.as_str().to_owned(),
        decay: match def.decay {
            DecaySpec::Exponential { half_life } => {
                format!("exponential, half-life {}", format_duration(half_life))
            }
            DecaySpec::Linear { lifetime } => {
                format!("linear, lifetime {}", format_duration(lifetime))
            }
            DecaySpec::Permanent => "permanent".to_owned(),
        },
        windows: def.windows.iter().map(|w| w.as_str().to_owned()).collect(),
        velocity: def.velocity,
    }
}

fn inspect_tenant(t: &TenantDir, schema: &Arc<Schema>) -> Result<TenantInspection> {
    let log = replay_read_only(&t.wal_dir, schema)?;
    let term = if t.wal_dir.is_dir() {
        hard_state::read(&t.wal_dir)?.map(|h| h.term)
    } else {
        None
    };
    let ledger = &log.ledger;
    let entities = schema
        .signals()
        .iter()
        .zip(ledger.signal_ledgers())
        .map(|(def, signal)| SignalEntities {
            signal: def.name.clone(),
            entities: signal.entity_count() as u64,
        })
        .collect();
    let snapshot = match &log.snapshot {
        Some((lsn, path)) => Some(SnapshotInfo {
            file: file_name(path),
            bytes: file_len(path)?,
            covers_through: *lsn,
        }),
        None => None,
    };
    Ok(TenantInspection {
        tenant: t.id.0,
        config: t.config.clone(),
        wal_dir: t.wal_dir.clone(),
        segments: segments(&log)?,
        snapshot,
        events_applied: ledger.version_vector().sum(),
        version_vector: ledger
            .version_vector()
            .iter()
            .map(|(origin, seq)| OriginSeq {
                origin: origin.0,
                seq,
            })
            .collect(),
        events_replayed: log.report.events_replayed,
        records_logged: log.records_logged(),
        torn_bytes: log.report.torn_bytes_truncated,
        entities,
        term,
    })
}

/// Each segment with the positions it holds. Recovery checked that positions run on
/// without a gap from segment to segment, so a segment ends where the next non-empty
/// one starts, and the last one where the log ends: no segment needs scanning again.
fn segments(log: &OfflineLog) -> Result<Vec<SegmentInfo>> {
    let mut out = Vec::with_capacity(log.segments.len());
    let mut end = log.next_lsn;
    for (first, path) in log.segments.iter().rev() {
        let bytes = file_len(path)?;
        let last = (bytes > 0 && end > *first).then(|| end - 1);
        if bytes > 0 {
            end = *first;
        }
        out.push(SegmentInfo {
            file: file_name(path),
            bytes,
            first_position: *first,
            last_position: last,
        });
    }
    out.reverse();
    Ok(out)
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| TidalError::Io {
            context: format!("reading the size of {}", path.display()),
            source: e,
        })
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tidaldb data directory {}", self.data_dir.display())?;
        writeln!(f, "schema: {} signal(s)", self.schema.len())?;
        for s in &self.schema {
            write!(f, "  {:<20} {:<8} {}", s.name, s.kind, s.decay)?;
            if !s.windows.is_empty() {
                write!(f, "; windows {}", s.windows.join(", "))?;
            }
            if s.velocity {
                write!(f, "; velocity")?;
            }
            writeln!(f)?;
        }
        for t in &self.tenants {
            writeln!(f)?;
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

fn limit(value: Option<impl fmt::Display>) -> String {
    value.map_or_else(|| "unlimited".to_owned(), |v| v.to_string())
}

impl fmt::Display for TenantInspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.config {
            None => writeln!(f, "tenant t{} (default)", self.tenant)?,
            Some(c) => {
                writeln!(f, "tenant t{} {:?}", self.tenant, c.label)?;
                let regions: Vec<String> =
                    c.required_regions.iter().map(|r| r.0.to_string()).collect();
                writeln!(
                    f,
                    "  quotas: signals/s {}, entities {}, storage bytes {}; regions {}",
                    limit(c.max_signals_per_sec),
                    limit(c.max_entities),
                    limit(c.max_storage_bytes),
                    if regions.is_empty() {
                        "any".to_owned()
                    } else {
                        regions.join(", ")
                    }
                )?;
            }
        }
        writeln!(f, "  wal: {}", self.wal_dir.display())?;
        writeln!(f, "  events applied: {}", self.events_applied)?;
        let vv: Vec<String> = self
            .version_vector
            .iter()
            .map(|o| format!("node {} -> seq {}", o.origin, o.seq))
            .collect();
        let vv = if vv.is_empty() {
            "empty".to_owned()
        } else {
            vv.join(", ")
        };
        writeln!(f, "  version vector: {vv}")?;
        if let Some(term) = self.term {
            writeln!(f, "  term: {term}")?;
        }
        match &self.snapshot {
            Some(s) => writeln!(
                f,
                "  snapshot: {} ({} bytes), covers the log through position {}",
                s.file, s.bytes, s.covers_through
            )?,
            None => writeln!(f, "  snapshot: none")?,
        }
        writeln!(
            f,
            "  segments: {} holding {} record(s), {} replayed after the snapshot",
            self.segments.len(),
            self.records_logged,
            self.events_replayed
        )?;
        for s in &self.segments {
            let span = match s.last_position {
                Some(last) => format!("positions {}..={last}", s.first_position),
                None => "no whole records".to_owned(),
            };
            writeln!(f, "    {} {} bytes, {span}", s.file, s.bytes)?;
        }
        if self.torn_bytes > 0 {
            writeln!(
                f,
                "  torn tail: {} byte(s) an open would cut off (an append interrupted by a crash)",
                self.torn_bytes
            )?;
        }
        let entities: Vec<String> = self
            .entities
            .iter()
            .map(|e| format!("{} {}", e.signal, e.entities))
            .collect();
        writeln!(f, "  entities per signal: {}", entities.join(", "))
    }
}
