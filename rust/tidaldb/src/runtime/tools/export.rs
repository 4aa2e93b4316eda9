//! `tidaldb export`: a tenant's applied events, or its decayed scores at one time, as CSV
//! or Parquet, for analysis elsewhere or for re-ingesting into another database.
//!
//! ## Events: [`EVENT_COLUMNS`]
//!
//! One row per applied event, in log order:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `tenant` | u64 | the tenant the event belongs to |
//! | `origin` | u16 | the node that accepted the write |
//! | `seq` | u64 | its sequence number at that origin (dense: 1, 2, 3, ...) |
//! | `hlc_ns` | u64 | wall time of its hybrid logical clock stamp (ns since the epoch) |
//! | `kind` | string | `signal`, `hide`, `unhide`, or `grant` (rights moved for a hard cap) |
//! | `signal` | string | the signal's name (signal rows only) |
//! | `entity` | u64 | the entity (signal rows only) |
//! | `weight` | f64 | the weight (signal rows only) |
//! | `ts_ns` | i64 | when the event happened, ns since the epoch (every row but grants) |
//! | `user`, `item` | u64 | the pair hidden or unhidden (hide and unhide rows only) |
//!
//! A column that does not apply to a row is empty in CSV and null in Parquet. Writing
//! each row back (a `signal` row with its signal, entity, weight and `ts_ns`; a hide or
//! unhide with its user, item and `ts_ns`) in log order rebuilds bit-identical state.
//!
//! ## Scores: [`SCORE_COLUMNS`]
//!
//! `signal` (string), `entity` (u64), `score` (f64): every (signal, entity) the tenant
//! holds, in schema order and then by entity id, decayed to the time asked for.
//!
//! ## Formats
//!
//! CSV has a header row; fields holding a comma, quote or line break are quoted as RFC
//! 4180 says, and floats are written in Rust's shortest round-trip form, so that parsing
//! them gives back the very same `f64`. Parquet is uncompressed, u64 columns are INT64
//! annotated unsigned, strings are UTF-8 BYTE_ARRAY, and rows come in row groups of
//! [`ROW_GROUP_ROWS`].

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "parquet")]
use super::export_parquet::{ParquetEvents, write_scores_parquet};
use super::{check_is_data_dir, require_schema, tenant};
use crate::error::{Result, TidalError};
use crate::event::{Event, EventBody, TenantId};
use crate::schema::{EntityId, Schema, SignalIdx, Timestamp};
use crate::wal::offline::{for_each_logged_batch, replay_read_only};

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportWhat {
    /// Every applied event of `tenant` (the default tenant for `None`).
    ///
    /// A snapshot replaces the segments before it, so once one is taken the log no
    /// longer holds every event individually. The export then fails, naming how many
    /// events are only in the snapshot, unless `allow_partial` asks for the events the
    /// log still holds (those after the snapshot), which alone do not rebuild the scores.
    Events {
        tenant: Option<TenantId>,
        allow_partial: bool,
    },
    /// The decayed score of every (signal, entity) of `tenant` as of `at`.
    Scores {
        tenant: Option<TenantId>,
        at: Timestamp,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

/// The columns of an events export, in order.
pub const EVENT_COLUMNS: [&str; 11] = [
    "tenant", "origin", "seq", "hlc_ns", "kind", "signal", "entity", "weight", "ts_ns", "user",
    "item",
];

/// The columns of a scores export, in order.
pub const SCORE_COLUMNS: [&str; 3] = ["signal", "entity", "score"];

/// Rows per Parquet row group: bounds the memory an export holds at once.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Writes `what` from the data directory `dir` to `out` in `format`, and returns the
/// number of rows written (the CSV header not counted). Reads the directory only.
///
/// Everything that can be refused (a missing directory or tenant, an incomplete log, a
/// score that cannot be read at `at`) is refused before the first byte is written.
pub fn export(
    dir: &Path,
    what: ExportWhat,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64> {
    check_is_data_dir(dir)?;
    let schema = require_schema(dir)?;
    match what {
        ExportWhat::Events {
            tenant: t,
            allow_partial,
        } => export_events(dir, &schema, t, allow_partial, format, out),
        ExportWhat::Scores { tenant: t, at } => {
            let rows = scores(dir, &schema, t, at)?;
            let n = rows.len() as u64;
            match format {
                ExportFormat::Csv => write_scores_csv(&rows, out)?,
                #[cfg(feature = "parquet")]
                ExportFormat::Parquet => write_scores_parquet(&rows, out)?,
                #[cfg(not(feature = "parquet"))]
                ExportFormat::Parquet => return Err(no_parquet()),
            }
            Ok(n)
        }
    }
}

fn export_events(
    dir: &Path,
    schema: &Arc<Schema>,
    wanted: Option<TenantId>,
    allow_partial: bool,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64> {
    let t = tenant(dir, wanted)?;
    // The replay checks the whole log (continuity, schema, every checksum) before a row
    // is written, and says whether the log still holds every applied event.
    let log = replay_read_only(&t.wal_dir, schema)?;
    let applied = log.ledger.version_vector().sum();
    let logged = log.records_logged();
    if logged != applied && !allow_partial {
        return Err(TidalError::InvalidArgument {
            name: "what",
            reason: format!(
                "tenant {} has applied {applied} events but its log holds only {logged} of \
                 them: the others are held only by the snapshot at log position {} (compacted into \
                 it, or installed from a peer). Export scores instead, or allow a partial \
                 export of the events the log holds",
                t.id, log.report.snapshot_lsn
            ),
        });
    }
    let names: Vec<&str> = schema.signals().iter().map(|s| s.name.as_str()).collect();
    let mut sink: Box<dyn EventSink + '_> = match format {
        ExportFormat::Csv => Box::new(CsvEvents::new(out, names)?),
        #[cfg(feature = "parquet")]
        ExportFormat::Parquet => Box::new(ParquetEvents::new(out, names)?),
        #[cfg(not(feature = "parquet"))]
        ExportFormat::Parquet => return Err(no_parquet()),
    };
    let mut rows = 0u64;
    for_each_logged_batch(&t.wal_dir, |events| {
        for e in events {
            sink.push(e)?;
        }
        rows += events.len() as u64;
        Ok(())
    })?;
    sink.finish()?;
    if rows != logged {
        return Err(TidalError::Unavailable(format!(
            "the log of tenant {} changed while it was exported ({logged} records when \
             replayed, {rows} when written); is a process writing to {}? Close it and \
             export again",
            t.id,
            dir.display()
        )));
    }
    Ok(rows)
}

/// Every (signal, entity, score), computed in full before anything is written.
fn scores(
    dir: &Path,
    schema: &Arc<Schema>,
    wanted: Option<TenantId>,
    at: Timestamp,
) -> Result<Vec<(String, u64, f64)>> {
    let t = tenant(dir, wanted)?;
    let log = replay_read_only(&t.wal_dir, schema)?;
    let mut rows = Vec::new();
    for (i, (def, signal)) in schema
        .signals()
        .iter()
        .zip(log.ledger.signal_ledgers())
        .enumerate()
    {
        let mut entities = signal.entities().to_vec();
        entities.sort_unstable();
        let mut scores = vec![0.0; entities.len()];
        let idx = SignalIdx(i as u16);
        log.ledger
            .decay_scores_with(idx, &entities, at, |j, score| {
                if let Some(slot) = scores.get_mut(j) {
                    *slot = score;
                }
            })?;
        rows.extend(
            entities
                .iter()
                .zip(scores)
                .map(|(e, s)| (def.name.clone(), e.0, s)),
        );
    }
    Ok(rows)
}

pub(super) fn io_error(e: std::io::Error) -> TidalError {
    TidalError::Io {
        context: "writing the export".into(),
        source: e,
    }
}

/// `field` as one CSV field: quoted (quotes doubled) when it holds a separator, a quote
/// or a line break, as RFC 4180 says; as is otherwise.
fn csv_field(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// Where event rows go, one format per implementation.
pub(super) trait EventSink {
    fn push(&mut self, e: &Event) -> Result<()>;
    fn finish(&mut self) -> Result<()>;
}

/// An event's fields as the export columns see them.
pub(super) struct EventRow<'a> {
    pub kind: &'static str,
    pub signal: Option<(usize, &'a str)>,
    pub entity: Option<u64>,
    pub weight: Option<f64>,
    pub ts_ns: Option<i64>,
    pub user: Option<u64>,
    pub item: Option<u64>,
}

pub(super) fn event_row<'a>(e: &Event, names: &[&'a str]) -> Result<EventRow<'a>> {
    let hide = |kind, user: EntityId, item: EntityId, ts: Timestamp| EventRow {
        kind,
        signal: None,
        entity: None,
        weight: None,
        ts_ns: Some(ts.as_nanos()),
        user: Some(user.0),
        item: Some(item.0),
    };
    Ok(match e.body {
        EventBody::Signal {
            signal,
            entity,
            weight,
            ts,
            ..
        } => {
            let i = signal.0 as usize;
            let name = names.get(i).ok_or_else(|| {
                TidalError::InvalidSchema(format!(
                    "event {}:{} names signal #{i}, which the schema does not have",
                    e.id.origin.0, e.id.seq
                ))
            })?;
            EventRow {
                kind: "signal",
                signal: Some((i, name)),
                entity: Some(entity.0),
                weight: Some(weight),
                ts_ns: Some(ts.as_nanos()),
                user: None,
                item: None,
            }
        }
        EventBody::Hide { user, item, ts } => hide("hide", user, item, ts),
        EventBody::Unhide { user, item, ts } => hide("unhide", user, item, ts),
        // Rights moved between replicas for the tenant's hard caps: no user data.
        EventBody::Grant { .. } => EventRow {
            kind: "grant",
            signal: None,
            entity: None,
            weight: None,
            ts_ns: None,
            user: None,
            item: None,
        },
    })
}

struct CsvEvents<'a> {
    out: BufWriter<&'a mut dyn Write>,
    names: Vec<&'a str>,
}

