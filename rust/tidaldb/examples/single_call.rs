//! One `TidalDb::signal` call per event, in Rust alone (no Python), against a bare
//! `HashMap` decay update over the same ids, alternating so that a busy moment hits both:
//! `cargo run --release -p tidaldb --example single_call -- [N] [ROUNDS]` (N defaults to
//! 1,000,000 events over 100,000 entities, ROUNDS to 5). Events are stamped "now", as
//! `db.signal("view", item, 1.0)` from Python is.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use tidaldb::{DecaySpec, EntityId, EntityKind, Schema, TidalDb, Timestamp};

const HALF_LIFE_SECS: u64 = 3_600;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let rounds: usize = std::env::args().nth(2).map_or(Ok(5), |a| a.parse())?;
    let schema = Schema::builder()
        .signal(
            "view",
            EntityKind::Item,
            DecaySpec::Exponential {
                half_life: Duration::from_secs(HALF_LIFE_SECS),
            },
        )
        .add()
        .build()?;
    let ids: Vec<EntityId> = (0..n)
        .map(|i| EntityId(tidaldb::sim::SimRng::new(i as u64).next_u64() % 100_000))
        .collect();
    println!("load average at the start: {}", load_average());
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let db = TidalDb::builder()
            .ephemeral()
            .with_schema(schema.clone())
            .open()?;
        let started = Instant::now();
        for &id in &ids {
            db.signal("view", id, 1.0, None)?;
        }
        // A lone in-memory database applies single writes in batches; a read applies what
        // is still queued, so the timing holds all the work.
        black_box(db.events_applied()?);
        ours.push(started.elapsed().as_secs_f64() * 1e9 / n as f64);
        base.push(hashmap_update(&ids));
        println!(
            "round {round}: signal {:.1} ns/call, HashMap update {:.1} ns/event",
            ours[round], base[round]
        );
    }
    println!("load average at the end: {}", load_average());
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "signal: best {:.1} ns, median {:.1} ns; HashMap: best {:.1} ns, median {:.1} ns; \
         time over the baseline's: best {:.2}x, median {:.2}x",
        best(&ours),
        median(&ours),
        best(&base),
        median(&base),
        best(&ours) / best(&base),
        median(&ours) / median(&base)
    );
    Ok(())
}

/// Nanoseconds per event of the same decay update into a bare map, stamped "now" too.
fn hashmap_update(ids: &[EntityId]) -> f64 {
    let mut acc: HashMap<u64, (f64, i64)> = HashMap::new();
    let h = (HALF_LIFE_SECS * 1_000_000_000) as f64;
    let started = Instant::now();
    for id in ids {
        let now = Timestamp::now().as_nanos();
        let e = acc.entry(id.0).or_insert((0.0, now));
        e.0 = e.0 * (-((now - e.1) as f64) / h).exp2() + 1.0;
        e.1 = now;
    }
    black_box(&acc);
    started.elapsed().as_secs_f64() * 1e9 / ids.len() as f64
}

/// The 1-, 5- and 15-minute load averages: the machine is shared, so figures need them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
