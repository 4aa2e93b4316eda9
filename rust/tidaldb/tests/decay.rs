//! Property tests of the decay math and of exact convergence.
//!
//! Oracles: the analytical `Σ w·2^(-(t - t_i)/h)` (computed with `f64::powf`, not the
//! crate's `libm` path), a brute-force window count, and bit equality between replicas
//! that received the same events in different orders. A failing case prints its minimal
//! inputs; `PROPTEST_CASES=10000 cargo test -p tidaldb --test decay` searches
//! longer (the default is 256 cases per property).

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tidaldb::crdt::HlcTimestamp;
use tidaldb::ledger::Ledger;
use tidaldb::schema::SignalIdx;

mod common;
use common::{SplitMix, T0, ts};
use tidaldb::{
    DecaySpec, EntityId, EntityKind, Event, EventBody, EventId, NodeId, Schema, TenantId,
    Timestamp, Window,
};

const HOUR: i64 = 3_600_000_000_000;
const MINUTE: i64 = 60_000_000_000;

fn schema(half_life_ns: u64, lifetime_ns: u64) -> Arc<Schema> {
    Arc::new(
        Schema::builder()
            .signal(
                "exp",
                EntityKind::Item,
                DecaySpec::Exponential {
                    half_life: Duration::from_nanos(half_life_ns),
                },
            )
            .windows(&[Window::OneHour, Window::TwentyFourHours, Window::SevenDays])
            .add()
            .signal(
                "lin",
                EntityKind::Item,
                DecaySpec::Linear {
                    lifetime: Duration::from_nanos(lifetime_ns),
                },
            )
            .add()
            .signal("perm", EntityKind::Item, DecaySpec::Permanent)
            .add()
            .build()
            .unwrap(),
    )
}

/// `(origin, entity, weight, ts)` per event; seqs are assigned per origin in list order, so
/// timestamps within one origin arrive out of order.
fn events(raw: &[(u16, u64, f64, i64)], signal: SignalIdx) -> Vec<Event> {
    let mut next_seq = [0u64; 4];
    raw.iter()
        .map(|&(origin, entity, weight, ts)| {
            next_seq[origin as usize] += 1;
            Event {
                id: EventId {
                    origin: NodeId(origin),
                    seq: next_seq[origin as usize],
                },
                hlc: HlcTimestamp {
                    wall_ns: ts as u64,
                    logical: 0,
                    node_id: origin,
                },
                tenant: TenantId::DEFAULT,
                client: None,
                body: EventBody::Signal {
                    claims_entity: false,
                    signal,
                    entity: EntityId(entity),
                    weight,
                    ts: Timestamp::from_nanos(ts).unwrap(),
                },
            }
        })
        .collect()
}

fn applied(schema: &Arc<Schema>, evs: &[Event]) -> Ledger {
    let mut l = Ledger::new(schema.clone());
    for e in evs {
        l.apply(e).unwrap();
    }
    assert_eq!(l.pending_len(), 0, "every gap must have filled");
    l
}

fn raw_events() -> impl Strategy<Value = Vec<(u16, u64, f64, i64)>> {
    prop::collection::vec(
        (1u16..4, 0u64..3, 0.001f64..100.0, T0..T0 + 7 * 24 * HOUR),
        1..120,
    )
}

/// Like `raw_events`, with weights of either sign (never -0.0, which writes refuse).
fn signed_events() -> impl Strategy<Value = Vec<(u16, u64, f64, i64)>> {
    prop::collection::vec(
        (1u16..4, 0u64..3, -100.0f64..100.0, T0..T0 + 7 * 24 * HOUR),
        1..120,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(o, e, w, t)| (o, e, if w == 0.0 { 1.0 } else { w }, t))
            .collect()
    })
}

