//! The Parquet half of [`export`](super::export): the low-level column writer (no arrow),
//! uncompressed, one row group of [`ROW_GROUP_ROWS`] rows at a time. The columns are the
//! ones the export module documents.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;

use super::export::{EventRow, EventSink, ROW_GROUP_ROWS, event_row, io_error};
use crate::error::{Result, TidalError};
use crate::event::Event;

const EVENTS_MESSAGE: &str = "message tidaldb_events {
    required int64 tenant (INTEGER(64,false));
    required int32 origin (INTEGER(16,false));
    required int64 seq (INTEGER(64,false));
    required int64 hlc_ns (INTEGER(64,false));
    required binary kind (STRING);
    optional binary signal (STRING);
    optional int64 entity (INTEGER(64,false));
    optional double weight;
    optional int64 ts_ns;
    optional int64 user (INTEGER(64,false));
    optional int64 item (INTEGER(64,false));
}";

const SCORES_MESSAGE: &str = "message tidaldb_scores {
    required binary signal (STRING);
    required int64 entity (INTEGER(64,false));
    required double score;
}";

fn parquet_error(e: parquet::errors::ParquetError) -> TidalError {
    TidalError::Io {
        context: "writing the Parquet export".into(),
        source: std::io::Error::other(e),
    }
}

/// A Parquet file written to a `dyn Write` one row group at a time.
///
/// The parquet writer needs a `Send` sink, which `&mut dyn Write` is not, so it writes
/// into a buffer that is handed on to `out` after every row group: memory stays bounded
/// by one row group, and `out` sees the bytes in order.
struct ParquetOut<'a> {
    writer: SerializedFileWriter<Vec<u8>>,
    out: &'a mut dyn Write,
}

