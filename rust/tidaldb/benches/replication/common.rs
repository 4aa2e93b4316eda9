//! Shared helpers: the schema, the workload, statistics, cluster config and the single-node baseline.

use crate::shared_schema;

use std::hint::black_box;
use std::time::{Duration, Instant};

use tidaldb::node::ClientOp;
use tidaldb::schema::SignalIdx;
use tidaldb::sim::{ClusterConfig, DEFAULT_START_NS, LinkConfig, SimulatedCluster};
use tidaldb::{EntityId, Schema, TidalDb, Timestamp};

use crate::{BATCH, ENTITIES, REGIONS, S0};

pub(crate) fn schema() -> Schema {
    shared_schema::view_signal()
        .add()
        .build()
        .expect("the benchmark schema is valid")
}

/// 1M events over 100K random entities (xorshift), one millisecond apart, ending just
/// before the simulator's start, so that every replica accepts them as past events.
pub(crate) struct Workload {
    ids: Vec<EntityId>,
    weights: Vec<f64>,
    ts: Vec<Timestamp>,
}

impl Workload {
    pub(crate) fn new(n: usize, seed: u64) -> Self {
        let mut x = seed | 1;
        let ids = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                EntityId(x % ENTITIES)
            })
            .collect();
        let weights = (0..n).map(|i| 1.0 + (i % 3) as f64).collect();
        let first = DEFAULT_START_NS - n as i64 * 1_000_000;
        let ts = (0..n)
            .map(|i| Timestamp::from_nanos(first + i as i64 * 1_000_000).expect("in range"))
            .collect();
        Workload { ids, weights, ts }
    }

    pub(crate) fn ops(&self, signal: SignalIdx) -> Vec<ClientOp> {
        (0..self.ids.len())
            .map(|i| ClientOp::Signal {
                signal,
                entity: self.ids[i],
                weight: self.weights[i],
                ts: Some(self.ts[i]),
            })
            .collect()
    }
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn virtual_ms(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_nanos() - from.as_nanos()) as f64 / 1e6
}

pub(crate) fn config(seed: u64) -> ClusterConfig {
    ClusterConfig {
        seed,
        ..ClusterConfig::new(schema())
    }
}

pub(crate) fn assert_all_applied(cluster: &SimulatedCluster, events: u64) {
    for r in REGIONS {
        let vv = cluster.version_vector(r, S0).expect("region exists");
        assert_eq!(vv.sum(), events, "region {} applied {:?}", r.0, vv);
    }
}

// Baseline: single-node ingest

/// Wall seconds for an ephemeral `TidalDb` to ingest the workload through `signal_batch`,
/// in the same 100K batches the cluster gets.
pub(crate) fn single_node_ingest(w: &Workload) -> f64 {
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .expect("an ephemeral database opens");
    let start = Instant::now();
    for ((ids, weights), ts) in w
        .ids
        .chunks(BATCH)
        .zip(w.weights.chunks(BATCH))
        .zip(w.ts.chunks(BATCH))
    {
        db.signal_batch("view", ids, weights, Some(ts))
            .expect("the batch is valid");
    }
    let secs = start.elapsed().as_secs_f64();
    black_box(&db);
    secs
}

/// Links without jitter: every message takes exactly the latency, so frames arrive in the
/// order sent. A diagnostic: the default links reorder frames sent at the same instant.
pub(crate) fn in_order_links() -> LinkConfig {
    LinkConfig {
        jitter: Duration::ZERO,
        ..LinkConfig::default()
    }
}
