//! Exports read back: events re-ingested into a fresh database rebuild bit-identical
//! scores (from CSV and from Parquet), exported scores equal the database's own reads,
//! and an events export refuses to pass off a snapshot-compacted log as complete.

use std::collections::BTreeMap;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use tidaldb::runtime::tools::{EVENT_COLUMNS, ExportFormat, ExportWhat, SCORE_COLUMNS, export};
use tidaldb::{EntityId, TenantId, TidalDb, TidalError, Timestamp};

use super::{at, open, schema, scores, write_mixed};
use crate::common::{T0, ts};

/// One exported event, by column name.
#[derive(Debug, Default)]
struct Row {
    kind: String,
    signal: Option<String>,
    entity: Option<u64>,
    weight: Option<f64>,
    ts_ns: Option<i64>,
    user: Option<u64>,
    item: Option<u64>,
}

fn parse_csv_events(csv: &str) -> Vec<Row> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, EVENT_COLUMNS);
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            Row {
                kind: f[4].to_owned(),
                signal: some(f[5]),
                entity: some(f[6]).map(|s| s.parse().unwrap()),
                weight: some(f[7]).map(|s| s.parse().unwrap()),
                ts_ns: some(f[8]).map(|s| s.parse().unwrap()),
                user: some(f[9]).map(|s| s.parse().unwrap()),
                item: some(f[10]).map(|s| s.parse().unwrap()),
            }
        })
        .collect()
}

fn parquet_rows(bytes: Vec<u8>) -> Vec<BTreeMap<String, Field>> {
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(name, field)| (name.clone(), field.clone()))
                .collect()
        })
        .collect()
}

fn parse_parquet_events(bytes: Vec<u8>) -> Vec<Row> {
    let u = |f: &Field| match f {
        Field::ULong(v) => Some(*v),
        Field::Null => None,
        other => panic!("not a u64: {other:?}"),
    };
    parquet_rows(bytes)
        .iter()
        .map(|r| Row {
            kind: match &r["kind"] {
                Field::Str(s) => s.clone(),
                other => panic!("{other:?}"),
            },
            signal: match &r["signal"] {
                Field::Str(s) => Some(s.clone()),
                _ => None,
            },
            entity: u(&r["entity"]),
            weight: match r["weight"] {
                Field::Double(w) => Some(w),
                _ => None,
            },
            ts_ns: match r["ts_ns"] {
                Field::Long(t) => Some(t),
                _ => None,
            },
            user: u(&r["user"]),
            item: u(&r["item"]),
        })
        .collect()
}

/// Writes the rows into a fresh in-memory database, runs of one signal as one
/// `signal_batch` with the rows' own timestamps, in the exported order.
fn reingest(rows: &[Row]) -> TidalDb {
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    let mut i = 0;
    while i < rows.len() {
        let r = &rows[i];
        match r.kind.as_str() {
            "signal" => {
                let signal = r.signal.clone().unwrap();
                let run: Vec<&Row> = rows[i..]
                    .iter()
                    .take_while(|x| x.signal.as_ref() == Some(&signal))
                    .collect();
                let entities: Vec<EntityId> =
                    run.iter().map(|x| EntityId(x.entity.unwrap())).collect();
                let weights: Vec<f64> = run.iter().map(|x| x.weight.unwrap()).collect();
                let times: Vec<Timestamp> = run.iter().map(|x| ts(x.ts_ns.unwrap())).collect();
                db.signal_batch(&signal, &entities, &weights, Some(&times))
                    .unwrap();
                i += run.len();
                continue;
            }
            "hide" => db.hide_item(
                EntityId(r.user.unwrap()),
                EntityId(r.item.unwrap()),
                Some(ts(r.ts_ns.unwrap())),
            ),
            "unhide" => db.unhide_item(
                EntityId(r.user.unwrap()),
                EntityId(r.item.unwrap()),
                Some(ts(r.ts_ns.unwrap())),
            ),
            other => panic!("unknown kind {other}"),
        }
        .unwrap();
        i += 1;
    }
    db
}