impl<'a> CsvEvents<'a> {
    fn new(out: &'a mut dyn Write, names: Vec<&'a str>) -> Result<Self> {
        let mut out = BufWriter::new(out);
        writeln!(out, "{}", EVENT_COLUMNS.join(",")).map_err(io_error)?;
        Ok(CsvEvents { out, names })
    }
}

impl EventSink for CsvEvents<'_> {
    fn push(&mut self, e: &Event) -> Result<()> {
        let r = event_row(e, &self.names)?;
        writeln!(
            self.out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            e.tenant.0,
            e.id.origin.0,
            e.id.seq,
            e.hlc.wall_ns,
            r.kind,
            r.signal.map_or("".into(), |(_, name)| csv_field(name)),
            opt(r.entity),
            opt(r.weight),
            opt(r.ts_ns),
            opt(r.user),
            opt(r.item),
        )
        .map_err(io_error)
    }

    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(io_error)
    }
}

fn write_scores_csv(rows: &[(String, u64, f64)], out: &mut dyn Write) -> Result<()> {
    let mut out = BufWriter::new(out);
    writeln!(out, "{}", SCORE_COLUMNS.join(",")).map_err(io_error)?;
    for (signal, entity, score) in rows {
        writeln!(out, "{},{entity},{score}", csv_field(signal)).map_err(io_error)?;
    }
    out.flush().map_err(io_error)
}

/// The refusal of a build without the `parquet` feature.
#[cfg(not(feature = "parquet"))]
fn no_parquet() -> TidalError {
    TidalError::InvalidArgument {
        name: "format",
        reason: "this build of tidaldb has no Parquet support; use the `tidaldb` command \
                 (built with it), or export CSV"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("view"), "view");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn floats_are_written_in_a_form_that_parses_back_to_the_same_bits() {
        for x in [
            0.1,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            5e-324,
            1e300,
            f64::MAX,
            -0.0,
            123_456.789_012_345_68,
        ] {
            let text = format!("{x}");
            assert_eq!(
                text.parse::<f64>().map(f64::to_bits),
                Ok(x.to_bits()),
                "{text}"
            );
        }
    }
}