/// With weights of both signs the sum can cancel, so the error is bounded relative to the
/// sum of magnitudes `Σ |w|·2^(-(t - t_i)/h)`, which is what floating point promises.
fn matches_the_analytical_sum(
    raw: &[(u16, u64, f64, i64)],
    half_life: u64,
    read_offset: i64,
) -> Result<(), TestCaseError> {
    let schema = schema(half_life, HOUR as u64);
    let evs = events(raw, SignalIdx(0));
    let ledger = applied(&schema, &evs);
    let min_t = raw.iter().map(|r| r.3).min().unwrap();
    let at = min_t + read_offset;
    let h = half_life as f64;
    for entity in 0..3u64 {
        let terms: Vec<f64> = raw
            .iter()
            .filter(|r| r.1 == entity)
            .map(|r| r.2 * 2f64.powf(-((at - r.3) as f64) / h))
            .collect();
        let expected: f64 = terms.iter().sum();
        let magnitude: f64 = terms.iter().map(|x| x.abs()).sum();
        let got = ledger
            .decay_score(SignalIdx(0), EntityId(entity), ts(at))
            .unwrap();
        let tolerance = 1e-9 * magnitude.max(f64::MIN_POSITIVE);
        prop_assert!(
            (got - expected).abs() <= tolerance,
            "entity {entity}: got {got}, analytical {expected}"
        );
    }
    Ok(())
}

proptest! {

    #[test]
    fn exponential_matches_the_analytical_sum(
        raw in signed_events(),
        half_life in HOUR as u64..30 * 24 * HOUR as u64,
        read_offset in 0i64..30 * 24 * HOUR,
    ) {
        matches_the_analytical_sum(&raw, half_life, read_offset)?;
    }

    /// Many events share a timestamp (as a bulk write stamped "now" makes them), which the
    /// accumulator adds without computing a factor of 2^-0.
    #[test]
    fn events_sharing_timestamps_match_the_analytical_sum(
        raw in prop::collection::vec((1u16..4, 0u64..3, -100.0f64..100.0, 0i64..3), 1..120),
        half_life in HOUR as u64..30 * 24 * HOUR as u64,
        read_offset in 0i64..30 * 24 * HOUR,
    ) {
        let raw: Vec<_> = raw
            .into_iter()
            .map(|(o, e, w, k)| (o, e, if w == 0.0 { 1.0 } else { w }, T0 + k * HOUR))
            .collect();
        matches_the_analytical_sum(&raw, half_life, read_offset)?;
    }

    #[test]
    /// The same events (same ids) delivered in any order, duplicated or not, give the same
    /// bits: each origin's events apply in seq order whatever the arrival order, and the
    /// partials of different origins are summed in origin order.
    fn delivery_order_of_the_same_events_never_changes_a_single_bit(
        raw in raw_events(),
        half_life in HOUR as u64..30 * 24 * HOUR as u64,
        shuffle_a in any::<u64>(),
        shuffle_b in any::<u64>(),
    ) {
        let schema = schema(half_life, 6 * HOUR as u64);
        let mut evs = events(&raw, SignalIdx(0));
        evs.extend(events(&raw, SignalIdx(1)));
        evs.extend(events(&raw, SignalIdx(2)));
        // seqs must be dense per origin across the three signals' copies
        let mut next = [0u64; 4];
        for e in &mut evs {
            next[e.id.origin.0 as usize] += 1;
            e.id.seq = next[e.id.origin.0 as usize];
        }
        let in_order = applied(&schema, &evs);
        let a = applied(&schema, &permuted(&evs, shuffle_a));
        let b = applied(&schema, &permuted(&evs, shuffle_b));
        let max_t = raw.iter().map(|r| r.3).max().unwrap();
        for at in [max_t, max_t + HOUR, max_t + 40 * 24 * HOUR] {
            for signal in 0..3 {
                for entity in 0..3u64 {
                    let read = |l: &Ledger| l.decay_score(SignalIdx(signal), EntityId(entity), ts(at)).unwrap().to_bits();
                    prop_assert_eq!(read(&in_order), read(&a));
                    prop_assert_eq!(read(&in_order), read(&b));
                }
            }
        }
        for entity in 0..3u64 {
            for w in [Window::OneHour, Window::TwentyFourHours, Window::SevenDays, Window::AllTime] {
                let read = |l: &Ledger| l.window(SignalIdx(0), EntityId(entity), w, ts(max_t)).unwrap();
                prop_assert_eq!(read(&in_order), read(&a));
                prop_assert_eq!(read(&in_order), read(&b));
            }
        }
    }

    /// At or after the newest event a window read is always answered; before it, it is
    /// either answered exactly or refused, never wrong.
    #[test]
    fn windows_match_a_brute_force_count(raw in raw_events(), read_offset in -8 * 24 * HOUR..8 * 24 * HOUR) {
        let schema = schema(HOUR as u64, HOUR as u64);
        let ledger = applied(&schema, &events(&raw, SignalIdx(0)));
        let max_t = raw.iter().map(|r| r.3).max().unwrap();
        let at = (max_t + read_offset).max(0);
        for (window, granule, n) in [
            (Window::OneHour, MINUTE, 60),
            (Window::TwentyFourHours, HOUR, 24),
            (Window::SevenDays, 6 * HOUR, 28),
        ] {
            for entity in 0..3u64 {
                let now = at / granule;
                let expected = raw
                    .iter()
                    .filter(|r| r.1 == entity && r.3 / granule > now - n && r.3 / granule <= now)
                    .count() as u64;
                match ledger.window(SignalIdx(0), EntityId(entity), window, ts(at)) {
                    Ok(got) => prop_assert_eq!(got.count, expected, "{} window, entity {}", window, entity),
                    Err(tidaldb::TidalError::BeforeRetainedHistory { .. }) if at < max_t => {}
                    Err(e) => prop_assert!(false, "{} window at {}: {}", window, at, e),
                }
            }
        }
    }

    #[test]
    fn linear_and_permanent_match_their_formulas(
        raw in raw_events(),
        lifetime in HOUR as u64..10 * 24 * HOUR as u64,
        read_offset in 0i64..12 * 24 * HOUR,
    ) {
        let schema = schema(HOUR as u64, lifetime);
        let mut evs = events(&raw, SignalIdx(1));
        evs.extend(events(&raw, SignalIdx(2)));
        let mut next = [0u64; 4];
        for e in &mut evs {
            next[e.id.origin.0 as usize] += 1;
            e.id.seq = next[e.id.origin.0 as usize];
        }
        let ledger = applied(&schema, &evs);
        let max_t = raw.iter().map(|r| r.3).max().unwrap();
        let at = max_t + read_offset;
        let l = lifetime as f64;
        for entity in 0..3u64 {
            let mine = || raw.iter().filter(|r| r.1 == entity);
            let linear: f64 = mine().map(|r| r.2 * (1.0 - (at - r.3) as f64 / l).max(0.0)).sum();
            let permanent: f64 = mine().map(|r| r.2).sum();
            let got_l = ledger.decay_score(SignalIdx(1), EntityId(entity), ts(at)).unwrap();
            let got_p = ledger.decay_score(SignalIdx(2), EntityId(entity), ts(at)).unwrap();
            prop_assert!((got_l - linear).abs() <= 1e-9 * linear.abs().max(1e-12), "linear {got_l} vs {linear}");
            prop_assert!((got_p - permanent).abs() <= 1e-9 * permanent.abs().max(1e-12), "permanent {got_p} vs {permanent}");
        }
    }
}

