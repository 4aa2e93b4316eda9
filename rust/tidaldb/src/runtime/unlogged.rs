//! Bulk writes of a lone in-memory database, applied without events (see
//! `node/unlogged.rs`): nothing it has would read them.

use super::db::PARALLEL_COLUMN_CHUNK;
use super::shared_columns::{ChunkCopy, SharedColumns};
use super::state::State;
use crate::error::{Result, TidalError};
use crate::interrupt;
use crate::schema::{SignalIdx, Timestamp};

impl State {
    /// Writes `columns` of `signal` whole or not at all, in bounded memory, as the logged
    /// path (`TidalDb::write_streamed`) does: every row is checked before anything is
    /// written (while the first chunk's new entities get their slots), then the rows are
    /// applied a chunk at a time. An [`interrupt`] between two chunks keeps the chunks
    /// applied, and its error says how many events they held. Once other code may have
    /// changed the columns, every chunk is checked again before it is applied; columns
    /// other threads may write during a read are copied a chunk at a time, and each copy
    /// is checked and applied (see `runtime/shared_columns.rs`).
    pub fn write_unlogged(
        &mut self,
        signal: SignalIdx,
        columns: &mut dyn SharedColumns,
    ) -> Result<()> {
        debug_assert!(
            self.writes_stay_in_memory(),
            "an unlogged write where a log or a peer needs events"
        );
        self.check_writable()?;
        let now = Timestamp::now();
        let len = columns.len();
        if len == 0 {
            return columns.read(signal, 0, 0, &mut |rows| {
                self.node.check_signal_columns(now, rows)
            });
        }
        let unsteady = columns.written_during_reads();
        let mut copy = ChunkCopy::default();
        let threads = self.node.ledger().apply_threads();
        // Once other code may have run, any row not yet written may have changed.
        let mut changed = unsteady;
        let mut start = 0;
        while start < len {
            if let Err(stopped) = interrupt::checkpoint() {
                return Err(interrupt::after_writing(stopped, start));
            }
            let end = len.min(start + self.next_bulk_chunk(PARALLEL_COLUMN_CHUNK));
            if start == 0 {
                columns.read(signal, 0, len, &mut |all| {
                    let first = all.rows(0, end);
                    if !unsteady {
                        return self
                            .node
                            .write_unlogged_checking(now, all, &first)
                            .map(drop);
                    }
                    // The first chunk is applied from its copy, checked first; the rest
                    // is checked in place beside it.
                    let first = copy.fill(&first, threads);
                    if let Err(refused) = self.node.check_signal_columns(now, &first) {
                        // The error the whole write's check gives, as on the steady path
                        // (bad weights first), unless the rows changed since the copy.
                        let whole = self.node.check_signal_columns(now, all);
                        return Err(whole.err().unwrap_or(refused));
                    }
                    let rest = all.rows(end, len);
                    self.node
                        .write_unlogged_checking(now, &rest, &first)
                        .map(drop)
                })?;
            } else {
                changed |= columns.pause();
                columns.read(signal, start, end, &mut |rows| {
                    let copied;
                    let rows = if unsteady {
                        copied = copy.fill(rows, threads);
                        &copied
                    } else {
                        rows
                    };
                    if changed {
                        self.node.check_signal_columns(now, rows).map_err(|cause| {
                            TidalError::ChangedWhileWriting {
                                written: start,
                                cause: Box::new(cause),
                            }
                        })?;
                    }
                    self.node.write_unlogged_signals(now, rows).map(drop)
                })?;
            }
            start = end;
        }
        Ok(())
    }
}
