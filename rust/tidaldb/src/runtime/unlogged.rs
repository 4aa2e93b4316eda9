//! Bulk writes of a lone in-memory database, applied without events (see
//! `node/unlogged.rs`): nothing it has would read them.

use super::db::PARALLEL_COLUMN_CHUNK;
use super::state::State;
use crate::error::Result;
use crate::interrupt;
use crate::node::SignalColumns;
use crate::schema::Timestamp;

impl State {
    /// Writes `columns` whole or not at all, in bounded memory, as the logged path
    /// (`TidalDb::write_streamed`) does: every row is checked before anything is written
    /// (while the first chunk's new entities get their slots), then the rows are applied a
    /// chunk at a time. An [`interrupt`] between two chunks keeps the chunks applied, and
    /// its error says how many events they held.
    pub fn write_unlogged(&mut self, columns: &SignalColumns<'_>) -> Result<()> {
        debug_assert!(
            self.writes_stay_in_memory(),
            "an unlogged write where a log or a peer needs events"
        );
        self.check_writable()?;
        let now = Timestamp::now();
        if columns.is_empty() {
            return self.node.check_signal_columns(now, columns);
        }
        let mut start = 0;
        while start < columns.len() {
            if let Err(stopped) = interrupt::checkpoint() {
                return Err(interrupt::after_writing(stopped, start));
            }
            let chunk = self.next_bulk_chunk(PARALLEL_COLUMN_CHUNK);
            let end = columns.len().min(start + chunk);
            if start == 0 {
                self.node.write_unlogged_checking(now, columns, end)?;
            } else {
                self.node
                    .write_unlogged_signals(now, &columns.rows(start, end))?;
            }
            start = end;
        }
        Ok(())
    }
}
