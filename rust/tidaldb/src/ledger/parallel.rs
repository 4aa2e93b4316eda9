//! Applying one signal's run of events on several threads, partitioned by entity.
//!
//! A partition is a block of [`PARTITION_SLOTS`] consecutive entity slots. An entity's slot
//! is given once, by its first event, and never moves, so an entity lives in exactly one
//! partition, and which one does not depend on how many threads apply. With `T` threads,
//! lane `t` owns the partitions `p` with `p % T == t` and applies, in run order, the events
//! whose entity falls in them. Every entity therefore sees its events in the order a serial
//! loop applies them, and no state is shared between lanes, so the result is bit-identical
//! to the serial apply for every `T`. The lanes are handed out to whichever thread is free.

use super::slots::{EntitySlots, prefetch};
use super::thread_pool::run_shared;
use super::windows::{WindowSet, to_micros};
use crate::schema::{EntityId, Window};

/// One event of a signal's run: `(entity, weight, ts, seq)`.
pub type RunItem = (EntityId, f64, i64, u64);

/// A run of one origin's events of one signal, read by position: events gathered into
/// [`RunItem`]s, or the columns of a bulk write, for which nothing is gathered (building
/// the items cost a pass over memory and 32 bytes an event).
pub trait RunEvents: Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entity of event `i`: what slot lookups read, without the rest.
    fn entity(&self, i: usize) -> EntityId;

    /// Event `i`. Panics if `i` is out of range, as indexing does.
    fn item(&self, i: usize) -> RunItem;
}

impl RunEvents for [RunItem] {
    fn len(&self) -> usize {
        <[RunItem]>::len(self)
    }

    #[inline]
    fn entity(&self, i: usize) -> EntityId {
        self[i].0
    }

    #[inline]
    fn item(&self, i: usize) -> RunItem {
        self[i]
    }
}

/// Slots per partition: large enough that the lanes' lists of blocks stay short, small
/// enough that entities first seen together (and often hot together) spread over lanes.
pub const PARTITION_SLOTS: usize = 1024;

/// Runs shorter than this are applied on the calling thread: starting threads costs tens
/// of microseconds, about what a few thousand events take to apply.
pub const PARALLEL_MIN_EVENTS: usize = 1 << 13;

/// How many events ahead a lane prefetches the states it will update.
const PREFETCH_AHEAD: usize = 8;

/// Marks a run item whose entity has no slot yet.
const NO_SLOT: u32 = u32::MAX;

/// The slot of every item's entity, looked up on up to `threads` threads over [`LANES`]
/// contiguous pieces of the run; [`NO_SLOT`] where the entity is new. Read-only: the caller creates the
/// missing slots afterwards, in run order, so they are numbered as a serial apply would.
pub fn find_slots<R: RunEvents + ?Sized>(slots: &EntitySlots, run: &R, threads: usize) -> Vec<u32> {
    let mut found = vec![NO_SLOT; run.len()];
    let piece = run.len().div_ceil(LANES).max(1);
    let pieces: Vec<(usize, &mut [u32])> = found
        .chunks_mut(piece)
        .enumerate()
        .map(|(k, out)| (k * piece, out))
        .collect();
    run_shared(threads, pieces, |(start, out)| {
        for (i, slot) in (start..).zip(out.iter_mut()) {
            if let Some(s) = slots.find(run.entity(i)) {
                *slot = s as u32;
            }
        }
    });
    found
}

/// True for the marker [`find_slots`] leaves where an entity has no slot yet.
pub fn is_missing(slot: u32) -> bool {
    slot == NO_SLOT
}

/// What the lanes share, read-only.
pub struct Run<'a, R: ?Sized> {
    pub items: &'a R,
    /// The slot of each item's entity, every one resolved.
    pub slots: &'a [u32],
    /// The signal's windows; empty when it keeps none (and `window_sets` is empty too).
    pub windows: &'a [Window],
}

