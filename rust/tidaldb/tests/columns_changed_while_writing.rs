//! `TidalDb::signal_batch_shared` reads a bulk write's columns where the caller keeps them,
//! a chunk at a time, and lets other code run between chunks (`SharedColumns::pause`).
//! Rows are checked as a whole before anything is written; a chunk read after the caller
//! reports that code ran is checked again. A row made invalid meanwhile must stop the
//! write at that chunk, with the events before it written and nothing after, and a row
//! changed to another valid value must be written as it then stands. Columns that other
//! threads may write even during a read are checked in every chunk, as copied.
//!
//! The oracle is the analytical decay sum of the rows the write is expected to hold.

use std::time::Duration;

use tidaldb::node::{SignalColumns, Times};
use tidaldb::runtime::{BULK_CHUNK, SharedColumns};
use tidaldb::schema::SignalIdx;
use tidaldb::{EntityId, Result, TidalDb, TidalError, Timestamp};

mod common;

const HALF_LIFE: Duration = Duration::from_secs(600);
const ENTITIES: u64 = 40;
const ROWS: usize = 5 * BULK_CHUNK - 300;
const BASE_SECS: f64 = 1.7e9;

/// Columns that change themselves at a given pause, as another thread would.
struct ChangingColumns {
    ids: Vec<EntityId>,
    weights: Vec<f64>,
    secs: Vec<f64>,
    pauses: usize,
    /// At which pause to set `weights[row] = weight` (reported as code that ran).
    change: Option<Change>,
    /// Set `weights[row] = weight` as the row's chunk is read (not in the first read,
    /// which lends every row), reporting nothing: as a thread that writes the rows
    /// during reads would.
    written_during_reads: Option<(usize, f64)>,
}

#[derive(Clone, Copy)]
struct Change {
    at_pause: usize,
    row: usize,
    weight: f64,
}

impl ChangingColumns {
    fn new(change: Option<Change>) -> Self {
        ChangingColumns {
            ids: (0..ROWS as u64).map(|i| EntityId(i % ENTITIES)).collect(),
            weights: (0..ROWS).map(|i| 1.0 + (i % 3) as f64).collect(),
            secs: (0..ROWS).map(|i| BASE_SECS + i as f64 * 0.01).collect(),
            pauses: 0,
            change,
            written_during_reads: None,
        }
    }
}

