//! A bulk write read where its caller keeps it, while other threads may run.
//!
//! A bulk write must read its rows as they are when it checks them, or a row changed to a
//! NaN after the check would reach the ledger. A caller whose memory other threads can
//! write (numpy arrays, with other Python threads alive) used to copy the whole write
//! first; for a large write that copy went into fresh pages and cost a fifth of the
//! write. Instead, the caller lends the write its columns a chunk at a time, between two
//! chunks lets other threads run, and says whether it did. The write checks every row up
//! front, as always, and once other code may have run, checks each later chunk again
//! before it applies it: a row that became invalid meanwhile stops the write there, with
//! [`ChangedWhileWriting`](crate::TidalError::ChangedWhileWriting) saying how many events
//! were written. Columns that other threads may write even during a read
//! ([`SharedColumns::written_during_reads`]) have each chunk copied, and the copy checked
//! and applied: the first chunk's copy is checked, then the rest of the write in place,
//! beside the first chunk's new slots.

use super::db::TidalDb;
use crate::error::Result;
use crate::ledger::{piece_len, run_pieces};
use crate::node::{SignalColumns, Times};
use crate::schema::{EntityId, SignalIdx, Timestamp};

/// The rows of a bulk write of one signal, lent a range at a time.
pub trait SharedColumns {
    /// How many rows the write has.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on rows `start..end` as they stand now, as columns of `signal`; an error
    /// if the columns no longer hold those rows. `f` reaches no
    /// [`checkpoint`](crate::interrupt::checkpoint): the caller's own code runs only
    /// between reads, in checkpoints and [`Self::pause`].
    fn read(
        &mut self,
        signal: SignalIdx,
        start: usize,
        end: usize,
        f: &mut dyn FnMut(&SignalColumns<'_>) -> Result<()>,
    ) -> Result<()>;

    /// Called between two chunks: lets other threads run if the caller wants them to.
    /// Whether code that could change the rows ran since the last [`Self::read`].
    fn pause(&mut self) -> bool;

    /// Whether other threads may write the rows even while a read runs (numpy code of
    /// another Python thread releases the interpreter in its loops). Then a row could
    /// change between its check and its apply, so each chunk is copied, and the copy
    /// checked, before it is applied.
    fn written_during_reads(&self) -> bool {
        false
    }
}

/// A chunk's rows copied out of columns other threads may be writing.
#[derive(Default)]
pub(super) struct ChunkCopy {
    entities: Vec<EntityId>,
    weights: Vec<f64>,
    stamps: Vec<Timestamp>,
    secs: Vec<f64>,
}

impl ChunkCopy {
    /// `rows`, copied into this scratch (kept from one chunk to the next), a large chunk
    /// on up to `threads` threads.
    pub(super) fn fill<'a>(
        &'a mut self,
        rows: &SignalColumns<'_>,
        threads: usize,
    ) -> SignalColumns<'a> {
        let threads = if rows.len() < SPREAD_COPY_MIN_ROWS {
            1
        } else {
            threads
        };
        let (stamps, secs): (&[Timestamp], &[f64]) = match rows.ts {
            None => (&[], &[]),
            Some(Times::Stamps(t)) => (t, &[]),
            Some(Times::Seconds(s)) => (&[], s),
        };
        copy_spread(&mut self.entities, rows.entities, threads);
        copy_spread(&mut self.weights, rows.weights, threads);
        copy_spread(&mut self.stamps, stamps, threads);
        copy_spread(&mut self.secs, secs, threads);
        self.columns(rows.signal)
    }

    /// The rows last filled in, as columns of `signal`: their times are whichever kind
    /// holds any (rows with none were dated by the write).
    pub(super) fn columns(&self, signal: SignalIdx) -> SignalColumns<'_> {
        let ts = if !self.stamps.is_empty() {
            Some(Times::Stamps(&self.stamps))
        } else if !self.secs.is_empty() {
            Some(Times::Seconds(&self.secs))
        } else {
            None
        };
        SignalColumns {
            signal,
            entities: &self.entities,
            weights: &self.weights,
            ts,
        }
    }
}

/// Chunks from this many rows on are copied on several threads: a 256K-row chunk's three
/// columns are 6 MiB, a millisecond of copying on one.
const SPREAD_COPY_MIN_ROWS: usize = 1 << 16;

