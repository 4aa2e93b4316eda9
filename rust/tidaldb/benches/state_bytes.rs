//! Bytes of state per (entity, signal), counted exactly by a counting global allocator, and
//! printed beside the targets: `cargo bench -p tidaldb --bench state_bytes`.
//!
//! Each figure is the growth of live heap bytes while one structure is built (nothing else
//! allocates meanwhile), divided by the entities it holds. "Requested" is what the code
//! asked the allocator for; "with block overhead" adds what glibc's malloc adds to every
//! block (an 8-byte header, blocks rounded up to 16 bytes, 32 at least), which matters only
//! for small per-entity blocks. The breakdown subtracts one structure from the next:
//! the entity map alone, then the decay states, then the windows.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tidaldb::crdt::HlcTimestamp;
use tidaldb::ledger::{EntitySlots, Ledger};
use tidaldb::schema::SignalIdx;
use tidaldb::{
    DecaySpec, EntityId, EntityKind, Event, EventBody, EventId, NodeId, Schema, TenantId,
    Timestamp, Window,
};

/// Live heap bytes as requested, and the same with glibc's per-block overhead.
static REQUESTED: AtomicI64 = AtomicI64::new(0);
static WITH_OVERHEAD: AtomicI64 = AtomicI64::new(0);

struct Counting;

fn block(size: usize) -> i64 {
    ((size + 8).div_ceil(16) * 16).max(32) as i64
}

fn track(size: usize, sign: i64) {
    REQUESTED.fetch_add(sign * size as i64, Ordering::Relaxed);
    WITH_OVERHEAD.fetch_add(sign * block(size), Ordering::Relaxed);
}

// SAFETY: every call forwards to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size(), 1);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size(), 1);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(layout.size(), -1);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(layout.size(), -1);
        track(new_size, 1);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy)]
struct Bytes {
    requested: i64,
    with_overhead: i64,
}

/// Live bytes added by `build`, while its result is still alive.
fn measure<T>(build: impl FnOnce() -> T) -> (T, Bytes) {
    let r0 = REQUESTED.load(Ordering::Relaxed);
    let o0 = WITH_OVERHEAD.load(Ordering::Relaxed);
    let value = black_box(build());
    let bytes = Bytes {
        requested: REQUESTED.load(Ordering::Relaxed) - r0,
        with_overhead: WITH_OVERHEAD.load(Ordering::Relaxed) - o0,
    };
    (value, bytes)
}

const ITEMS: u64 = 100_000;
const T0: i64 = 1_700_000_000_000_000_000;
const MINUTE: i64 = 60_000_000_000;

fn schema(windows: &[Window]) -> Arc<Schema> {
    let signal = Schema::builder().signal(
        "view",
        EntityKind::Item,
        DecaySpec::Exponential {
            half_life: Duration::from_secs(86_400),
        },
    );
    let signal = if windows.is_empty() {
        signal
    } else {
        signal.windows(windows)
    };
    let schema = signal.add().build();
    Arc::new(schema.unwrap_or_else(|e| panic!("schema: {e}")))
}

/// `(entity, ts)` pairs, as one origin's events in seq order.
fn events(pairs: impl Iterator<Item = (u64, i64)>) -> Vec<Event> {
    pairs
        .enumerate()
        .map(|(i, (entity, ts))| Event {
            id: EventId {
                origin: NodeId(1),
                seq: i as u64 + 1,
            },
            hlc: HlcTimestamp::default(),
            tenant: TenantId::DEFAULT,
            body: EventBody::Signal {
                claims_entity: false,
                signal: SignalIdx(0),
                entity: EntityId(entity),
                weight: 1.0 + (i % 3) as f64,
                ts: Timestamp::from_nanos(ts).unwrap_or_else(|e| panic!("ts: {e}")),
            },
            client: None,
        })
        .collect()
}

/// A ledger holding `events`, built in batches as the write path applies them.
fn ledger(windows: &[Window], events: &[Event]) -> (Ledger, Bytes) {
    let schema = schema(windows);
    let empty = measure(|| Ledger::new(schema.clone())).1;
    let (ledger, b) = measure(|| {
        let mut l = Ledger::new(schema.clone());
        for chunk in events.chunks(16_384) {
            l.apply_batch(chunk)
                .unwrap_or_else(|e| panic!("apply: {e}"));
        }
        l
    });
    let bytes = Bytes {
        requested: b.requested - empty.requested,
        with_overhead: b.with_overhead - empty.with_overhead,
    };
    (ledger, bytes)
}

fn per(b: Bytes, n: u64) -> (f64, f64) {
    (
        b.requested as f64 / n as f64,
        b.with_overhead as f64 / n as f64,
    )
}

fn row(name: &str, b: Bytes, n: u64, target: &str) {
    let (r, o) = per(b, n);
    println!("{name:<58} {r:>10.1} {o:>12.1}   {target}");
}

fn minus(a: Bytes, b: Bytes) -> Bytes {
    Bytes {
        requested: a.requested - b.requested,
        with_overhead: a.with_overhead - b.with_overhead,
    }
}

/// A pseudo-random permutation step over the items (xorshift), so the map sees random keys.
fn spread(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn main() {
    let keys: Vec<u64> = (0..ITEMS).map(spread).collect();
    // 1M events, ten per item, in random item order, one millisecond apart.
    let sparse = events((0..10 * ITEMS).map(|i| {
        (
            keys[(spread(i) % ITEMS) as usize],
            T0 + i as i64 * 1_000_000,
        )
    }));
    let (map, map_bytes) = measure(|| {
        let mut slots = EntitySlots::default();
        for k in &keys {
            slots.find_or_insert(EntityId(*k));
        }
        slots
    });
    drop(map);
    let (decay_only, decay_bytes) = ledger(&[], &sparse);
    let held = decay_only.signal_ledgers()[0].entity_count() as u64;
    drop(decay_only);
    let windows = [Window::OneHour, Window::TwentyFourHours];
    let (windowed, windowed_bytes) = ledger(&windows, &sparse);
    drop(windowed);
    // The worst case for windows: an event every minute for a day, so every granule of
    // both rings holds a bucket (60 one-minute and 24 one-hour granules).
    let dense_items = 1_000;
    let dense = events((0..24 * 60 * dense_items).map(|i| {
        (
            keys[(i % dense_items) as usize],
            T0 + (i / dense_items) as i64 * MINUTE,
        )
    }));
    let (full, full_bytes) = ledger(&windows, &dense);
    drop(full);

    println!(
        "state bytes per (entity, signal), {held} entities, 1M events from one origin (counting allocator)\n"
    );
    println!(
        "{:<58} {:>10} {:>12}   target",
        "figure", "requested", "with blocks"
    );
    println!("{}", "-".repeat(100));
    row(
        "decay-only (exponential), all in",
        decay_bytes,
        held,
        "<= 64",
    );
    row(
        "  of which the entity map (hash table + key vector)",
        map_bytes,
        held,
        "",
    );
    row(
        "  of which the decay state",
        minus(decay_bytes, map_bytes),
        held,
        "",
    );
    row(
        "1h + 24h windows, same events (10 per entity over 17 min), all in",
        windowed_bytes,
        held,
        "<= 1024",
    );
    row(
        "  of which the windows",
        minus(windowed_bytes, decay_bytes),
        held,
        "",
    );
    row(
        "1h + 24h windows, every granule full (1,440 events each), all in",
        full_bytes,
        dense_items,
        "<= 1024",
    );
    println!(
        "\nanchor: the earlier design's 1,088 bytes per (entity, signal) with minute and hour buckets"
    );
}
