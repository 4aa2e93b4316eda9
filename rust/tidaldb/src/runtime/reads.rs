//! A database's reads by signal name: decayed scores, one or many at a time, window
//! readings and velocity, now or at a given time.

use super::TidalDb;
use super::db::BULK_CHUNK;
use crate::error::{Result, TidalError};
use crate::interrupt;
use crate::ledger::{ItemErrors, WindowReading};
use crate::schema::{EntityId, Timestamp, Window};

impl TidalDb {
    /// The decayed score of `entity` on `signal` now.
    pub fn read_decay_score(&self, entity: EntityId, signal: &str) -> Result<f64> {
        self.read_decay_score_at(entity, signal, Timestamp::now())
    }

    pub fn read_decay_score_at(
        &self,
        entity: EntityId,
        signal: &str,
        at: Timestamp,
    ) -> Result<f64> {
        let signal = self.resolve(signal)?;
        self.lock()?.node.ledger().decay_score(signal, entity, at)
    }

    /// Scores of many entities at once into `out` (same length as `entities`).
    pub fn read_decay_scores_at(
        &self,
        signal: &str,
        entities: &[EntityId],
        at: Timestamp,
        out: &mut [f64],
    ) -> Result<()> {
        self.read_decay_scores_on_error_at(signal, entities, at, ItemErrors::Raise, out)
    }

    /// [`Self::read_decay_scores_at`], with NaN for the entities whose score cannot be
    /// read when `on_error` is [`ItemErrors::Nan`].
    pub fn read_decay_scores_on_error_at(
        &self,
        signal: &str,
        entities: &[EntityId],
        at: Timestamp,
        on_error: ItemErrors,
        out: &mut [f64],
    ) -> Result<()> {
        let signal = self.resolve(signal)?;
        if out.len() != entities.len() {
            return Err(TidalError::InvalidArgument {
                name: "out",
                reason: format!("has {} slots for {} entities", out.len(), entities.len()),
            });
        }
        let st = self.lock()?;
        for (chunk, slots) in entities.chunks(BULK_CHUNK).zip(out.chunks_mut(BULK_CHUNK)) {
            interrupt::checkpoint()?;
            st.node
                .ledger()
                .decay_scores_on_error(signal, chunk, at, on_error, |i, score| slots[i] = score)?;
        }
        Ok(())
    }

    pub fn read_windowed_count(
        &self,
        entity: EntityId,
        signal: &str,
        window: Window,
    ) -> Result<u64> {
        Ok(self
            .read_window_at(entity, signal, window, Timestamp::now())?
            .count)
    }

    /// Count and weight sum of `signal` on `entity` in `window`, as of `at`.
    pub fn read_window_at(
        &self,
        entity: EntityId,
        signal: &str,
        window: Window,
        at: Timestamp,
    ) -> Result<WindowReading> {
        let signal = self.resolve(signal)?;
        self.lock()?
            .node
            .ledger()
            .window(signal, entity, window, at)
    }

    /// Weight per hour over the signal's shortest window, now.
    pub fn read_velocity(&self, entity: EntityId, signal: &str) -> Result<f64> {
        self.read_velocity_at(entity, signal, Timestamp::now())
    }

    pub fn read_velocity_at(&self, entity: EntityId, signal: &str, at: Timestamp) -> Result<f64> {
        let signal = self.resolve(signal)?;
        self.lock()?.node.ledger().velocity(signal, entity, at)
    }
}