/// Makes `into` a copy of `from`, in pieces on up to `threads` threads, each piece
/// written once (the first chunk's scratch is fresh pages, faulted in on every thread).
fn copy_spread<T: Copy + Send + Sync>(into: &mut Vec<T>, from: &[T], threads: usize) {
    into.clear();
    if threads <= 1 {
        into.extend_from_slice(from);
        return;
    }
    into.reserve(from.len());
    let pieces = into.spare_capacity_mut()[..from.len()].chunks_mut(piece_len(from.len()));
    run_pieces(threads, from.len(), pieces, |rows, piece| {
        for (entry, value) in piece.iter_mut().zip(&from[rows]) {
            entry.write(*value);
        }
    });
    // SAFETY: the pieces tile the first `from.len()` entries of the spare capacity, which
    // `reserve` made room for; `run_pieces` ran every piece (a panic in any would have
    // reached this thread instead), and each wrote every entry of its own.
    unsafe { into.set_len(from.len()) };
}

/// Rows in memory of the write's own, which nothing changes while it runs.
impl SharedColumns for SignalColumns<'_> {
    fn len(&self) -> usize {
        SignalColumns::len(self)
    }

    fn read(
        &mut self,
        _signal: SignalIdx,
        start: usize,
        end: usize,
        f: &mut dyn FnMut(&SignalColumns<'_>) -> Result<()>,
    ) -> Result<()> {
        f(&self.rows(start, end))
    }

    fn pause(&mut self) -> bool {
        false
    }
}

impl TidalDb {
    /// [`Self::signal_batch_secs`] for columns other threads may change while it runs
    /// (see the module's doc): whole or not at all while they stay as they were. An
    /// in-memory database reads them where they are, a chunk at a time; one that logs its
    /// writes needs every row at once, and copies them first.
    pub fn signal_batch_shared(
        &self,
        name: &str,
        columns: &mut dyn SharedColumns,
    ) -> Result<usize> {
        let signal = self.resolve(name)?;
        let mut st = self.lock()?;
        if st.writes_stay_in_memory() {
            st.write_unlogged(signal, columns)?;
            return Ok(columns.len());
        }
        drop(st);
        let mut copy = ChunkCopy::default();
        columns.read(signal, 0, columns.len(), &mut |rows| {
            copy.fill(rows, 1);
            Ok(())
        })?;
        let rows = copy.columns(signal);
        self.signal_columns(name, rows.entities, rows.weights, rows.ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns of `len` rows whose every value differs, with times of the kind `ts` names.
    fn columns(len: usize, ts: u8) -> (Vec<EntityId>, Vec<f64>, Vec<Timestamp>, Vec<f64>) {
        let ids = (0..len as u64).map(|i| EntityId(i * 7 + 1)).collect();
        let weights = (0..len).map(|i| i as f64 + 0.5).collect();
        let stamps = (0..len as i64)
            .map(|i| Timestamp::from_nanos(i + ts as i64).unwrap())
            .collect();
        let secs = (0..len).map(|i| 1.7e9 + i as f64).collect();
        (ids, weights, stamps, secs)
    }

    #[test]
    fn a_chunk_copy_equals_its_rows_on_any_thread_count_and_when_refilled() {
        let mut copy = ChunkCopy::default();
        // Spread from SPREAD_COPY_MIN_ROWS on, in pieces that divide unevenly; then
        // shorter and empty chunks into the same scratch.
        for len in [1 << 16, (1 << 16) + 1, 16 * 4_375 + 1, 3, 0] {
            for kind in 0..3u8 {
                let (ids, weights, stamps, secs) = columns(len, kind);
                let rows = SignalColumns {
                    signal: SignalIdx(0),
                    entities: &ids,
                    weights: &weights,
                    ts: match kind {
                        0 => None,
                        1 => Some(Times::Stamps(&stamps)),
                        _ => Some(Times::Seconds(&secs)),
                    },
                };
                for threads in [1, 2, 3] {
                    let copied = copy.fill(&rows, threads);
                    assert_eq!(copied.entities, rows.entities, "{len} {kind} {threads}");
                    assert_eq!(copied.weights, rows.weights);
                    match (copied.ts, rows.ts) {
                        (None, None) => {}
                        // No rows: no times to keep, of either kind.
                        (None, Some(t)) if t.is_empty() => {}
                        (Some(Times::Stamps(a)), Some(Times::Stamps(b))) => assert_eq!(a, b),
                        (Some(Times::Seconds(a)), Some(Times::Seconds(b))) => assert_eq!(a, b),
                        other => panic!("times of another kind: {other:?}"),
                    }
                }
            }
        }
    }
}
