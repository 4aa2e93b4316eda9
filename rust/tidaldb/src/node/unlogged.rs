//! A bulk write of one signal that no one will read as events.
//!
//! Every write becomes events because the log, the peers and the quotas consume events. A
//! lone in-memory database has none of them: it drops the events the node hands it. For
//! its bulk writes, building them (about 90 bytes each, written and read back) and
//! admitting each op twice cost more than applying the signals. So the node admits the
//! columns as a whole and applies them as one run per chunk, with the ids, times and
//! rights the events would have had; the ledger ends in the state the events would have
//! left it in.

use std::sync::OnceLock;
use std::time::Duration;

use super::Node;
use super::admission::check_not_future;
use crate::error::{Result, TidalError};
use crate::event::EventId;
use crate::ledger::{
    Beside, RunEvents, RunItem, all_weights_valid, piece_len, run_alone, validate_weight,
};
use crate::node::WriteAck;
use crate::schema::{EntityId, SignalIdx, Timestamp};

/// Writes from this many rows on are checked on the ingest threads.
const SPREAD_CHECK_MIN_ROWS: usize = 1 << 18;

/// One bulk write of `signal`: an entity and a weight per event, and a time per event or
/// none (then every event is dated at the write's `now`).
#[derive(Clone, Copy, Debug)]
pub struct SignalColumns<'a> {
    pub signal: SignalIdx,
    pub entities: &'a [EntityId],
    pub weights: &'a [f64],
    pub ts: Option<Times<'a>>,
}