proptest! {

    /// The batch path (slots resolved first, states prefetched) must equal per-event apply.
    #[test]
    fn batch_apply_is_bit_identical_to_one_by_one(
        raw in prop::collection::vec((0u64..50, 0.001f64..10.0, T0..T0 + 3 * 24 * HOUR, 0u16..3), 1..300),
        chunk in 1usize..64,
    ) {
        let schema = schema(3 * HOUR as u64, 5 * HOUR as u64);
        let evs: Vec<Event> = raw
            .iter()
            .enumerate()
            .map(|(i, &(entity, weight, ts, signal))| {
                let mut e = events(&[(1, entity, weight, ts)], SignalIdx(signal))[0];
                e.id.seq = i as u64 + 1;
                e
            })
            .collect();
        let one_by_one = applied(&schema, &evs);
        let mut batched = Ledger::new(schema.clone());
        for c in evs.chunks(chunk) {
            batched.apply_batch(c).unwrap();
        }
        prop_assert_eq!(batched.version_vector(), one_by_one.version_vector());
        let at = ts(T0 + 4 * 24 * HOUR);
        for signal in 0..3 {
            for entity in 0..50 {
                let read = |l: &Ledger| l.decay_score(SignalIdx(signal), EntityId(entity), at).unwrap().to_bits();
                prop_assert_eq!(read(&batched), read(&one_by_one));
            }
        }
        for entity in 0..50 {
            let read = |l: &Ledger| l.window(SignalIdx(0), EntityId(entity), Window::TwentyFourHours, at).unwrap();
            prop_assert_eq!(read(&batched), read(&one_by_one));
        }
    }
}

