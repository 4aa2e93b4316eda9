//! Applying one signal's run of events on several threads, partitioned by entity.
//!
//! A partition is a block of [`PARTITION_SLOTS`] consecutive entity slots. An entity's slot
//! is given once, by its first event, and never moves, so an entity lives in exactly one
//! partition, and which one does not depend on how many threads apply. With `T` threads,
//! lane `t` owns the partitions `p` with `p % T == t` and applies, in run order, the events
//! whose entity falls in them. Every entity therefore sees its events in the order a serial
//! loop applies them, and no state is shared between lanes, so the result is bit-identical
//! to the serial apply for every `T`. The lanes are handed out to whichever thread is free.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytemuck::TransparentWrapper;

use super::slots::{
    EntitySlots, Slot, prefetch, reserve_grown_by_eighths, resize_grown_by_eighths,
};
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

    /// The seq of event `i`, as in [`Self::item`].
    fn seq(&self, i: usize) -> u64 {
        self.item(i).3
    }
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

/// The slot of every item's entity, looked up on up to `threads` threads over [`PIECES`]
/// contiguous pieces of the run; [`NO_SLOT`] where the entity is new. Read-only: the caller creates the
/// missing slots afterwards, in run order, so they are numbered as a serial apply would.
pub fn find_slots<R: RunEvents + ?Sized>(slots: &EntitySlots, run: &R, threads: usize) -> Vec<u32> {
    let mut found = vec![NO_SLOT; run.len()];
    if slots.is_empty() {
        // A fresh load's first chunk: nothing to find, and waking the helpers to miss on
        // every event cost half a millisecond a 256K-event chunk.
        return found;
    }
    debug_assert_eq!(Slot::wrap(NO_SLOT), Slot::NONE);
    let outs = found.chunks_mut(piece_len(run.len()));
    run_pieces(threads, run.len(), outs, |rows, out| {
        slots.find_each(|i| run.entity(rows.start + i), Slot::wrap_slice_mut(out));
    });
    found
}

/// Lengthens `v` to `len` copies of `value`, growing it as [`resize_grown_by_eighths`]
/// does, with a large addition written in pieces on up to `threads` threads. The new
/// entries of a fresh load's states land on pages the process has not touched: written
/// on one thread, their page faults were the first chunk's serial step after creation.
///
/// [`resize_grown_by_eighths`]: super::slots::resize_grown_by_eighths
pub fn resize_spread<T: Clone + Send + Sync>(
    v: &mut Vec<T>,
    len: usize,
    value: &T,
    threads: usize,
) {
    let added = len.saturating_sub(v.len());
    if added.saturating_mul(size_of::<T>()) < SPREAD_MIN_BYTES || threads < 2 {
        return resize_grown_by_eighths(v, len, value.clone());
    }
    reserve_grown_by_eighths(v, len);
    let regions = v.spare_capacity_mut()[..added].chunks_mut(piece_len(added));
    run_pieces(threads, added, regions, |_, region| {
        for entry in region {
            entry.write(value.clone());
        }
    });
    // SAFETY: the regions tile the first `added` entries of the spare capacity, which
    // `reserve_grown_by_eighths` made room for; `run_pieces` ran every region (a panic in
    // any would have reached this thread instead), and each wrote every entry of its own.
    unsafe { v.set_len(len) };
}

/// Additions smaller than this are written on the calling thread: waking the helpers
/// costs about what writing a megabyte does.
const SPREAD_MIN_BYTES: usize = 1 << 20;

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

/// Contiguous pieces the rows are cut into for the work that goes by position (checking
/// columns, slot lookups, sorting events into lanes); as for [`LANES`], more pieces than
/// threads, so that a thread the OS preempts holds back little.
const PIECES: usize = 16;

/// The rows in each piece of `rows` (the last piece may have fewer).
pub fn piece_len(rows: usize) -> usize {
    rows.div_ceil(PIECES).max(1)
}