impl<'a> ParquetOut<'a> {
    fn new(out: &'a mut dyn Write, message: &str) -> Result<Self> {
        let schema = parse_message_type(message).map_err(parquet_error)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_created_by(format!("tidaldb {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props))
            .map_err(parquet_error)?;
        Ok(ParquetOut { writer, out })
    }

    /// Writes one row group, `columns` writing its columns in schema order.
    fn row_group(&mut self, columns: impl FnOnce(&mut RowGroup<'_>) -> Result<()>) -> Result<()> {
        let mut group = self.writer.next_row_group().map_err(parquet_error)?;
        columns(&mut group)?;
        group.close().map_err(parquet_error)?;
        self.hand_on()
    }

    /// Moves what the writer has produced so far to `out`.
    fn hand_on(&mut self) -> Result<()> {
        self.writer.flush().map_err(io_error)?;
        let bytes = std::mem::take(self.writer.inner_mut());
        self.out.write_all(&bytes).map_err(io_error)
    }

    fn finish(&mut self) -> Result<()> {
        self.writer.finish().map_err(parquet_error)?;
        self.hand_on()?;
        self.out.flush().map_err(io_error)
    }
}

type RowGroup<'a> = SerializedRowGroupWriter<'a, Vec<u8>>;

/// Writes the next column of `group`: `values` are the non-null ones, `defs` (for an
/// optional column) says which rows have one.
fn column<T: DataType>(
    group: &mut RowGroup<'_>,
    values: &[T::T],
    defs: Option<&[i16]>,
) -> Result<()> {
    let mut col = group.next_column().map_err(parquet_error)?.ok_or_else(|| {
        parquet_error(parquet::errors::ParquetError::General(
            "the schema has fewer columns than the export writes".into(),
        ))
    })?;
    col.typed::<T>()
        .write_batch(values, defs, None)
        .map_err(parquet_error)?;
    col.close().map_err(parquet_error)
}

/// An optional column's values and definition levels.
#[derive(Default)]
struct Nullable<T> {
    values: Vec<T>,
    defs: Vec<i16>,
}

impl<T> Nullable<T> {
    fn push(&mut self, value: Option<T>) {
        self.defs.push(i16::from(value.is_some()));
        self.values.extend(value);
    }

    fn clear(&mut self) {
        self.values.clear();
        self.defs.clear();
    }
}

/// Event rows gathered column by column until a row group is full.
#[derive(Default)]
struct EventColumns {
    tenant: Vec<i64>,
    origin: Vec<i32>,
    seq: Vec<i64>,
    hlc_ns: Vec<i64>,
    kind: Vec<ByteArray>,
    signal: Nullable<ByteArray>,
    entity: Nullable<i64>,
    weight: Nullable<f64>,
    ts_ns: Nullable<i64>,
    user: Nullable<i64>,
    item: Nullable<i64>,
}

/// Parquet's INT64 holds a u64 by its bits; the column's unsigned annotation tells
/// readers to read it back as u64.
fn bits(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

impl EventColumns {
    fn len(&self) -> usize {
        self.tenant.len()
    }

    fn push(&mut self, e: &Event, r: EventRow<'_>, names: &[ByteArray]) {
        self.tenant.push(bits(e.tenant.0));
        self.origin.push(i32::from(e.id.origin.0));
        self.seq.push(bits(e.id.seq));
        self.hlc_ns.push(bits(e.hlc.wall_ns));
        self.kind.push(ByteArray::from(r.kind.as_bytes().to_vec()));
        let name = r.signal.and_then(|(i, _)| names.get(i).cloned());
        self.signal.push(name);
        self.entity.push(r.entity.map(bits));
        self.weight.push(r.weight);
        self.ts_ns.push(r.ts_ns);
        self.user.push(r.user.map(bits));
        self.item.push(r.item.map(bits));
    }

    /// Writes every column, in [`EVENTS_MESSAGE`]'s order.
    fn write(&self, g: &mut RowGroup<'_>) -> Result<()> {
        column::<Int64Type>(g, &self.tenant, None)?;
        column::<Int32Type>(g, &self.origin, None)?;
        column::<Int64Type>(g, &self.seq, None)?;
        column::<Int64Type>(g, &self.hlc_ns, None)?;
        column::<ByteArrayType>(g, &self.kind, None)?;
        column::<ByteArrayType>(g, &self.signal.values, Some(&self.signal.defs))?;
        column::<Int64Type>(g, &self.entity.values, Some(&self.entity.defs))?;
        column::<DoubleType>(g, &self.weight.values, Some(&self.weight.defs))?;
        column::<Int64Type>(g, &self.ts_ns.values, Some(&self.ts_ns.defs))?;
        column::<Int64Type>(g, &self.user.values, Some(&self.user.defs))?;
        column::<Int64Type>(g, &self.item.values, Some(&self.item.defs))
    }

    fn clear(&mut self) {
        for v in [&mut self.tenant, &mut self.seq, &mut self.hlc_ns] {
            v.clear();
        }
        self.origin.clear();
        self.kind.clear();
        self.signal.clear();
        self.entity.clear();
        self.weight.clear();
        self.ts_ns.clear();
        self.user.clear();
        self.item.clear();
    }
}

pub(super) struct ParquetEvents<'a> {
    file: ParquetOut<'a>,
    names: Vec<&'a str>,
    /// Each signal's name, encoded once.
    encoded: Vec<ByteArray>,
    columns: EventColumns,
}

impl<'a> ParquetEvents<'a> {
    pub(super) fn new(out: &'a mut dyn Write, names: Vec<&'a str>) -> Result<Self> {
        Ok(ParquetEvents {
            file: ParquetOut::new(out, EVENTS_MESSAGE)?,
            encoded: names
                .iter()
                .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                .collect(),
            names,
            columns: EventColumns::default(),
        })
    }

    fn flush_group(&mut self) -> Result<()> {
        if self.columns.len() == 0 {
            return Ok(());
        }
        let columns = &self.columns;
        self.file.row_group(|g| columns.write(g))?;
        self.columns.clear();
        Ok(())
    }
}

impl EventSink for ParquetEvents<'_> {
    fn push(&mut self, e: &Event) -> Result<()> {
        let row = event_row(e, &self.names)?;
        self.columns.push(e, row, &self.encoded);
        if self.columns.len() >= ROW_GROUP_ROWS {
            self.flush_group()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.flush_group()?;
        self.file.finish()
    }
}

pub(super) fn write_scores_parquet(rows: &[(String, u64, f64)], out: &mut dyn Write) -> Result<()> {
    let mut file = ParquetOut::new(out, SCORES_MESSAGE)?;
    let mut names: Vec<(&str, ByteArray)> = Vec::new();
    for chunk in rows.chunks(ROW_GROUP_ROWS) {
        let mut signal = Vec::with_capacity(chunk.len());
        for (name, _, _) in chunk {
            // Rows come grouped by signal, so the last name is nearly always the one.
            let encoded = match names.iter().rev().find(|(n, _)| n == name) {
                Some((_, b)) => b.clone(),
                None => {
                    let b = ByteArray::from(name.as_bytes().to_vec());
                    names.push((name, b.clone()));
                    b
                }
            };
            signal.push(encoded);
        }
        let entity: Vec<i64> = chunk.iter().map(|(_, e, _)| bits(*e)).collect();
        let score: Vec<f64> = chunk.iter().map(|(_, _, s)| *s).collect();
        file.row_group(|g| {
            column::<ByteArrayType>(g, &signal, None)?;
            column::<Int64Type>(g, &entity, None)?;
            column::<DoubleType>(g, &score, None)
        })?;
    }
    file.finish()
}
