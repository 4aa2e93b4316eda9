//! The per-tenant materialized state: a pure function of the set of applied events.
//!
//! Events from one origin apply in seq order: a seq at or below the version vector is a
//! duplicate and is dropped, a seq beyond the next one waits until the gap fills. That makes
//! application exactly-once under retries, duplicates, reordering and restarts.

mod beside;
mod clients;
mod digest;
mod escrow;
mod hidden;
mod item_errors;
mod pace;
mod parallel;
mod reads;
mod signals;
mod slots;
mod thread_pool;
mod weight;
mod window_codec;
mod windows;

pub use beside::{Beside, run_alone};
pub use clients::{ClientTable, DEFAULT_CLIENT_CAPACITY, IdempotencyStore};
pub use escrow::Escrow;

pub use hidden::{HiddenSet, UserHides};
pub use item_errors::ItemErrors;
pub use pace::spread_every_batch;
pub use parallel::PARALLEL_MIN_EVENTS;
pub use parallel::{RunEvents, RunItem};
pub(crate) use parallel::{piece_count, piece_len, run_pieces};
pub use signals::{SignalLedger, SignalParts, SignalPartsRef};
pub use slots::{EntitySlots, Slot};
pub use weight::{MAX_WEIGHT, all_weights_valid, validate_weight};
pub use windows::{MICROS_PER_UNIT, WindowGap, WindowReading, WindowSet};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::crdt::HideStamp;
use crate::error::{Result, TidalError};
use crate::event::{Event, EventBody, VersionVector};
use crate::schema::{EntityId, NodeId, Schema, SignalIdx};

/// Batches from this size on are timed, to learn whether spreading over threads pays: a
/// bulk write's chunks on one thread are this size (`runtime::BULK_CHUNK`).
const TIMED_MIN_EVENTS: usize = 1 << 12;

/// Out-of-order events held back at most; past it, delivery must fill the gaps first.
const MAX_PENDING: usize = 1 << 20;

/// What [`Ledger::apply`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied now, together with this many buffered successors whose gap it filled.
    Now { unblocked: usize },
    /// Already applied earlier; dropped.
    Duplicate,
    /// Waits for an earlier seq of the same origin.
    Buffered,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    schema: Arc<Schema>,
    signals: Vec<SignalLedger>,
    hidden: HiddenSet,
    clients: ClientTable,
    vv: VersionVector,
    /// The hard caps' bounded counters, as the applied events spent and moved them.
    escrow: Escrow,
    /// Events that arrived ahead of a gap, keyed so that one origin's run is contiguous.
    pending: BTreeMap<(NodeId, u64), Event>,
    /// Distinct entities over all signals, kept only when there is more than one signal
    /// (with one, it is that signal's entity count).
    distinct_entities: u64,
    /// Threads a large in-order batch is applied on; see [`Ledger::set_apply_threads`].
    apply_threads: usize,
    /// Spread every large batch, without consulting the process's pace (`pace.rs`).
    spread_always: bool,
}

impl Ledger {
    pub fn new(schema: Arc<Schema>) -> Self {
        let signals = schema.signals().iter().map(SignalLedger::new).collect();
        Ledger {
            schema,
            signals,
            hidden: HiddenSet::default(),
            clients: ClientTable::default(),
            vv: VersionVector::new(),
            escrow: Escrow::default(),
            pending: BTreeMap::new(),
            distinct_entities: 0,
            apply_threads: 1,
            spread_always: false,
        }
    }

    /// Lets [`Ledger::apply_batch`] spread a large batch over up to `threads` threads (1,
    /// the default, applies on the caller's), as long as that has been measured to pay
    /// (see `pace.rs`). Any count gives bit-identical state: it only changes how fast.
    pub fn set_apply_threads(&mut self, threads: usize) {
        self.apply_threads = threads.max(1);
    }

    pub fn apply_threads(&self) -> usize {
        self.apply_threads
    }

    /// Whether the next batch of at least [`PARALLEL_MIN_EVENTS`] events will be spread over
    /// threads: a bulk writer sizes its next chunk by it.
    pub fn spreads_next(&self) -> bool {
        self.apply_threads > 1
            && (self.spread_always
                || pace::spreads_every_batch()
                || pace::with_process_pace(|p| p.spread_next()).unwrap_or(false))
    }