/// How many pieces `rows` are cut into: one output each for [`run_pieces`].
pub fn piece_count(rows: usize) -> usize {
    rows.div_ceil(piece_len(rows))
}

/// Runs `work(piece's rows, its output)` for each piece of `0..rows` on up to `threads`
/// threads; `outs` gives one output per piece, in order (such as the pieces of an output
/// vector, cut by [`piece_len`]).
pub fn run_pieces<O: Send>(
    threads: usize,
    rows: usize,
    outs: impl IntoIterator<Item = O>,
    work: impl Fn(Range<usize>, O) + Sync,
) {
    let piece = piece_len(rows);
    let jobs: Vec<(Range<usize>, O)> = outs
        .into_iter()
        .enumerate()
        .map(|(k, out)| (k * piece..rows.min((k + 1) * piece), out))
        .collect();
    debug_assert_eq!(jobs.len(), piece_count(rows), "one output per piece");
    run_shared(threads, jobs, |(rows, out)| work(rows, out));
}

/// An event sorted into its lane, its entity resolved to a slot, so that a lane reads its
/// events from contiguous lists. Read in place from the run, each of the lanes would stride
/// through all of the run's columns, loading nearly every cache line of them.
/// 24 bytes: the seq is read back from the run by position when the event is applied.
#[derive(Clone, Copy)]
struct Placed {
    slot: u32,
    position: u32,
    weight: f64,
    ts: i64,
}

/// A run's events sorted into lanes piece by piece: piece `k` holds the events at
/// `k * piece..` in `events[k * piece..]`, lane `l`'s (in run order) at `starts[k][l]..
/// starts[k][l + 1]` of it. A lane then takes its events from each piece in turn, which is
/// run order.
struct SortedRun {
    piece: usize,
    events: Vec<Placed>,
    starts: Vec<[usize; LANES + 1]>,
}

impl SortedRun {
    /// Lane `lane`'s events of each piece, in run order.
    fn lane(&self, lane: usize) -> impl Iterator<Item = &[Placed]> {
        self.starts.iter().enumerate().map(move |(k, starts)| {
            let base = k * self.piece;
            &self.events[base + starts[lane]..base + starts[lane + 1]]
        })
    }
}

/// One lane's work: the blocks of the partitions it owns (block `k` of each list is
/// partition `lane + k * LANES`).
struct Lane<'a, S> {
    lane: usize,
    states: Vec<&'a mut [S]>,
    window_sets: Vec<&'a mut [WindowSet]>,
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
/// `add(state, weight, ts, seq)` updating one decay state with one event; see the module's
/// comment for why the result equals a serial apply.
pub fn apply_partitioned<S: Send, R: RunEvents + ?Sized>(
    threads: usize,
    run: &Run<'_, R>,
    states: &mut [S],
    window_sets: &mut [WindowSet],
    add: impl Fn(&mut S, f64, i64, u64) + Sync,
) {
    debug_assert!(
        u32::try_from(run.slots.len()).is_ok(),
        "positions fit in a Placed"
    );
    let pieces = sort_into_lanes(threads, run);
    let mut lanes: Vec<Lane<'_, S>> = (0..LANES)
        .map(|lane| Lane {
            lane,
            states: Vec::new(),
            window_sets: Vec::new(),
        })
        .collect();
    for (p, block) in states.chunks_mut(PARTITION_SLOTS).enumerate() {
        lanes[p % LANES].states.push(block);
    }
    for (p, block) in window_sets.chunks_mut(PARTITION_SLOTS).enumerate() {
        lanes[p % LANES].window_sets.push(block);
    }
    lanes.retain(|l| pieces.lane(l.lane).any(|events| !events.is_empty()));
    run_shared(threads, lanes, |lane| lane.apply(&pieces, run, &add));
}

