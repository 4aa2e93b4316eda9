//! Scoring the visible candidates into the top k: one candidate at a time, over every
//! ranking term.
//!
//! A candidate whose score cannot reach the k-th best found so far is passed over without
//! being decayed: the bound of its states (the magnitudes of their sums, see
//! `CrdtSignalState::read_bound`) is already below it. Its state is still read, since the
//! bound comes from it, but the `exp2` and the division of each decay are saved. The result
//! is that of scoring every candidate: a candidate passed over scores at most its bound,
//! which ranks below the k-th best, and with a finite bound none of its scores can have
//! overflowed or be missing either.

use super::results::ScoredItem;
use super::top::TopK;
use crate::error::{Result, TidalError};
use crate::ledger::{Ledger, SignalLedger};
use crate::schema::{EntityId, SignalIdx, Timestamp};

/// One ranking term, with the slot of every candidate in its signal.
struct Term<'a> {
    signal: SignalIdx,
    reader: &'a SignalLedger,
    coefficient: f64,
    slots: Vec<Option<u32>>,
}

/// The first candidate a term could not score, as reading the term over every candidate
/// in order would report it: a missing linear history first, else an overflow.
#[derive(Clone, Copy, Default)]
struct Faults {
    gap: Option<usize>,
    overflow: Option<usize>,
}

/// Offers each of `items` to `top` with its score `Σ coefficient · decay_score`, added in
/// the order of `terms`. `first_slots` are the items' slots in the first term's signal.
/// Errors are those of reading the terms one after the other over every item: the first
/// term with a fault names its first faulty item; then the first total that overflowed.
pub(super) fn rank(
    ledger: &Ledger,
    terms: &[(SignalIdx, f64)],
    items: &[EntityId],
    first_slots: Vec<Option<u32>>,
    at: Timestamp,
    top: &mut TopK,
) -> Result<()> {
    let at_ns = at.as_nanos();
    let mut first_slots = Some(first_slots);
    let terms: Vec<Term<'_>> = terms
        .iter()
        .map(|&(signal, coefficient)| {
            let reader = ledger.signal_ledger(signal)?;
            let slots = first_slots.take().unwrap_or_else(|| reader.slots_of(items));
            debug_assert_eq!(slots.len(), items.len(), "one slot per item");
            Ok(Term {
                signal,
                reader,
                coefficient,
                slots,
            })
        })
        .collect::<Result<_>>()?;
    let mut faults = vec![Faults::default(); terms.len()];
    let mut non_finite = None;
    for (i, &item) in items.iter().enumerate() {
        for t in &terms {
            if let Some(Some(ahead)) = t.slots.get(i + SignalLedger::READ_AHEAD) {
                t.reader.prefetch_read(*ahead);
            }
        }
        if let Some(floor) = top.floor_score()
            && bound(&terms, i, at_ns).is_some_and(|b| b < floor)
        {
            continue;
        }
        let mut total = 0.0;
        for (t, f) in terms.iter().zip(&mut faults) {
            match t.reader.score_at_slot(t.slots[i], at_ns) {
                Some(score) => {
                    if !score.is_finite() {
                        f.overflow.get_or_insert(i);
                    }
                    total += t.coefficient * score;
                }
                None => {
                    f.gap.get_or_insert(i);
                }
            }
        }
        if !total.is_finite() {
            non_finite.get_or_insert(i);
        }
        top.offer(ScoredItem { item, score: total });
    }
    for (t, f) in terms.iter().zip(&faults) {
        if let Some(i) = f.gap {
            return Err(ledger.history_gap(t.signal, items[i], at));
        }
        if let Some(i) = f.overflow {
            return Err(ledger.score_overflow(t.signal, items[i], at));
        }
    }
    match non_finite {
        None => Ok(()),
        Some(i) => Err(TidalError::ReadOverflow {
            what: format!("the ranking score of item {}", items[i]),
            at_ns,
        }),
    }
}

/// A bound on `|total|` of item `i`, added up as the total is (rounding is monotone, so
/// bounds added in the same order bound the sum); `None` when some term has none.
#[inline]
fn bound(terms: &[Term<'_>], i: usize, at: i64) -> Option<f64> {
    let mut b = 0.0;
    for t in terms {
        b += t.coefficient.abs() * t.reader.score_bound_at_slot(t.slots[i], at)?;
    }
    Some(b)
}
