//! One `signal_batch` call of N events against the same events in 10K-event calls, in Rust
//! alone (no Python copies), applied on one thread and on T:
//! `cargo run --release -p tidaldb --example bulk_call -- 1000000 [T] [ROUNDS] [spread]` (T
//! defaults to the number of cores, ROUNDS to 5; `spread` spreads every large chunk instead
//! of only while that has been timed faster).

use std::time::{Duration, Instant};

use tidaldb::{DecaySpec, EntityId, EntityKind, Schema, TidalDb, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let threads: usize = std::env::args()
        .nth(2)
        .map_or(Ok(tidaldb::node::default_ingest_threads()), |a| a.parse())?;
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
    let ids: Vec<EntityId> = (0..n)
        .map(|i| EntityId(tidaldb::sim::SimRng::new(i as u64).next_u64() % 100_000))
        .collect();
    let weights = vec![1.0; n];
    let ts: Vec<Timestamp> = (0..n)
        .map(|i| Timestamp::from_nanos(1_700_000_000_000_000_000 + i as i64 * 1_000_000))
        .collect::<Result<_, _>>()?;
    println!("load average at the start: {}", load_average());
    let rounds: usize = std::env::args().nth(3).map_or(Ok(5), |a| a.parse())?;
    if std::env::args().nth(4).as_deref() == Some("spread") {
        // Every large chunk on T threads, without timing whether that pays: what the
        // partitioned apply itself costs.
        tidaldb::ledger::spread_every_batch();
    }
    let paths = [(n, 1), (n, threads), (10_000, 1)];
    let mut rates = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        // Alternating, so that a busy moment hits every path.
        for (p, &(chunk, threads)) in paths.iter().enumerate() {
            let db = TidalDb::builder()
                .ephemeral()
                .ingest_threads(threads)
                .with_schema(schema.clone())
                .open()?;
            let started = Instant::now();
            for s in (0..n).step_by(chunk) {
                let e = n.min(s + chunk);
                db.signal_batch("view", &ids[s..e], &weights[s..e], Some(&ts[s..e]))?;
            }
            let rate = n as f64 / started.elapsed().as_secs_f64() / 1e6;
            println!("round {round} chunk {chunk} threads {threads}: {rate:.2} M/s");
            rates[p].push(rate);
        }
    }
    println!("load average at the end: {}", load_average());
    let best = |p: usize| rates[p].iter().copied().fold(0.0, f64::max);
    let median = |p: usize| {
        let mut r = rates[p].clone();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    for (p, &(chunk, threads)) in paths.iter().enumerate() {
        println!(
            "chunk {chunk} threads {threads}: best {:.2} M/s, median {:.2} M/s; against one call \
             on one thread: best {:.2}x, median {:.2}x",
            best(p),
            median(p),
            best(p) / best(0),
            median(p) / median(0)
        );
    }
    Ok(())
}

/// The 1-, 5- and 15-minute load averages: the machine is shared, so figures need them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
