//! Tenancy benchmarks: what quota admission costs a write, and how fast a throttled write
//! is refused. Each figure is printed beside a baseline measured in the same run, as a
//! ratio, because machines are noisy. Run with
//! `cargo bench -p tidaldb --bench tenancy` (about 10 s).
//!
//! 1. Admission cost: one-signal writes with quotas that are all set (rate, entities,
//!    storage) but never reached, against the same writes without quotas. Measured on a
//!    bare sans-IO `Node` (admission alone) and through an ephemeral `TidalDb` (the
//!    tenant's registry lookup and lock included; the default tenant's `signal` is the
//!    extra baseline there).
//! 2. Throttling: one-signal writes refused with `QuotaExceeded` by an exhausted rate
//!    limit, against an accepted write. The design asks for a refusal within
//!    microseconds; the target here is ≤ 1 µs.
//!
//! Every figure is the median over `RUNS` rounds of `WRITES` writes; the variants of one
//! comparison are measured in turn within each round, starting with a different one each
//! round, so drift and warm caches favour none of them.

#[path = "shared/schema.rs"]
mod shared_schema;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use tidaldb::ledger::Ledger;
use tidaldb::node::{ClientOp, Input, Node, NodeConfig, Outputs, WriteConcern, WriteRequest};
use tidaldb::schema::SignalIdx;
use tidaldb::tenancy::{TenantConfig, TenantQuotas};
use tidaldb::{EntityId, Schema, TenantId, TidalDb, TidalError, Timestamp};

const WRITES: usize = 200_000;
const RUNS: usize = 15;
const ENTITIES: u64 = 100_000;
const T0: i64 = 1_700_000_000_000_000_000;
/// The refusal target: "within microseconds", read strictly.
const REFUSAL_TARGET_NS: f64 = 1_000.0;

fn schema() -> Schema {
    shared_schema::view_signal()
        .add()
        .build()
        .expect("the benchmark schema is valid")
}

/// Quotas that are all checked on every write and never reached by this benchmark:
/// 100 M signals/s (a write here takes well over 10 ns), 2^40 entities, unbounded bytes.
/// An ephemeral database with tenant 1 under generous quotas.
fn db_with_generous_tenant(schema: &Arc<Schema>) -> TidalDb {
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema.as_ref().clone())
        .open()
        .expect("an ephemeral database opens");
    db.register_tenant(generous(1)).expect("registers");
    db
}

fn generous(id: u64) -> TenantConfig {
    TenantConfig {
        max_signals_per_sec: Some(100_000_000),
        max_entities: Some(1 << 40),
        max_storage_bytes: Some(u64::MAX),
        ..TenantConfig::new(TenantId(id), "generous")
    }
}

/// A rate limit of one signal a second: after its burst of two, every write is refused.
fn throttled(id: u64) -> TenantConfig {
    TenantConfig {
        max_signals_per_sec: Some(1),
        ..TenantConfig::new(TenantId(id), "throttled")
    }
}

/// Random entity ids (xorshift) over `ENTITIES`.
fn entities(n: usize, seed: u64) -> Vec<EntityId> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            EntityId(x % ENTITIES)
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median nanoseconds per write of each of `n` variants: every round times each variant
/// once (`time(v)` for variant `v`), in an order rotated round by round.
fn compare(n: usize, mut time: impl FnMut(usize) -> f64) -> Vec<f64> {
    let mut samples = vec![Vec::new(); n];
    for round in 0..RUNS {
        for k in 0..n {
            let v = (round + k) % n;
            samples[v].push(time(v));
        }
    }
    samples.into_iter().map(median).collect()
}

/// Nanoseconds per call of `f` over `WRITES` calls.
fn time_writes(mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..WRITES {
        f(i);
    }
    start.elapsed().as_secs_f64() * 1e9 / WRITES as f64
}

/// A single-node `Node` driven by a virtual clock one millisecond per write, so time only
/// moves forward, as for live traffic.
struct NodeBench {
    node: Node,
    out: Outputs,
    clock: i64,
    signal: SignalIdx,
}

impl NodeBench {
    fn new(cfg: &Option<TenantConfig>, schema: &Arc<Schema>) -> NodeBench {
        let quotas = cfg
            .as_ref()
            .map(|c| TenantQuotas::new(c).map(Arc::new))
            .transpose()
            .expect("the benchmark quotas are valid");
        let tenant = cfg.as_ref().map_or(TenantId::DEFAULT, |c| c.tenant_id);
        let node_cfg = NodeConfig {
            tenant,
            quotas,
            ..NodeConfig::default()
        };
        NodeBench {
            node: Node::new(node_cfg, Ledger::new(schema.clone()), Default::default()),
            out: Outputs::default(),
            clock: T0,
            signal: SignalIdx(0),
        }
    }

    /// Writes one signal; `advance` moves the virtual clock (a throttled run keeps it
    /// still, so no token accrues). Returns whether the write was accepted.
    fn write(&mut self, entity: EntityId, advance: bool) -> bool {
        if advance {
            self.clock += 1_000_000;
        }
        let now = Timestamp::from_nanos(self.clock).expect("in range");
        let op = ClientOp::Signal {
            signal: self.signal,
            entity,
            weight: 1.0,
            ts: Some(now),
        };
        self.out.clear();
        let request = WriteRequest {
            id: 1,
            ops: &[op],
            concern: WriteConcern::Local,
            tag: None,
        };
        self.node.handle(now, Input::Write(request), &mut self.out);
        matches!(self.out.replies.first(), Some((_, Ok(_))))
    }
}