/// The events with some duplicated, in a deterministic Fisher-Yates shuffle.
fn permuted(evs: &[Event], seed: u64) -> Vec<Event> {
    let mut rng = SplitMix(seed);
    // every fifth event is delivered twice, as a retry would
    let mut out: Vec<Event> = evs.iter().chain(evs.iter().step_by(5)).copied().collect();
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out
}

/// Origin 1's events 1 to 3 (weights 1, 2 and 4 on entity 0 of signal 2), and a ledger
/// that received the third first and holds it in its gap buffer.
fn ledger_waiting_for_seq_1() -> (Ledger, Vec<Event>) {
    let evs = events(
        &[(1, 0, 1.0, T0), (1, 0, 2.0, T0 + 1), (1, 0, 4.0, T0 + 2)],
        SignalIdx(2),
    );
    let mut l = Ledger::new(schema(HOUR as u64, HOUR as u64));
    assert_eq!(
        l.apply(&evs[2]).unwrap(),
        tidaldb::ledger::Applied::Buffered
    );
    (l, evs)
}

#[test]
fn duplicates_are_dropped_and_gaps_wait() {
    let (mut l, evs) = ledger_waiting_for_seq_1();
    use tidaldb::ledger::Applied;
    assert_eq!(
        l.decay_score(SignalIdx(2), EntityId(0), ts(T0 + 9))
            .unwrap(),
        0.0
    );
    assert_eq!(l.apply(&evs[0]).unwrap(), Applied::Now { unblocked: 0 });
    assert_eq!(l.apply(&evs[0]).unwrap(), Applied::Duplicate);
    assert_eq!(l.apply(&evs[1]).unwrap(), Applied::Now { unblocked: 1 });
    assert_eq!(l.apply(&evs[2]).unwrap(), Applied::Duplicate);
    assert_eq!(
        l.decay_score(SignalIdx(2), EntityId(0), ts(T0 + 9))
            .unwrap(),
        7.0
    );
}

#[test]
fn an_admitted_next_event_unblocks_its_buffered_successors() {
    let (mut l, evs) = ledger_waiting_for_seq_1();
    l.apply_next(&evs[0]);
    assert_eq!(l.pending_len(), 1, "seq 3 still waits for seq 2");
    l.apply_next(&evs[1]);
    assert_eq!(l.pending_len(), 0, "seq 2 let seq 3 through");
    assert_eq!(l.version_vector().get(NodeId(1)), 3);
    assert_eq!(
        l.decay_score(SignalIdx(2), EntityId(0), ts(T0 + 9))
            .unwrap(),
        7.0
    );
}

#[test]
fn the_gap_buffer_is_bounded() {
    let schema = schema(HOUR as u64, HOUR as u64);
    let mut l = Ledger::new(schema);
    let template = events(&[(1, 0, 1.0, T0)], SignalIdx(2))[0];
    // seq 1 never arrives, so everything after it waits
    for seq in 2..(2 + (1u64 << 20)) {
        let mut e = template;
        e.id.seq = seq;
        assert_eq!(l.apply(&e).unwrap(), tidaldb::ledger::Applied::Buffered);
    }
    let mut one_more = template;
    one_more.id.seq = 3 + (1u64 << 20);
    assert!(matches!(
        l.apply(&one_more),
        Err(tidaldb::TidalError::Unavailable(_))
    ));
    // filling the gap drains the buffer
    let mut first = template;
    first.id.seq = 1;
    assert_eq!(
        l.apply(&first).unwrap(),
        tidaldb::ledger::Applied::Now { unblocked: 1 << 20 }
    );
    assert_eq!(l.pending_len(), 0);
}