/// Every piece's events sorted into lanes (a counting sort, so each lane keeps run
/// order), on up to `threads` threads, into one buffer the caller allocates: memory a
/// helper allocated would come from its own malloc arena, which keeps it after the write.
fn sort_into_lanes<R: RunEvents + ?Sized>(threads: usize, run: &Run<'_, R>) -> SortedRun {
    let n = run.slots.len();
    let piece = piece_len(n);
    let mut events: Vec<Placed> = Vec::with_capacity(n);
    let mut starts = vec![[0usize; LANES + 1]; piece_count(n)];
    let regions = events.spare_capacity_mut()[..n].chunks_mut(piece);
    run_pieces(
        threads,
        n,
        regions.zip(starts.iter_mut()),
        |rows, (region, starts)| sort_piece(run, rows.start, region, starts),
    );
    // SAFETY: the regions tile `0..n` of the capacity, `run_shared` ran `sort_piece` on
    // every one of them (a panic in any would have reached this thread instead), and
    // `sort_piece` initializes every element of its region.
    unsafe { events.set_len(n) };
    SortedRun {
        piece,
        events,
        starts,
    }
}

/// Sorts the events at `first..first + region.len()` into `region` by lane, writing each
/// element of `region` exactly once: the `j`th event of lane `l` goes to `starts[l] + j`,
/// and `starts` are the prefix sums of the lanes' counts, which add up to the region's
/// length.
fn sort_piece<R: RunEvents + ?Sized>(
    run: &Run<'_, R>,
    first: usize,
    region: &mut [MaybeUninit<Placed>],
    starts: &mut [usize; LANES + 1],
) {
    let slots = &run.slots[first..first + region.len()];
    for &slot in slots {
        starts[lane_of(slot) + 1] += 1;
    }
    for l in 0..LANES {
        starts[l + 1] += starts[l];
    }
    let mut next = *starts;
    for (i, &slot) in (first..).zip(slots) {
        let (_, weight, ts, _) = run.items.item(i);
        let lane = lane_of(slot);
        region[next[lane]].write(Placed {
            slot,
            position: i as u32,
            weight,
            ts,
        });
        next[lane] += 1;
    }
    debug_assert!(
        next[..LANES] == starts[1..] && starts[LANES] == region.len(),
        "every element of the region written once"
    );
}

impl<S> Lane<'_, S> {
    fn apply<R: RunEvents + ?Sized>(
        mut self,
        pieces: &SortedRun,
        run: &Run<'_, R>,
        add: &impl Fn(&mut S, f64, i64, u64),
    ) {
        for events in pieces.lane(self.lane) {
            for (k, e) in events.iter().enumerate() {
                if let Some(ahead) = events.get(k + PREFETCH_AHEAD) {
                    let (block, at) = place(ahead.slot);
                    self.prefetch(block, at);
                }
                let (block, at) = place(e.slot);
                let state = self.states.get_mut(block).and_then(|b| b.get_mut(at));
                debug_assert!(state.is_some(), "every resolved slot has a state");
                if let Some(state) = state {
                    add(state, e.weight, e.ts, run.items.seq(e.position as usize));
                }
                if let Some(w) = self.window_sets.get_mut(block).and_then(|b| b.get_mut(at)) {
                    w.add(run.windows, e.ts, to_micros(e.weight));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Spread or not, the vector ends as `resize_grown_by_eighths` leaves it: the same
    /// entries and the same capacity, for additions on both sides of the threshold.
    #[test]
    fn resizing_on_every_core_ends_as_resizing_on_one() {
        let cases = [
            (0, 10),
            (0, 300_000),
            (5, 200_000),
            (150_000, 400_000),
            // Less than an eighth added: the capacity grows by the eighth.
            (1_200_000, 1_340_000),
        ];
        for (start, len) in cases {
            for threads in [1, 2, 4] {
                let mut spread: Vec<u64> = (0..start).collect();
                let mut serial = spread.clone();
                resize_spread(&mut spread, len, &7, threads);
                resize_grown_by_eighths(&mut serial, len, 7);
                assert_eq!(spread, serial, "{start} -> {len} on {threads}");
                assert_eq!(spread.capacity(), serial.capacity());
            }
        }
    }
}
