//! Top-50 of 10K candidates with 1K of them hidden, in Rust alone (no Python): the read
//! the peer benchmark's "top" figure times. 1M events over 100K items, one decay-only
//! signal with a 1-day half-life; candidates in random order, as the benchmark draws them.
//! `cargo run --release -p tidaldb --example retrieve_10k -- [QUERIES] [ROUNDS]`
//! (QUERIES per round defaults to 2,000, ROUNDS to 5); prints µs per query per round.

use std::time::{Duration, Instant};

use tidaldb::sim::SimRng;
use tidaldb::{DecaySpec, EntityId, EntityKind, Retrieve, Schema, TidalDb, Timestamp};

const ITEMS: u64 = 100_000;
const EVENTS: usize = 1_000_000;
const CANDIDATES: usize = 10_000;
const HIDDEN: usize = 1_000;
const T0_NS: i64 = 1_700_000_000_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queries: usize = std::env::args().nth(1).map_or(Ok(2_000), |a| a.parse())?;
    let rounds: usize = std::env::args().nth(2).map_or(Ok(5), |a| a.parse())?;
    let schema = Schema::builder()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(86_400),
            },
        )
        .add()
        .build()?;
    let db = TidalDb::builder().ephemeral().with_schema(schema).open()?;
    let mut rng = SimRng::new(1);
    let ids: Vec<EntityId> = (0..EVENTS).map(|_| EntityId(rng.below(ITEMS))).collect();
    let weights: Vec<f64> = (0..EVENTS)
        .map(|_| [0.5, 1.0, 2.0][rng.below(3) as usize])
        .collect();
    let mut offsets: Vec<i64> = (0..EVENTS)
        .map(|_| rng.below(DAY_NS as u64) as i64)
        .collect();
    offsets.sort_unstable();
    let ts: Vec<Timestamp> = offsets
        .iter()
        .map(|o| Timestamp::from_nanos(T0_NS + o))
        .collect::<Result<_, _>>()?;
    db.signal_batch("view", &ids, &weights, Some(&ts))?;
    // A random 10K of the items (a partial Fisher-Yates), the first 1K of them hidden.
    let mut all: Vec<u64> = (0..ITEMS).collect();
    for i in 0..CANDIDATES {
        let j = i + rng.below(ITEMS - i as u64) as usize;
        all.swap(i, j);
    }
    let candidates: Vec<EntityId> = all[..CANDIDATES].iter().map(|&i| EntityId(i)).collect();
    let user = EntityId(7);
    for item in &candidates[..HIDDEN] {
        db.hide_item(user, *item, None)?;
    }
    let at = *ts.last().ok_or("no events")?;
    println!("load average at the start: {}", load_average());
    for round in 0..rounds {
        let started = Instant::now();
        let mut returned = 0;
        for _ in 0..queries {
            let q = Retrieve::builder()
                .for_user(user)
                .candidates(candidates.iter().copied())
                .rank_by(&[("view", 1.0)])
                .limit(50)
                .at(at)
                .build()?;
            returned += std::hint::black_box(db.retrieve(&q)?).items.len();
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / queries as f64;
        println!("round {round}: {us:.1} µs per query ({returned} items returned)");
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}