#[test]
fn exported_events_reingested_elsewhere_rebuild_bit_identical_scores() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 0);
    let written = write_mixed(&db, 150, 4);
    let original = scores(&db);
    assert!(original.len() > 20);
    db.close().unwrap();

    let events = ExportWhat::Events {
        tenant: None,
        allow_partial: false,
    };
    let mut csv = Vec::new();
    let n = export(dir.path(), events, ExportFormat::Csv, &mut csv).unwrap();
    assert_eq!(n, written);
    let rows = parse_csv_events(std::str::from_utf8(&csv).unwrap());
    assert_eq!(rows.len() as u64, written);
    assert!(rows.iter().any(|r| r.kind == "hide") && rows.iter().any(|r| r.kind == "unhide"));
    assert_eq!(scores(&reingest(&rows)), original, "from CSV");

    let mut parquet = Vec::new();
    let n = export(dir.path(), events, ExportFormat::Parquet, &mut parquet).unwrap();
    assert_eq!(n, written);
    let rows = parse_parquet_events(parquet);
    assert_eq!(rows.len() as u64, written);
    assert_eq!(scores(&reingest(&rows)), original, "from Parquet");
}

#[test]
fn exported_scores_equal_the_databases_own_reads_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 40);
    write_mixed(&db, 120, 5);
    let original = scores(&db);
    db.close().unwrap();
    let what = ExportWhat::Scores {
        tenant: None,
        at: at(),
    };

    let mut csv = Vec::new();
    let n = export(dir.path(), what, ExportFormat::Csv, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), SCORE_COLUMNS.join(","));
    let mut from_csv = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let score: f64 = f[2].parse().unwrap();
        from_csv.insert((f[0].to_owned(), f[1].parse::<u64>().unwrap()), score);
    }
    assert_eq!(n as usize, from_csv.len());
    // Entities whose score decayed to exactly 0 are exported too; the rest match exactly.
    from_csv.retain(|_, s| *s != 0.0);
    assert_eq!(from_csv, original);

    let mut parquet = Vec::new();
    let n = export(dir.path(), what, ExportFormat::Parquet, &mut parquet).unwrap();
    let rows = parquet_rows(parquet);
    assert_eq!(n as usize, rows.len());
    let db = open(dir.path(), 0);
    for r in &rows {
        let (Field::Str(signal), Field::ULong(entity), Field::Double(score)) =
            (&r["signal"], &r["entity"], &r["score"])
        else {
            panic!("{r:?}")
        };
        let read = db
            .read_decay_score_at(EntityId(*entity), signal, at())
            .unwrap();
        assert_eq!(read.to_bits(), score.to_bits(), "{signal} {entity}");
    }
}

#[test]
fn an_events_export_is_refused_once_a_snapshot_holds_some_events_unless_partial() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 0);
    write_mixed(&db, 20, 6);
    db.snapshot().unwrap();
    for i in 0..3 {
        db.signal("like", EntityId(i), 2.0, Some(ts(T0))).unwrap();
    }
    db.close().unwrap();
    let mut out = Vec::new();
    let whole = ExportWhat::Events {
        tenant: None,
        allow_partial: false,
    };
    let err = export(dir.path(), whole, ExportFormat::Csv, &mut out).unwrap_err();
    assert!(matches!(err, TidalError::InvalidArgument { .. }), "{err}");
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert!(out.is_empty(), "nothing is written before a refusal");
    let partial = ExportWhat::Events {
        tenant: None,
        allow_partial: true,
    };
    assert_eq!(
        export(dir.path(), partial, ExportFormat::Csv, &mut out).unwrap(),
        3
    );
    let unknown = ExportWhat::Scores {
        tenant: Some(TenantId(9)),
        at: at(),
    };
    let err = export(dir.path(), unknown, ExportFormat::Csv, &mut out).unwrap_err();
    assert!(matches!(err, TidalError::UnknownTenant(9)), "{err}");
}