/// Lanes a partitioned apply is cut into, whatever the thread count: partition `p` belongs
/// to lane `p % LANES`, and threads take lanes until none is left. More lanes than threads
/// keep a thread the OS preempts from holding back much of the batch.
pub const LANES: usize = 16;

/// One lane's work: the blocks of the partitions it owns (block `k` of each list is
/// partition `lane + k * LANES`) and the run positions of its events, in run order.
struct Lane<'a, S> {
    states: Vec<&'a mut [S]>,
    window_sets: Vec<&'a mut [WindowSet]>,
    events: &'a [u32],
}

#[inline]
fn lane_of(slot: u32) -> usize {
    (slot as usize / PARTITION_SLOTS) % LANES
}

/// The block of a lane and the index within it that hold `slot`.
#[inline]
fn place(slot: u32) -> (usize, usize) {
    let slot = slot as usize;
    (slot / PARTITION_SLOTS / LANES, slot % PARTITION_SLOTS)
}

/// Applies `run` to the per-slot `states` and `window_sets` on up to `threads` threads,
/// `add` updating one decay state with one event; see the module's comment for why the
/// result equals a serial apply.
pub fn apply_partitioned<S: Send, R: RunEvents + ?Sized>(
    threads: usize,
    run: &Run<'_, R>,
    states: &mut [S],
    window_sets: &mut [WindowSet],
    add: impl Fn(&mut S, &RunItem) + Sync,
) {
    // The run's positions sorted by lane (a counting sort, so each lane keeps run order).
    let mut starts = [0usize; LANES + 1];
    for &slot in run.slots {
        starts[lane_of(slot) + 1] += 1;
    }
    for l in 0..LANES {
        starts[l + 1] += starts[l];
    }
    let mut order = vec![0u32; run.slots.len()];
    let mut next = starts;
    for (i, &slot) in run.slots.iter().enumerate() {
        let lane = lane_of(slot);
        order[next[lane]] = i as u32;
        next[lane] += 1;
    }
    let mut lanes: Vec<Lane<'_, S>> = Vec::with_capacity(LANES);
    let mut rest: &[u32] = &order;
    for l in 0..LANES {
        let (events, tail) = rest.split_at(starts[l + 1] - starts[l]);
        rest = tail;
        lanes.push(Lane {
            states: Vec::new(),
            window_sets: Vec::new(),
            events,
        });
    }
    for (p, block) in states.chunks_mut(PARTITION_SLOTS).enumerate() {
        lanes[p % LANES].states.push(block);
    }
    for (p, block) in window_sets.chunks_mut(PARTITION_SLOTS).enumerate() {
        lanes[p % LANES].window_sets.push(block);
    }
    lanes.retain(|l| !l.events.is_empty());
    run_shared(threads, lanes, |lane| lane.apply(run, &add));
}

impl<S> Lane<'_, S> {
    fn apply<R: RunEvents + ?Sized>(mut self, run: &Run<'_, R>, add: &impl Fn(&mut S, &RunItem)) {
        for (k, &i) in self.events.iter().enumerate() {
            if let Some(&ahead) = self.events.get(k + PREFETCH_AHEAD) {
                let (block, at) = place(run.slots[ahead as usize]);
                self.prefetch(block, at);
            }
            let item = &run.items.item(i as usize);
            let (block, at) = place(run.slots[i as usize]);
            let state = self.states.get_mut(block).and_then(|b| b.get_mut(at));
            debug_assert!(state.is_some(), "every resolved slot has a state");
            if let Some(state) = state {
                add(state, item);
            }
            if let Some(w) = self.window_sets.get_mut(block).and_then(|b| b.get_mut(at)) {
                w.add(run.windows, item.2, to_micros(item.1));
            }
        }
    }

    #[inline]
    fn prefetch(&self, block: usize, at: usize) {
        if let Some(s) = self.states.get(block).and_then(|b| b.get(at)) {
            prefetch(s);
        }
        if let Some(w) = self.window_sets.get(block).and_then(|b| b.get(at)) {
            w.prefetch();
        }
    }
}