/// The times of a bulk write: timestamps, or Unix seconds as a caller holds them (a numpy
/// array read in place), converted row by row as [`Timestamp::from_secs_f64`] would,
/// once the whole column is checked.
#[derive(Clone, Copy, Debug)]
pub enum Times<'a> {
    Stamps(&'a [Timestamp]),
    Seconds(&'a [f64]),
}

impl<'a> Times<'a> {
    pub fn len(&self) -> usize {
        match self {
            Times::Stamps(t) => t.len(),
            Times::Seconds(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rows(&self, start: usize, end: usize) -> Times<'a> {
        match self {
            Times::Stamps(t) => Times::Stamps(&t[start..end]),
            Times::Seconds(s) => Times::Seconds(&s[start..end]),
        }
    }

    /// The latest time; an error if a time in seconds is out of range.
    fn latest(&self) -> Result<Option<Timestamp>> {
        match self {
            Times::Stamps(t) => Ok(t.iter().max().copied()),
            Times::Seconds(s) => Timestamp::latest_of_secs_f64(s).map_err(|(_, e)| e),
        }
    }

    /// Row `i` in nanoseconds; for seconds, only once [`Self::latest`] accepted them.
    #[inline]
    fn nanos(&self, i: usize) -> i64 {
        match self {
            Times::Stamps(t) => t[i].as_nanos(),
            Times::Seconds(s) => Timestamp::from_checked_secs_f64(s[i]).as_nanos(),
        }
    }
}

impl SignalColumns<'_> {
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The rows `start..end`.
    pub fn rows(&self, start: usize, end: usize) -> Self {
        SignalColumns {
            signal: self.signal,
            entities: &self.entities[start..end],
            weights: &self.weights[start..end],
            ts: self.ts.map(|t| t.rows(start, end)),
        }
    }
}

impl Node {
    /// Checks every row as admission checks a signal at `now`, writing nothing: one bad
    /// row refuses the whole write.
    pub fn check_signal_columns(&self, now: Timestamp, columns: &SignalColumns<'_>) -> Result<()> {
        self.ledger.schema().checked(columns.signal)?;
        run_alone(&RowsCheck::new(
            now,
            self.cfg.max_future_skew,
            self.cfg.ingest_threads,
            columns,
        ))
    }

    /// Writes `rows` as [`Self::write_unlogged_signals`] does, but only if every row of
    /// `check` passes [`Self::check_signal_columns`]: checked while the rows' new entities
    /// get their slots (see `ledger/beside.rs`). A refused write writes nothing. `check`
    /// is the whole write (`rows` its first chunk), or the rest of it when `rows` were
    /// checked already.
    pub fn write_unlogged_checking(
        &mut self,
        now: Timestamp,
        check: &SignalColumns<'_>,
        rows: &SignalColumns<'_>,
    ) -> Result<WriteAck> {
        self.ledger.schema().checked(check.signal)?;
        debug_assert_eq!(check.signal, rows.signal, "one signal");
        let check = RowsCheck::new(
            now,
            self.cfg.max_future_skew,
            self.cfg.ingest_threads,
            check,
        );
        self.write_unlogged(now, rows, Some(&check))
    }

    /// Applies rows that [`check_signal_columns`](Self::check_signal_columns) accepted,
    /// without building their events: only for a driver that logs nothing, has no peer
    /// and charges no quota (see the module's doc).
    pub fn write_unlogged_signals(
        &mut self,
        now: Timestamp,
        columns: &SignalColumns<'_>,
    ) -> Result<WriteAck> {
        debug_assert!(
            self.check_signal_columns(now, columns).is_ok(),
            "the rows were checked"
        );
        self.write_unlogged(now, columns, None)
    }

    fn write_unlogged(
        &mut self,
        now: Timestamp,
        columns: &SignalColumns<'_>,
        check: Option<&dyn Beside>,
    ) -> Result<WriteAck> {
        if self.cfg.quotas.is_some() || !self.peers.is_empty() {
            return Err(TidalError::InvalidArgument {
                name: "write",
                reason: "a node with quotas or peers must log its writes as events".into(),
            });
        }
        let origin = self.cfg.id;
        let first = self.ledger.version_vector().get(origin) + 1;
        let run = ColumnRun {
            columns,
            now: now.as_nanos(),
            first,
        };
        self.ledger
            .apply_admitted_run(origin, columns.signal, &run, check)?;
        // The clock moves on as it would have stamping the events: nothing later may be
        // stamped before them.
        self.clock.now(now);
        self.debug_check_rights();
        Ok(WriteAck::Applied {
            first: EventId { origin, seq: first },
            count: columns.len(),
        })
    }
}

/// The check of a bulk write's rows, in pieces that any thread may run, as admission
/// checks each signal: every weight valid, every time in range and not too far ahead.
struct RowsCheck<'a> {
    now: Timestamp,
    max_skew: Duration,
    /// Threads for the pieces when nothing else runs beside them.
    threads: usize,
    columns: &'a SignalColumns<'a>,
    /// Rows per piece: the whole write, or [`piece_len`] from [`SPREAD_CHECK_MIN_ROWS`]
    /// rows on (a 1M-row check reads 16 MB).
    piece_rows: usize,
    /// Each piece's latest time once it ran; `None` inside if some row of it is bad.
    found: Vec<OnceLock<Option<Option<Timestamp>>>>,
}

impl<'a> RowsCheck<'a> {
    fn new(
        now: Timestamp,
        max_skew: Duration,
        threads: usize,
        columns: &'a SignalColumns<'a>,
    ) -> Self {
        debug_assert_eq!(
            columns.weights.len(),
            columns.len(),
            "one weight per entity"
        );
        debug_assert!(
            columns.ts.is_none_or(|t| t.len() == columns.len()),
            "one time per entity"
        );
        let piece_rows = if columns.len() < SPREAD_CHECK_MIN_ROWS {
            columns.len().max(1)
        } else {
            piece_len(columns.len())
        };
        let pieces = columns.len().div_ceil(piece_rows).max(1);
        RowsCheck {
            now,
            max_skew,
            threads,
            columns,
            piece_rows,
            found: (0..pieces).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl Beside for RowsCheck<'_> {
    fn pieces(&self) -> usize {
        self.found.len()
    }

    fn threads(&self) -> usize {
        self.threads
    }

    /// Piece `k`: the latest time of its rows, `None` if any row is bad.
    fn run_piece(&self, k: usize) {
        let start = (k * self.piece_rows).min(self.columns.len());
        let end = self.columns.len().min(start + self.piece_rows);
        let rows = self.columns.rows(start, end);
        let latest = all_weights_valid(rows.weights)
            .then(|| rows.ts.map_or(Some(None), |t| t.latest().ok()))
            .flatten();
        let stored = self.found[k].set(latest);
        debug_assert!(stored.is_ok(), "each piece runs once");
    }

    /// Whether the write may go on, once every piece ran: the exact error of the first bad
    /// row if not, as the serial scan finds it.
    fn verdict(&self) -> Result<()> {
        let scanned = self.found.iter().try_fold(None, |latest, piece| {
            let piece = piece.get().copied();
            debug_assert!(piece.is_some(), "every piece ran");
            Some(latest.max(piece.flatten()?))
        });
        let latest = match scanned {
            Some(latest) => latest,
            None => {
                // Some row is bad: find the first, for its error.
                for &w in self.columns.weights {
                    validate_weight(w)?;
                }
                self.columns.ts.map(|t| t.latest()).transpose()?.flatten()
            }
        };
        // The latest time decides: every other is no further ahead.
        if let Some(latest) = latest {
            check_not_future(self.max_skew, self.now, latest)?;
        }
        Ok(())
    }
}

/// The rows of a bulk write read as the run of events they stand for: numbered from
/// `first`, dated `now` where the write gave no times.
struct ColumnRun<'a> {
    columns: &'a SignalColumns<'a>,
    now: i64,
    first: u64,
}

impl RunEvents for ColumnRun<'_> {
    fn len(&self) -> usize {
        self.columns.len()
    }

    #[inline]
    fn entity(&self, i: usize) -> EntityId {
        self.columns.entities[i]
    }

    #[inline]
    fn item(&self, i: usize) -> RunItem {
        let ts = self.columns.ts.map_or(self.now, |t| t.nanos(i));
        (
            self.columns.entities[i],
            self.columns.weights[i],
            ts,
            self.first + i as u64,
        )
    }

    #[inline]
    fn seq(&self, i: usize) -> u64 {
        self.first + i as u64
    }
}