impl SharedColumns for ChangingColumns {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn read(
        &mut self,
        signal: SignalIdx,
        start: usize,
        end: usize,
        f: &mut dyn FnMut(&SignalColumns<'_>) -> Result<()>,
    ) -> Result<()> {
        if let Some((row, weight)) = self.written_during_reads
            && (start..end).contains(&row)
            && end - start < self.ids.len()
        {
            self.weights[row] = weight;
        }
        f(&SignalColumns {
            signal,
            entities: &self.ids[start..end],
            weights: &self.weights[start..end],
            ts: Some(Times::Seconds(&self.secs[start..end])),
        })
    }

    fn pause(&mut self) -> bool {
        self.pauses += 1;
        match self.change {
            Some(c) if c.at_pause == self.pauses => {
                self.weights[c.row] = c.weight;
                true
            }
            _ => false,
        }
    }

    fn written_during_reads(&self) -> bool {
        self.written_during_reads.is_some()
    }
}

fn db() -> TidalDb {
    // One ingest thread: chunks of `BULK_CHUNK` rows, so the chunk boundaries are known.
    common::ephemeral_db(common::view_signal(HALF_LIFE).add().build().unwrap(), 1)
}

/// Asserts that `db` holds exactly the first `rows` rows of `columns`: its event count,
/// and every entity's score against the analytical sum of those rows.
fn assert_holds_first(db: &TidalDb, columns: &ChangingColumns, rows: usize) {
    assert_eq!(db.events_applied().unwrap(), rows as u64);
    let at = Timestamp::from_secs_f64(BASE_SECS + 3_600.0).unwrap();
    let ids: Vec<EntityId> = (0..ENTITIES).map(EntityId).collect();
    let mut scores = vec![0.0; ids.len()];
    db.read_decay_scores_at("view", &ids, at, &mut scores)
        .unwrap();
    for (entity, score) in ids.iter().zip(scores) {
        let events = (0..rows).filter(|&i| columns.ids[i] == *entity).map(|i| {
            let t = Timestamp::from_secs_f64(columns.secs[i]).unwrap();
            (t, columns.weights[i])
        });
        common::assert_close(
            score,
            common::decay_sum(events, at, HALF_LIFE),
            &format!("{entity:?}"),
        );
    }
}

#[test]
fn unchanged_columns_are_written_whole() {
    let db = db();
    let mut columns = ChangingColumns::new(None);
    assert_eq!(db.signal_batch_shared("view", &mut columns).unwrap(), ROWS);
    assert_eq!(
        columns.pauses,
        ROWS.div_ceil(BULK_CHUNK) - 1,
        "a pause between chunks"
    );
    assert_holds_first(&db, &columns, ROWS);
}

#[test]
fn a_row_invalid_from_the_start_refuses_the_whole_write() {
    // In the first chunk or a later one; read in place, or copied chunk by chunk.
    for row in [7, ROWS - 1] {
        for copied in [false, true] {
            let db = db();
            let mut columns = ChangingColumns::new(None);
            columns.weights[row] = f64::NAN;
            // A change to a valid weight of a row the write never reaches.
            columns.written_during_reads = copied.then_some((ROWS, 1.0));
            let refused = db.signal_batch_shared("view", &mut columns);
            assert!(
                matches!(refused, Err(TidalError::InvalidWeight { .. })),
                "row {row}, copied {copied}: {refused:?}"
            );
            assert_eq!(db.events_applied().unwrap(), 0);
        }
    }
}

#[test]
fn a_row_made_invalid_stops_the_write_at_its_chunk() {
    let last_chunk = (ROWS - 1) / BULK_CHUNK * BULK_CHUNK;
    for bad in [f64::NAN, f64::NEG_INFINITY, -0.0, 2e6] {
        let db = db();
        let mut columns = ChangingColumns::new(Some(Change {
            at_pause: 1,
            row: ROWS - 1,
            weight: bad,
        }));
        let written = stopped_at(db.signal_batch_shared("view", &mut columns), bad);
        assert_eq!(
            written, last_chunk,
            "{bad}: every chunk before the bad row's"
        );
        assert_holds_first(&db, &columns, written);
        // The database takes the next write as usual.
        let mut next = ChangingColumns::new(None);
        next.ids.iter_mut().for_each(|id| id.0 += ENTITIES);
        db.signal_batch_shared("view", &mut next).unwrap();
        assert_eq!(db.events_applied().unwrap(), (written + ROWS) as u64);
    }
}

#[test]
fn a_row_written_during_a_read_is_caught_in_the_copy_of_its_chunk() {
    let row = 2 * BULK_CHUNK + 11;
    for bad in [f64::NAN, 2e6] {
        let db = db();
        let mut columns = ChangingColumns::new(None);
        columns.written_during_reads = Some((row, bad));
        let written = stopped_at(db.signal_batch_shared("view", &mut columns), bad);
        assert_eq!(
            written,
            2 * BULK_CHUNK,
            "{bad}: the chunks before the row's"
        );
        assert_holds_first(&db, &columns, written);
    }
    // Unchanged, such columns are written whole, each chunk copied.
    let db = db();
    let mut columns = ChangingColumns::new(None);
    columns.written_during_reads = Some((row, 2.0));
    assert_eq!(db.signal_batch_shared("view", &mut columns).unwrap(), ROWS);
    assert_holds_first(&db, &columns, ROWS);
}

/// The `written` of a write stopped by a bad weight `bad` that appeared during it.
fn stopped_at(outcome: Result<usize>, bad: f64) -> usize {
    let Err(TidalError::ChangedWhileWriting { written, cause }) = outcome else {
        panic!("{bad}: {outcome:?}");
    };
    assert!(
        matches!(*cause, TidalError::InvalidWeight { .. }),
        "{cause:?}"
    );
    written
}

#[test]
fn a_row_changed_to_another_valid_weight_is_written_as_it_stands() {
    let db = db();
    let row = 3 * BULK_CHUNK + 7;
    let mut columns = ChangingColumns::new(Some(Change {
        at_pause: 2,
        row,
        weight: 40.0,
    }));
    assert_eq!(db.signal_batch_shared("view", &mut columns).unwrap(), ROWS);
    assert_eq!(columns.weights[row], 40.0);
    assert_holds_first(&db, &columns, ROWS);
}

#[test]
fn a_logged_database_copies_the_rows_before_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = TidalDb::builder()
        .with_data_dir(dir.path())
        .with_schema(common::view_signal(HALF_LIFE).add().build().unwrap())
        .open()
        .unwrap();
    let mut columns = ChangingColumns::new(Some(Change {
        at_pause: 1,
        row: ROWS - 1,
        weight: f64::NAN,
    }));
    assert_eq!(db.signal_batch_shared("view", &mut columns).unwrap(), ROWS);
    assert_eq!(columns.pauses, 0, "no pause: the rows were copied at once");
    assert_holds_first(&db, &columns, ROWS);
}

