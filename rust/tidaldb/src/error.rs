//! The one error type of the core. Every failure a caller can cause has its own variant,
//! and every message says what to do about it.
//!
//! This module sits below every other one and imports nothing of the crate, so any module
//! can return its errors. Tenants are therefore carried as their plain `u64` ids (what
//! `TenantId` wraps), and a quota breach is described here rather than in `tenancy`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Result alias used throughout the crate.
pub type Result<T, E = TidalError> = std::result::Result<T, E>;

/// Broad class of an error. The Python bindings map each class to one exception type, so
/// a new variant only has to say which class it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// The schema is invalid, or does not match the data on disk.
    Schema,
    /// An argument is out of its domain (NaN weight, bad timestamp, unknown window, ...).
    InvalidArgument,
    /// A name or id that does not exist (unknown signal).
    NotFound,
    /// Bytes on disk fail their checksum or do not parse.
    Corruption,
    /// The operating system refused an I/O operation.
    Io,
    /// The database can no longer accept writes (a WAL write failed, or it was closed).
    Unavailable,
    /// A deadline passed before the operation completed (convergence, a replicated write).
    Timeout,
    /// A tenant's quota would be exceeded; nothing was written.
    QuotaExceeded,
    /// The request conflicts with the cluster's state (a tenant registered twice, a second
    /// migration of a tenant that is migrating).
    Conflict,
    /// The caller stopped a long call between two units of work (see `interrupt`); what
    /// the call had finished stays, as after a shorter call.
    Interrupted,
}

/// Which limit a write ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quota {
    SignalsPerSec,
    Entities,
    StorageBytes,
}

impl Quota {
    pub fn name(self) -> &'static str {
        match self {
            Quota::SignalsPerSec => "max_signals_per_sec",
            Quota::Entities => "max_entities",
            Quota::StorageBytes => "max_storage_bytes",
        }
    }
}

/// A refused write: the tenant (the id a `TenantId` wraps), the quota, its limit, and when
/// a retry can succeed (`None` when waiting cannot help: the quota must be raised or data
/// removed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaBreach {
    pub tenant: u64,
    pub quota: Quota,
    pub limit: u64,
    pub retry_after: Option<Duration>,
}

impl fmt::Display for QuotaBreach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(f, "nothing was written")
    }
}

