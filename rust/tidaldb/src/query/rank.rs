//! The pass over the candidates: each item once, none the user hid, scored into the top k
//! one candidate at a time over every ranking term.
//!
//! The candidates' slots in the first ranking signal are resolved once, up front, and serve
//! to deduplicate (`distinct.rs`), to drop hidden items (`hidden.rs`) and to read the states.
//! A candidate whose score cannot reach the k-th best found so far is passed over without
//! being decayed: the bound of its states (the magnitudes of their sums, see
//! `CrdtSignalState::read_bound`) is already below it. Its state is still read, since the
//! bound comes from it, but the `exp2` and the division of each decay are saved. The result
//! is that of scoring every candidate: a candidate passed over scores at most its bound,
//! which ranks below the k-th best, and with a finite bound none of its scores can have
//! overflowed or be missing either.

use super::distinct::Distinct;
use super::hidden::Hidden;
use super::results::ScoredItem;
use super::retrieve::Retrieve;
use super::top::TopK;
use crate::error::{Result, TidalError};
use crate::ledger::{Ledger, SignalLedger, Slot};
use crate::schema::{EntityId, SignalIdx, Timestamp};

/// One ranking term, with the slot of every candidate in its signal.
struct Term<'a> {
    signal: SignalIdx,
    reader: &'a SignalLedger,
    coefficient: f64,
    slots: Vec<Slot>,
}

/// The first candidate a term could not score, as reading the term over every candidate
/// in order would report it: a missing linear history first, else an overflow.
#[derive(Clone, Copy, Default)]
struct Faults {
    gap: Option<EntityId>,
    overflow: Option<EntityId>,
}

/// How many candidates the pass counted.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    /// Distinct candidates, hidden or not.
    pub distinct: usize,
    /// Distinct candidates the user has hidden.
    pub hidden: usize,
}

/// Offers each distinct candidate of `q` the user has not hidden to `top`, with its score
/// `Σ coefficient · decay_score` added in the order of `terms`. Errors are those of reading
/// the terms one after the other over every such candidate: the first term with a fault
/// names its first faulty item; then the first total that overflowed.
pub(super) fn rank(
    ledger: &Ledger,
    q: &Retrieve,
    terms: &[(SignalIdx, f64)],
    at: Timestamp,
    top: &mut TopK,
) -> Result<Counts> {
    let candidates = &q.candidates;
    let terms: Vec<Term<'_>> = terms
        .iter()
        .map(|&(signal, coefficient)| {
            let reader = ledger.signal_ledger(signal)?;
            Ok(Term {
                signal,
                reader,
                coefficient,
                slots: reader.slots_of(candidates),
            })
        })
        .collect::<Result<_>>()?;
    // One term, as most rankings have, goes as an array: its length known, the loops over
    // the terms in `scan` unroll (about a tenth of a top-50 of 10K candidates).
    match <[Term<'_>; 1]>::try_from(terms) {
        Ok(one) => scan(ledger, q, &one, at, top),
        Err(terms) => scan(ledger, q, terms.as_slice(), at, top),
    }
}

/// [`rank`] over its resolved terms. Inlined into each call in `rank`, so that each is
/// compiled for its own kind of term list.
#[inline(always)]
fn scan<'a, L: AsRef<[Term<'a>]> + ?Sized>(
    ledger: &Ledger,
    q: &Retrieve,
    terms: &L,
    at: Timestamp,
    top: &mut TopK,
) -> Result<Counts> {
    let terms = terms.as_ref();
    let at_ns = at.as_nanos();
    let candidates = &q.candidates;
    let first = terms.first();
    let registers = q.user.and_then(|u| ledger.hidden().for_user(u));
    let hidden = Hidden::new(registers, first.map(|t| t.reader), candidates.len());
    let slot_count = first.map_or(0, |t| t.reader.entity_count());
    let mut distinct = Distinct::new(slot_count, candidates.len());
    let mut counts = Counts::default();
    let mut faults = vec![Faults::default(); terms.len()];
    let mut non_finite = None;
    for (i, &item) in candidates.iter().enumerate() {
        for t in terms {
            if let Some(ahead) = t.slots.get(i + SignalLedger::READ_AHEAD) {
                t.reader.prefetch_read(*ahead);
            }
        }
        let slot = first.map_or(Slot::NONE, |t| t.slots[i]);
        if !distinct.first_time(item, slot) {
            continue;
        }
        counts.distinct += 1;
        if hidden.hides(item, slot) {
            counts.hidden += 1;
            continue;
        }
        if let Some(floor) = top.floor_score()
            && bound(terms, i, at_ns).is_some_and(|b| b < floor)
        {
            continue;
        }
        let mut total = 0.0;
        for (t, f) in terms.iter().zip(&mut faults) {
            match t.reader.score_at_slot(t.slots[i], at_ns) {
                Some(score) => {
                    if !score.is_finite() {
                        f.overflow.get_or_insert(item);
                    }
                    total += t.coefficient * score;
                }
                None => {
                    f.gap.get_or_insert(item);
                }
            }
        }
        if !total.is_finite() {
            non_finite.get_or_insert(item);
        }
        top.offer(ScoredItem { item, score: total });
    }
    for (t, f) in terms.iter().zip(&faults) {
        if let Some(item) = f.gap {
            return Err(ledger.history_gap(t.signal, item, at));
        }
        if let Some(item) = f.overflow {
            return Err(ledger.score_overflow(t.signal, item, at));
        }
    }
    match non_finite {
        None => Ok(counts),
        Some(item) => Err(TidalError::ReadOverflow {
            what: format!("the ranking score of item {item}"),
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