/// Many new entities and more rows than one spread chunk, on two threads, copied chunk by
/// chunk: the rest of the write is checked beside the first chunk's slot creation.
#[test]
fn a_spread_copied_write_refused_by_its_rest_writes_nothing() {
    tidaldb::ledger::spread_every_batch();
    const SPREAD_ROWS: usize = 300_000;
    let spread_db =
        || common::ephemeral_db(common::view_signal(HALF_LIFE).add().build().unwrap(), 2);
    let ids: Vec<EntityId> = (0..SPREAD_ROWS as u64)
        .map(|i| EntityId(i % 50_000))
        .collect();
    let weights: Vec<f64> = (0..SPREAD_ROWS).map(|i| 1.0 + (i % 5) as f64).collect();
    let secs: Vec<f64> = (0..SPREAD_ROWS)
        .map(|i| BASE_SECS + i as f64 * 1e-3)
        .collect();
    let lend = |weights: &[f64]| ChangingColumns {
        ids: ids.clone(),
        weights: weights.to_vec(),
        secs: secs.clone(),
        pauses: 0,
        change: None,
        // A change to a valid weight: the columns are copied chunk by chunk.
        written_during_reads: Some((SPREAD_ROWS - 2, 9.0)),
    };
    let refusing = spread_db();
    for (row, bad) in [(SPREAD_ROWS - 1, f64::NAN), (10, f64::INFINITY)] {
        let mut bad_weights = weights.clone();
        bad_weights[row] = bad;
        let refused = refusing.signal_batch_shared("view", &mut lend(&bad_weights));
        assert!(
            matches!(refused, Err(TidalError::InvalidWeight { .. })),
            "row {row}: {refused:?}"
        );
        assert_eq!(refusing.events_applied().unwrap(), 0, "row {row}");
    }
    // After the refusals, the same write leaves the state a fresh database's does.
    let fresh = spread_db();
    let written = [&refusing, &fresh].map(|db| {
        let mut lent = lend(&weights);
        assert_eq!(
            db.signal_batch_shared("view", &mut lent).unwrap(),
            SPREAD_ROWS
        );
        lent
    });
    let written = &written[1];
    assert_eq!(written.weights[SPREAD_ROWS - 2], 9.0, "the change was made");
    let at = Timestamp::from_secs_f64(BASE_SECS + 3_600.0).unwrap();
    let every: Vec<EntityId> = (0..50_000).map(EntityId).collect();
    let scores = |db: &TidalDb| {
        let mut out = vec![0.0; every.len()];
        db.read_decay_scores_at("view", &every, at, &mut out)
            .unwrap();
        out.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(scores(&refusing), scores(&fresh));
    let changed = every[(SPREAD_ROWS - 2) % 50_000];
    let expected = (0..SPREAD_ROWS).filter(|&i| ids[i] == changed).map(|i| {
        let t = Timestamp::from_secs_f64(secs[i]).unwrap();
        (t, written.weights[i])
    });
    let mut score = [0.0];
    fresh
        .read_decay_scores_at("view", &[changed], at, &mut score)
        .unwrap();
    common::assert_close(
        score[0],
        common::decay_sum(expected, at, HALF_LIFE),
        "changed",
    );
}