impl QuotaBreach {
    /// The breach, saying `what_happened` to the write it refused.
    fn describe(&self, f: &mut fmt::Formatter<'_>, what_happened: &str) -> fmt::Result {
        write!(
            f,
            "tenant t{} exceeded its quota {} = {}; {what_happened}; ",
            self.tenant,
            self.quota.name(),
            self.limit
        )?;
        match self.retry_after {
            Some(d) => write!(
                f,
                "retry after {}",
                seconds(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            ),
            None => write!(f, "a retry cannot succeed until the quota is raised"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TidalError {
    #[error("schema error: signal {name:?} is declared twice; give each signal a unique name")]
    DuplicateSignal { name: String },

    #[error("schema error: signal {signal:?} has an invalid decay: {reason}")]
    InvalidDecay { signal: String, reason: String },

    #[error(
        "schema error: signal {signal:?} declares an empty window list; \
         list at least one window, or omit .windows() for no windowed counts"
    )]
    EmptyWindows { signal: String },

    #[error(
        "schema error: signal {signal:?} asks for velocity but has no bounded window; \
         velocity is measured over the shortest of 1h, 24h, 7d and 30d, so declare one"
    )]
    VelocityWithoutWindows { signal: String },

    #[error("schema error: {0}")]
    InvalidSchema(String),

    #[error(
        "schema mismatch: the data directory {path:?} was written with a different schema \
         ({detail}); open it with the schema it was created with, or use a new directory"
    )]
    SchemaMismatch { path: PathBuf, detail: String },

    #[error("unknown signal {name:?}; the schema declares: {known}")]
    UnknownSignal { name: String, known: String },

    #[error("invalid weight {weight:?}: {reason}")]
    InvalidWeight { weight: f64, reason: &'static str },

    #[error(
        "timestamp {ns} ns is out of range; timestamps are nanoseconds since the Unix epoch \
         in [0, {max}]{}",
        finer_unit_hint(*.ns)
    )]
    TimestampOutOfRange { ns: i128, max: i64 },

    #[error(
        "timestamp {} (Unix time) is {} ahead of this node's clock, more than \
         max_future_skew ({}); check the writer's clock, or raise max_future_skew",
        seconds(*ts_ns),
        seconds(*ahead_ns),
        seconds(*max_skew_ns)
    )]
    TimestampInFuture {
        ts_ns: i64,
        ahead_ns: i64,
        max_skew_ns: i64,
    },

    #[error(
        "reading {what} at {at_ns} ns overflows: the read is too far before the entity's \
         events for the decayed value to be finite; read at a later time"
    )]
    ReadOverflow { what: String, at_ns: i64 },

    #[error("invalid argument {name}: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    #[error("signal {signal:?} has no window {window}; {}", declared_windows(.known))]
    UnknownWindow {
        signal: String,
        window: String,
        known: String,
    },

    #[error(
        "a read of {what} at {at_ns} ns reaches before the retained history of this entity \
         (buckets older than the newest event minus the window are discarded); \
         read at or after the newest event"
    )]
    BeforeRetainedHistory { what: String, at_ns: i64 },

    #[error(
        "remote clock is {ahead_ns} ns ahead of the local clock, more than the allowed \
         {max_drift_ns} ns; check NTP on both machines"
    )]
    ClockSkew { ahead_ns: u64, max_drift_ns: u64 },

    #[error("corruption in {path:?} at byte offset {offset}: {detail}")]
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },

    /// A write was sent to a node that stopped answering before it acknowledged: the write
    /// may have been applied there (and then replicates), or lost with the node.
    #[error(
        "write outcome unknown: {0}. Read back before writing again: a retry on another \
         node would count it twice if the original was applied"
    )]
    OutcomeUnknown(String),

    /// An error a server returned to a client over the network: its class, and the
    /// server's message, which names what to do.
    #[error("{message} (from {server})")]
    Remote {
        kind: ErrorKind,
        server: String,
        message: String,
        /// The breach, when a quota refused the write, so that a remote caller can back
        /// off by `retry_after` as a local one does.
        quota: Option<Box<QuotaBreach>>,
    },

    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the database is unavailable: {0}")]
    Unavailable(String),

    #[error("timed out: {0}")]
    Timeout(String),

    #[error("not found: {0}")]
    NotFound(String),

    #[error("{0}")]
    QuotaExceeded(QuotaBreach),

    /// `tenant` is the id a `TenantId` wraps.
    #[error("invalid configuration of tenant t{tenant}: {reason}")]
    InvalidTenantConfig { tenant: u64, reason: String },

    /// The id a `TenantId` wraps.
    #[error("unknown tenant t{0}; register it first")]
    UnknownTenant(u64),

    #[error("conflict: {0}")]
    Conflict(String),

    /// A long call stopped at its caller's request (see `interrupt`). `written` events
    /// of a bulk write had been applied by then; they stay, durable as the durability
    /// policy says, and the rest of the batch was not written.
    #[error("interrupted: {why}{}", written_note(*written))]
    Interrupted { why: String, written: usize },

    /// A batch split over several replicas (one client request per shard) failed after
    /// some of its parts were written. The parts are separate requests, so what landed
    /// stays; retrying the whole batch would write those events again.
    #[error(
        "{} (the batch was split over its shards: {written} of its {total} events, \
         on shards written before this one, were written; retry only the rest)",
        PartCause(.cause)
    )]
    PartlyWritten {
        written: usize,
        total: usize,
        cause: Box<TidalError>,
    },

    /// A bulk write read where its caller keeps it (see `runtime/shared_columns.rs`) found
    /// a row invalid that had passed its check: another thread changed the columns while
    /// the write ran. The first `written` events stay; the rest were not written.
    #[error(
        "{cause} (the columns changed while the write read them: the first {written} \
         events, checked before the change, were written and the rest were not)"
    )]
    ChangedWhileWriting {
        written: usize,
        cause: Box<TidalError>,
    },
}