struct Row {
    figure: String,
    measured: f64,
    baseline_name: &'static str,
    baseline: f64,
    target: Option<f64>,
}

fn section_admission(ids: &[EntityId], rows: &mut Vec<Row>) {
    let schema = Arc::new(schema());
    let mut bare = NodeBench::new(&None, &schema);
    let mut quota = NodeBench::new(&Some(generous(1)), &schema);
    let ns = compare(2, |v| {
        let node = if v == 0 { &mut bare } else { &mut quota };
        time_writes(|i| assert!(node.write(ids[i], true)))
    });
    rows.push(Row {
        figure: "Node write, generous quotas (rate + entities + storage)".into(),
        measured: ns[1],
        baseline_name: "Node write, no quotas",
        baseline: ns[0],
        target: None,
    });

    let db = db_with_generous_tenant(&schema);
    db.register_tenant(TenantConfig::new(TenantId(2), "unlimited"))
        .expect("registers");
    let mut clock = T0;
    let ns = compare(3, |v| {
        time_writes(|i| {
            clock += 1_000_000;
            let ts = Some(Timestamp::from_nanos(clock).expect("in range"));
            let written = match v {
                0 => db.signal("view", ids[i], 1.0, ts),
                1 => db.signal_for_tenant(TenantId(2), "view", ids[i], 1.0, ts),
                _ => db.signal_for_tenant(TenantId(1), "view", ids[i], 1.0, ts),
            };
            black_box(written.expect("accepted"));
        })
    });
    let (default_ns, plain_ns, generous_ns) = (ns[0], ns[1], ns[2]);
    rows.push(Row {
        figure: "TidalDb::signal_for_tenant, tenant without quotas".into(),
        measured: plain_ns,
        baseline_name: "TidalDb::signal (default tenant)",
        baseline: default_ns,
        target: None,
    });
    rows.push(Row {
        figure: "TidalDb::signal_for_tenant, generous quotas".into(),
        measured: generous_ns,
        baseline_name: "TidalDb::signal_for_tenant, no quotas",
        baseline: plain_ns,
        target: None,
    });
}

fn section_throttling(ids: &[EntityId], rows: &mut Vec<Row>) {
    let schema = Arc::new(schema());
    let mut accepted = NodeBench::new(&Some(generous(1)), &schema);
    let mut refused = NodeBench::new(&Some(throttled(3)), &schema);
    // Spend the burst of two; the clock then stands still, so nothing more accrues.
    while refused.write(EntityId(0), false) {}
    let ns = compare(2, |v| match v {
        0 => time_writes(|i| assert!(accepted.write(ids[i], true))),
        _ => time_writes(|i| assert!(!refused.write(ids[i], false))),
    });
    rows.push(Row {
        figure: "Node write refused (rate limit exhausted)".into(),
        measured: ns[1],
        baseline_name: "Node write accepted, generous quotas",
        baseline: ns[0],
        target: Some(REFUSAL_TARGET_NS),
    });

    let db = db_with_generous_tenant(&schema);
    db.register_tenant(throttled(3)).expect("registers");
    let ts = Some(Timestamp::from_nanos(T0).expect("in range"));
    // The wall clock moves here: one token a second accrues, so a few writes pass.
    let mut passed = 0u64;
    let ns = compare(2, |v| match v {
        0 => time_writes(|i| {
            black_box(
                db.signal_for_tenant(TenantId(1), "view", ids[i], 1.0, ts)
                    .expect("accepted"),
            );
        }),
        _ => time_writes(
            |i| match db.signal_for_tenant(TenantId(3), "view", ids[i], 1.0, ts) {
                Err(TidalError::QuotaExceeded(b)) => {
                    black_box(b);
                }
                Ok(_) => passed += 1,
                Err(e) => panic!("a throttled write failed otherwise: {e}"),
            },
        ),
    });
    println!(
        "throttled TidalDb tenant: {passed} of {} writes passed (one token a second accrues)",
        RUNS * WRITES
    );
    rows.push(Row {
        figure: "TidalDb::signal_for_tenant refused (rate limit exhausted)".into(),
        measured: ns[1],
        baseline_name: "TidalDb::signal_for_tenant accepted, generous quotas",
        baseline: ns[0],
        target: Some(REFUSAL_TARGET_NS),
    });
}

fn main() {
    let overall = Instant::now();
    let ids = entities(WRITES, 42);
    let mut rows = Vec::new();
    println!("=== tidaldb tenancy benchmarks (release build, one thread) ===");
    println!(
        "workload: one-signal writes of `view` (1h + 24h windows) over {ENTITIES} random \
         entities; median of {RUNS} rounds of {WRITES} writes; ephemeral databases"
    );
    section_admission(&ids, &mut rows);
    section_throttling(&ids, &mut rows);
    println!("\n=== summary (ratios against baselines from this run) ===");
    println!("| figure | measured | baseline (same run) | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let (target, met) = match r.target {
            Some(t) => (
                format!("≤ {t:.0} ns"),
                if r.measured <= t { "yes" } else { "NO" },
            ),
            None => (String::new(), ""),
        };
        println!(
            "| {} | {:.1} ns/write | {}: {:.1} ns/write | {:.2}× | {} | {} |",
            r.figure,
            r.measured,
            r.baseline_name,
            r.baseline,
            r.measured / r.baseline,
            target,
            met
        );
    }
    println!(
        "\ntotal bench time {:.1} s",
        overall.elapsed().as_secs_f64()
    );
}
