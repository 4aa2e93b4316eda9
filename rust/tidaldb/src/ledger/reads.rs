//! The ledger's reads: decayed scores, one at a time or in bulk, window readings and
//! velocity, each at a given time.

use super::{ItemErrors, Ledger, WindowGap, WindowReading};
use crate::error::{Result, TidalError};
use crate::schema::{EntityId, SignalIdx, Timestamp, Window};

impl Ledger {
    /// `Σ w·2^(-(at - t_i)/h)` over the applied events of this (entity, signal). A read
    /// before some event counts it grown back by the same formula; if that overflows, the
    /// read is refused rather than answered with infinity.
    #[inline]
    pub fn decay_score(&self, signal: SignalIdx, entity: EntityId, at: Timestamp) -> Result<f64> {
        let score = self
            .signal_ledger(signal)?
            .score(entity, at.as_nanos())
            .ok_or_else(|| TidalError::BeforeRetainedHistory {
                what: format!("the linear score of {:?}", self.signal_name(signal)),
                at_ns: at.as_nanos(),
            })?;
        if score.is_finite() {
            Ok(score)
        } else {
            Err(TidalError::ReadOverflow {
                what: format!("the score of {:?}", self.signal_name(signal)),
                at_ns: at.as_nanos(),
            })
        }
    }

    /// `decay_scores_with` as `on_error` says: with [`ItemErrors::Nan`], an entity whose
    /// score cannot be read (a linear read before its retained history, a read that
    /// overflows) gets NaN and the others are still read; with [`ItemErrors::Raise`], the
    /// call fails as `decay_scores_with` does.
    pub fn decay_scores_on_error(
        &self,
        signal: SignalIdx,
        entities: &[EntityId],
        at: Timestamp,
        on_error: ItemErrors,
        mut each: impl FnMut(usize, f64),
    ) -> Result<()> {
        match on_error {
            ItemErrors::Raise => self.decay_scores_with(signal, entities, at, each),
            ItemErrors::Nan => {
                self.signal_ledger(signal)?
                    .scores_each(entities, at.as_nanos(), |i, score| {
                        each(i, score.filter(|s| s.is_finite()).unwrap_or(f64::NAN))
                    });
                Ok(())
            }
        }
    }

    /// `decay_score` of many entities, handed to `each(index, score)` in order; the batch
    /// path resolves every entity first and prefetches the states it reads next.
    pub fn decay_scores_with(
        &self,
        signal: SignalIdx,
        entities: &[EntityId],
        at: Timestamp,
        mut each: impl FnMut(usize, f64),
    ) -> Result<()> {
        let mut overflowed = None;
        self.signal_ledger(signal)?
            .scores_with(entities, at.as_nanos(), |i, score| {
                if !score.is_finite() && overflowed.is_none() {
                    overflowed = Some(i);
                }
                each(i, score)
            })
            .map_err(|i| self.history_gap(signal, entities[i], at))?;
        match overflowed {
            None => Ok(()),
            Some(i) => Err(self.score_overflow(signal, entities[i], at)),
        }
    }

    /// The error of a batch read that reaches before `entity`'s retained linear history.
    pub(crate) fn history_gap(
        &self,
        signal: SignalIdx,
        entity: EntityId,
        at: Timestamp,
    ) -> TidalError {
        TidalError::BeforeRetainedHistory {
            what: format!(
                "the linear score of {:?} for entity {entity}",
                self.signal_name(signal)
            ),
            at_ns: at.as_nanos(),
        }
    }

    /// The error of a batch read whose score of `entity` overflows.
    pub(crate) fn score_overflow(
        &self,
        signal: SignalIdx,
        entity: EntityId,
        at: Timestamp,
    ) -> TidalError {
        TidalError::ReadOverflow {
            what: format!(
                "the score of {:?} for entity {entity}",
                self.signal_name(signal)
            ),
            at_ns: at.as_nanos(),
        }
    }

    pub fn window(
        &self,
        signal: SignalIdx,
        entity: EntityId,
        window: Window,
        at: Timestamp,
    ) -> Result<WindowReading> {
        let ledger = self.signal_ledger(signal)?;
        if !ledger.has_window(window) {
            let known: Vec<&str> = ledger.windows().iter().map(|w| w.as_str()).collect();
            return Err(TidalError::UnknownWindow {
                signal: self.signal_name(signal),
                window: window.to_string(),
                known: known.join(", "),
            });
        }
        ledger.window(entity, window, at.as_nanos()).map_err(|gap| {
            let what = format!("the {window} window of {:?}", self.signal_name(signal));
            let at_ns = at.as_nanos();
            match gap {
                WindowGap::Pruned => TidalError::BeforeRetainedHistory { what, at_ns },
                WindowGap::Overflow => TidalError::ReadOverflow { what, at_ns },
            }
        })
    }

    /// Weight per hour over the signal's shortest window.
    pub fn velocity(&self, signal: SignalIdx, entity: EntityId, at: Timestamp) -> Result<f64> {
        let def = self.schema.checked(signal)?;
        let window = match (def.velocity, def.shortest_window()) {
            (true, Some(w)) => w,
            _ => {
                return Err(TidalError::InvalidArgument {
                    name: "signal",
                    reason: format!(
                        "signal {:?} was declared without velocity; declare it with velocity \
                         (velocity=True in Python, .velocity(true) in Rust)",
                        def.name
                    ),
                });
            }
        };
        let reading = self.window(signal, entity, window, at)?;
        let hours = window
            .length()
            .map_or(f64::INFINITY, |d| d.as_secs_f64() / 3600.0);
        Ok(reading.weight_sum / hours)
    }
}