impl TidalError {
    pub fn kind(&self) -> ErrorKind {
        use TidalError::*;
        match self {
            DuplicateSignal { .. }
            | InvalidDecay { .. }
            | EmptyWindows { .. }
            | VelocityWithoutWindows { .. }
            | InvalidSchema(_)
            | SchemaMismatch { .. } => ErrorKind::Schema,
            UnknownSignal { .. } | UnknownWindow { .. } => ErrorKind::NotFound,
            InvalidWeight { .. }
            | TimestampOutOfRange { .. }
            | InvalidArgument { .. }
            | BeforeRetainedHistory { .. }
            | TimestampInFuture { .. }
            | ReadOverflow { .. }
            | ClockSkew { .. } => ErrorKind::InvalidArgument,
            Corruption { .. } => ErrorKind::Corruption,
            Io { .. } => ErrorKind::Io,
            Unavailable(_) | OutcomeUnknown(_) => ErrorKind::Unavailable,
            Timeout(_) => ErrorKind::Timeout,
            NotFound(_) | UnknownTenant(_) => ErrorKind::NotFound,
            QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            InvalidTenantConfig { .. } => ErrorKind::InvalidArgument,
            Conflict(_) => ErrorKind::Conflict,
            Interrupted { .. } => ErrorKind::Interrupted,
            PartlyWritten { cause, .. } | ChangedWhileWriting { cause, .. } => cause.kind(),
            Remote { kind, .. } => *kind,
        }
    }

    /// The quota breach behind this error, if a quota refused the write (here, on a
    /// remote server, or part-way through a bulk write).
    pub fn quota_breach(&self) -> Option<&QuotaBreach> {
        match self {
            TidalError::QuotaExceeded(b) => Some(b),
            TidalError::Remote { quota, .. } => quota.as_deref(),
            TidalError::PartlyWritten { cause, .. } => cause.quota_breach(),
            _ => None,
        }
    }

    /// Wraps an `io::Error` with what was being done, so the message names the file.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TidalError {
        let context = context.into();
        move |source| TidalError::Io { context, source }
    }
}

/// The tail of an interrupted bulk write's message.
fn written_note(written: usize) -> String {
    if written == 0 {
        String::new()
    } else {
        format!(
            "; the first {written} events of the batch were written before it stopped, the \
             rest were not"
        )
    }
}

/// Nanoseconds as seconds, the unit of every time in the Python API, written as
/// `schema::format_duration` writes seconds (this module sits below `schema`): `300s`,
/// `1.5s`.
fn seconds(ns: i64) -> String {
    let text = format!("{:.3}", ns as f64 / 1e9);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// For a time read from seconds that is out of range: a hint when it is a plausible
/// present-day time in a finer unit (milliseconds, as JavaScript and Java give them,
/// microseconds or nanoseconds) passed where seconds were expected.
fn finer_unit_hint(ns: i128) -> String {
    // 1e11 s is the year 5138; 1e11 ms is 1973. Each range below is such a time in a
    // finer unit, read as seconds.
    const UNITS: [(i128, i128, &str, &str); 3] = [
        (
            100_000_000_000_000_000_000,
            100_000_000_000_000_000_000_000,
            "milliseconds",
            "1e3",
        ),
        (
            100_000_000_000_000_000_000_000,
            100_000_000_000_000_000_000_000_000,
            "microseconds",
            "1e6",
        ),
        (
            100_000_000_000_000_000_000_000_000,
            100_000_000_000_000_000_000_000_000_000,
            "nanoseconds",
            "1e9",
        ),
    ];
    UNITS
        .iter()
        .find(|(lo, hi, _, _)| (*lo..*hi).contains(&ns))
        .map_or_else(String::new, |(_, _, unit, factor)| {
            format!(
                "; it looks like {unit} since the epoch where seconds were expected: divide \
                 it by {factor}"
            )
        })
}

/// What an unknown window's signal does declare: its windows, or that it has none.
fn declared_windows(known: &str) -> String {
    if known.is_empty() {
        "this signal declares no windows (declare some with windows=[...] to count events)"
            .to_owned()
    } else {
        format!("its windows are: {known}")
    }
}

/// The cause of a partly written batch, which must not claim that nothing was written.
struct PartCause<'a>(&'a TidalError);

impl fmt::Display for PartCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TidalError::QuotaExceeded(b) => b.describe(f, "this shard's part was not written"),
            other => write!(f, "{other}"),
        }
    }
}