    /// Spreads every large batch over the apply threads, without timing whether that pays:
    /// for tests and measurements of the partitioned apply itself.
    pub fn spread_always(&mut self) {
        self.spread_always = true;
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Applies one event exactly once. Invalid events (a signal index outside the schema,
    /// a bad weight) are refused before anything changes.
    pub fn apply(&mut self, event: &Event) -> Result<Applied> {
        self.apply_collect(event, None)
    }

    /// Like [`Ledger::apply`], and pushes onto `applied` every event that took effect:
    /// this one and the buffered successors it unblocked, in the order applied. A replica
    /// persists and forwards exactly those.
    pub fn apply_collect(
        &mut self,
        event: &Event,
        mut applied: Option<&mut Vec<Event>>,
    ) -> Result<Applied> {
        self.check(&event.body)?;
        let origin = event.id.origin;
        let next = self.vv.get(origin) + 1;
        if event.id.seq < next {
            return Ok(Applied::Duplicate);
        }
        if event.id.seq > next {
            if self.pending.len() >= MAX_PENDING {
                return Err(TidalError::Unavailable(format!(
                    "{MAX_PENDING} events are already waiting for earlier ones from their \
                     origins; deliver the missing events (from seq {next} of origin {}) first",
                    origin.0
                )));
            }
            self.pending.insert((origin, event.id.seq), *event);
            return Ok(Applied::Buffered);
        }
        self.apply_in_order(event);
        if let Some(out) = applied.as_deref_mut() {
            out.push(*event);
        }
        let unblocked = self.drain_pending(origin, applied);
        Ok(Applied::Now { unblocked })
    }

    /// [`Ledger::apply`] for the next event of its origin, already checked by admission: a
    /// single local write, which need not be checked or ordered again.
    pub fn apply_next(&mut self, event: &Event) {
        debug_assert!(
            self.check(&event.body).is_ok(),
            "admission checked the event"
        );
        let next = self.vv.get(event.id.origin) + 1;
        debug_assert_eq!(event.id.seq, next, "the origin's next event");
        self.apply_in_order(event);
        self.drain_pending(event.id.origin, None);
    }

    /// Applies the buffered events of `origin` that now follow its version vector.
    fn drain_pending(&mut self, origin: NodeId, mut applied: Option<&mut Vec<Event>>) -> usize {
        let mut unblocked = 0;
        while !self.pending.is_empty()
            && let Some(e) = self.pending.remove(&(origin, self.vv.get(origin) + 1))
        {
            self.apply_in_order(&e);
            if let Some(out) = applied.as_deref_mut() {
                out.push(e);
            }
            unblocked += 1;
        }
        unblocked
    }

    /// Applies many events. When they are one origin's next events in seq order (a local
    /// batch, or a replayed log), each signal's run is applied with prefetching, and a large
    /// batch may be spread over the apply threads; the result is bit-identical to applying
    /// them one by one, because each entity's events keep their order. Anything else falls
    /// back to `apply` per event.
    pub fn apply_batch(&mut self, events: &[Event]) -> Result<()> {
        self.apply_batch_collect(events, None)
    }

    /// [`Ledger::apply_batch`] that reports what took effect, like [`Ledger::apply_collect`].
    pub fn apply_batch_collect(
        &mut self,
        events: &[Event],
        mut applied: Option<&mut Vec<Event>>,
    ) -> Result<()> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let origin = first.id.origin;
        let start = self.vv.get(origin) + 1;
        // One pass checks every event (before anything changes) and whether they are the
        // origin's next ones in order.
        let mut contiguous = true;
        for (i, e) in events.iter().enumerate() {
            self.check(&e.body)?;
            contiguous &= e.id.origin == origin && e.id.seq == start + i as u64;
        }
        if !contiguous {
            for e in events {
                self.apply_collect(e, applied.as_deref_mut())?;
            }
            return Ok(());
        }
        self.escrow.record_run(events);
        let mut runs: Vec<Vec<RunItem>> = vec![Vec::new(); self.signals.len()];
        if let [only] = runs.as_mut_slice() {
            only.reserve_exact(events.len());
        }
        for e in events {
            if let Some(tag) = e.client {
                self.clients.record(tag, e.id);
            }
            if let Some((signal, entity, weight, ts)) = self.apply_unsigned(e)
                && let Some(run) = runs.get_mut(signal.0 as usize)
            {
                run.push((entity, weight, ts, e.id.seq));
            }
        }
        let runs = runs.iter().map(Vec::as_slice).enumerate();
        // Only the work run beside an apply can refuse it, and none runs beside these.
        self.apply_runs(origin, runs, events.len(), None)?;
        let last = start + events.len() as u64 - 1;
        if let Some(out) = applied.as_deref_mut() {
            out.extend_from_slice(events);
        }
        self.after_run(origin, last, applied);
        Ok(())
    }

    /// Applies `run`: the origin's next events, all signals of `signal` with no client tag
    /// and no entity claim, checked by admission, or by `beside` (see `beside.rs`), which
    /// then runs first or beside the apply, and whose refusal leaves the ledger untouched.
    /// A lone in-memory node's bulk write, which builds no events at all; the same result
    /// as [`Ledger::apply_batch`] of the events the run stands for.
    pub fn apply_admitted_run<R: RunEvents + ?Sized>(
        &mut self,
        origin: NodeId,
        signal: SignalIdx,
        run: &R,
        beside: Option<&dyn Beside>,
    ) -> Result<()> {
        if run.is_empty() {
            return beside.map_or(Ok(()), run_alone);
        }
        let (.., last) = run.item(run.len() - 1);
        self.apply_runs(
            origin,
            [(signal.0 as usize, run)].into_iter(),
            run.len(),
            beside,
        )?;
        debug_assert!(
            self.schema.checked(signal).is_ok()
                && (0..run.len())
                    .map(|i| run.item(i))
                    .enumerate()
                    .all(|(i, r)| {
                        r.3 == self.vv.get(origin) + 1 + i as u64 && validate_weight(r.1).is_ok()
                    }),
            "an admitted run holds valid signals, the origin's next events in order"
        );
        self.escrow.record_unclaimed_run(origin, run.len() as u64);
        self.after_run(origin, last, None);
        Ok(())
    }

    /// Applies each signal's run, on several threads when the batch is large and spreading
    /// has paid: batches of a bulk write's size are timed (per event), and one large enough
    /// is spread only while that has been faster. `beside` goes with the first run; if it
    /// refuses, nothing is applied.
    fn apply_runs<'a, R: RunEvents + ?Sized + 'a>(
        &mut self,
        origin: NodeId,
        runs: impl Iterator<Item = (usize, &'a R)>,
        events: usize,
        mut beside: Option<&dyn Beside>,
    ) -> Result<()> {
        let timed = self.apply_threads > 1 && events >= TIMED_MIN_EVENTS;
        let spread = timed && events >= PARALLEL_MIN_EVENTS && self.spreads_next();
        let threads = if spread { self.apply_threads } else { 1 };
        if !spread && let Some(alone) = beside.take() {
            // Before the clock starts: a serial apply's timing is of the apply alone.
            run_alone(alone)?;
        }
        let started = timed.then(Instant::now);
        for (i, run) in runs {
            if let Some(ledger) = self.signals.get_mut(i)
                && !run.is_empty()
            {
                let before = ledger.entity_count();
                ledger.apply_run(origin, run, threads, beside.take())?;
                if ledger.entity_count() > before {
                    self.count_new_entities(i, before);
                }
            }
        }
        if let Some(left) = beside {
            // No run took it, so nothing was applied: its verdict still decides the call.
            run_alone(left)?;
        }
        if let Some(started) = started {
            let took = started.elapsed();
            let _ = pace::with_process_pace(|p| p.record(spread, events, took));
        }
        Ok(())
    }

    /// Moves the version vector past a run applied whole, ending at `last`, and applies the
    /// buffered events that now follow it.
    fn after_run(&mut self, origin: NodeId, last: u64, applied: Option<&mut Vec<Event>>) {
        self.vv.advance(origin, last);
        debug_assert_eq!(
            (self.escrow.counter(crate::event::CapKind::Storage)).consumed(origin),
            last,
            "every applied event spends one storage right of its origin"
        );
        if !self.pending.is_empty() {
            // Buffered copies of events this batch just applied are duplicates now.
            self.pending
                .retain(|&(o, seq), _| o != origin || seq > last);
            self.drain_pending(origin, applied);
        }
    }

    fn check(&self, body: &EventBody) -> Result<()> {
        match body {
            EventBody::Signal { signal, weight, .. } => {
                self.schema.checked(*signal)?;
                validate_weight(*weight)?;
            }
            EventBody::Grant { amount: 0, .. } => {
                return Err(TidalError::InvalidArgument {
                    name: "grant",
                    reason: "a grant of no rights is never originated".into(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies a hide, unhide or grant (whose rights [`Escrow::record`] has moved); hands
    /// a signal's parts back to the caller, which applies it one at a time or gathers a run.
    #[inline]
    fn apply_unsigned(&mut self, event: &Event) -> Option<(SignalIdx, EntityId, f64, i64)> {
        match event.body {
            EventBody::Signal {
                signal,
                entity,
                weight,
                ts,
                ..
            } => Some((signal, entity, weight, ts.as_nanos())),
            EventBody::Hide { user, item, ts } => {
                let at = HideStamp {
                    at: ts,
                    hlc: event.hlc,
                };
                self.hidden.hide(user, item, at);
                None
            }
            EventBody::Unhide { user, item, ts } => {
                let at = HideStamp {
                    at: ts,
                    hlc: event.hlc,
                };
                self.hidden.unhide(user, item, at);
                None
            }
            EventBody::Grant { .. } => None,
        }
    }

    #[inline]
    fn apply_in_order(&mut self, event: &Event) {
        if let Some(tag) = event.client {
            self.clients.record(tag, event.id);
        }
        self.escrow.record(event);
        if let Some((signal, entity, weight, ts)) = self.apply_unsigned(event)
            && let Some(s) = self.signals.get_mut(signal.0 as usize)
        {
            let before = s.entity_count();
            s.apply(event.id, entity, weight, ts);
            if s.entity_count() > before {
                self.count_new_entities(signal.0 as usize, before);
            }
        }
        self.vv.advance(event.id.origin, event.id.seq);
        debug_assert_eq!(
            self.escrow
                .counter(crate::event::CapKind::Storage)
                .consumed(event.id.origin),
            event.id.seq,
            "every applied event spends one storage right of its origin"
        );
    }

    pub(crate) fn signal_ledger(&self, signal: SignalIdx) -> Result<&SignalLedger> {
        self.schema.checked(signal)?;
        self.signals
            .get(signal.0 as usize)
            .ok_or_else(|| TidalError::InvalidSchema("the ledger and its schema disagree".into()))
    }

    fn signal_name(&self, signal: SignalIdx) -> String {
        self.schema
            .signal(signal)
            .map_or_else(String::new, |s| s.name.clone())
    }

    pub fn is_hidden(&self, user: EntityId, item: EntityId) -> bool {
        self.hidden.is_hidden(user, item)
    }

    pub fn hidden(&self) -> &HiddenSet {
        &self.hidden
    }

    /// The idempotency keys and session high-water marks of applied events.
    pub fn clients(&self) -> &ClientTable {
        &self.clients
    }

    pub fn signal_ledgers(&self) -> &[SignalLedger] {
        &self.signals
    }

    /// Rebuilds a ledger from snapshot parts; the caller has checked the schema.
    pub fn from_parts(
        schema: Arc<Schema>,
        signals: Vec<SignalLedger>,
        hidden: HiddenSet,
        clients: ClientTable,
        vv: VersionVector,
        escrow: Escrow,
    ) -> Self {
        Ledger {
            schema,
            signals,
            hidden,
            clients,
            vv,
            escrow,
            pending: BTreeMap::new(),
            distinct_entities: 0,
            apply_threads: 1,
            spread_always: false,
        }
        .with_distinct_entities_counted()
    }

    fn with_distinct_entities_counted(mut self) -> Self {
        if self.signals.len() > 1 {
            let all: rustc_hash::FxHashSet<EntityId> = self
                .signals
                .iter()
                .flat_map(|s| s.entities().iter().copied())
                .collect();
            self.distinct_entities = all.len() as u64;
        }
        self
    }

    /// Distinct entities that carry any signal: what the `max_entities` quota counts.
    pub fn distinct_entities(&self) -> u64 {
        match self.signals.as_slice() {
            [one] => one.entity_count() as u64,
            _ => self.distinct_entities,
        }
    }

    /// The hard caps' bounded counters.
    pub fn escrow(&self) -> &Escrow {
        &self.escrow
    }

    /// True when some signal has an event for `entity`.
    pub fn holds_entity(&self, entity: EntityId) -> bool {
        self.signals.iter().any(|s| s.holds(entity))
    }

    /// Counts the entities signal `signal` created since it held `before`, that no other
    /// signal holds. Called after each signal's events, so an entity is counted once.
    fn count_new_entities(&mut self, signal: usize, before: usize) {
        if self.signals.len() < 2 {
            return;
        }
        let Some(created) = self.signals.get(signal).map(|s| &s.entities()[before..]) else {
            return;
        };
        let fresh = created
            .iter()
            .filter(|e| {
                self.signals
                    .iter()
                    .enumerate()
                    .all(|(i, s)| i == signal || !s.holds(**e))
            })
            .count();
        self.distinct_entities += fresh as u64;
    }

    /// Applied events of `signal`, over every entity. Only windowed signals keep counts.
    pub fn total_signal_count(&self, signal: SignalIdx) -> Result<u64> {
        self.signal_ledger(signal)?
            .total_count()
            .ok_or_else(|| TidalError::InvalidArgument {
                name: "signal",
                reason: format!(
                    "signal {:?} declares no windows, so it keeps no event counts",
                    self.signal_name(signal)
                ),
            })
    }
}
