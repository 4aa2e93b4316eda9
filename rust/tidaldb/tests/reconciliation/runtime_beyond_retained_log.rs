//! Catch-up beyond the in-memory retained log on the tokio runtime, over real WAL files:
//! two replicas each write three times their bound while all three are cut off from each
//! other, snapshotting their logs meanwhile; after the heal every replica converges
//! bit-identical to the analytical oracle, reading the trimmed events back from the WAL
//! segments the snapshots had to keep.

use crate::common;
use common::T0;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidaldb::node::NodeConfig;
use tidaldb::runtime::InProcessTransportFactory;
use tidaldb::{Durability, EntityId, NodeId, Schema, TidalDb, Timestamp, VersionVector};

const HALF_LIFE: Duration = Duration::from_secs(3600);
const BOUND: usize = 500;
const WRITES: usize = 3 * BOUND;
const BATCH: usize = 50;
const ITEMS: u64 = 5;
const CONVERGE_WITHIN: Duration = Duration::from_secs(20);

fn schema() -> Schema {
    common::view_signal(HALF_LIFE).add().build().unwrap()
}

fn config(id: u16) -> NodeConfig {
    NodeConfig {
        max_retained: BOUND,
        max_retained_own: BOUND,
        max_frame_events: 128,
        ..common::runtime_replica_config(id)
    }
}

fn assert_logs_bounded(dbs: &[TidalDb], when: &str) {
    for (i, db) in dbs.iter().enumerate() {
        let (len, bound) = db.retained_log_len().unwrap();
        assert!(
            len <= bound && bound == 2 * BOUND,
            "{when}: replica {i}'s retained log holds {len} events, past its bound {bound}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_past_the_retained_bound_converge_from_their_wals_after_a_partition() {
    let net = InProcessTransportFactory::new();
    let mut dbs = Vec::new();
    let mut dirs = Vec::new();
    for id in 0..3 {
        let (transport, inbox) = net.connect(NodeId(id));
        let dir = tempfile::tempdir().unwrap();
        let db = TidalDb::builder()
            .with_schema(schema())
            .with_cluster(config(id))
            .with_transport(Arc::new(transport), inbox)
            .with_data_dir(dir.path())
            .durability(Durability::Immediate)
            // Small segments, so that a snapshot has whole segments it could delete.
            .segment_bytes(4 << 10)
            .open()
            .unwrap();
        dbs.push(db);
        dirs.push(dir);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cuts = [
        net.inject_partition(NodeId(0), NodeId(1)),
        net.inject_partition(NodeId(0), NodeId(2)),
        net.inject_partition(NodeId(1), NodeId(2)),
    ];

    // (item, time, weight) of every acknowledged write.
    let mut acked: Vec<(EntityId, Timestamp, f64)> = Vec::new();
    let mut rng = common::SplitMix(23);
    for round in 0..WRITES / BATCH {
        for writer in [0, 1] {
            let batch: Vec<(EntityId, Timestamp, f64)> = (0..BATCH)
                .map(|k| {
                    let at = T0 + ((round * BATCH + k) as i64) * 1_000_000_000;
                    (
                        EntityId(rng.below(ITEMS)),
                        common::ts(at + writer as i64),
                        1.0 + rng.below(4) as f64,
                    )
                })
                .collect();
            let items: Vec<EntityId> = batch.iter().map(|w| w.0).collect();
            let times: Vec<Timestamp> = batch.iter().map(|w| w.1).collect();
            let weights: Vec<f64> = batch.iter().map(|w| w.2).collect();
            let n = dbs[writer]
                .signal_batch("view", &items, &weights, Some(&times))
                .unwrap();
            assert_eq!(n, BATCH);
            acked.extend(batch);
        }
        if round % 10 == 5 {
            for writer in [0, 1] {
                assert!(dbs[writer].snapshot().unwrap() > 0);
            }
        }
        assert_logs_bounded(&dbs, &format!("after write round {round}"));
    }
    for writer in [0, 1] {
        dbs[writer].snapshot().unwrap();
    }

    drop(cuts);
    let expected: VersionVector = {
        let mut vv = VersionVector::new();
        vv.advance(NodeId(0), WRITES as u64);
        vv.advance(NodeId(1), WRITES as u64);
        vv
    };
    let start = Instant::now();
    loop {
        assert_logs_bounded(&dbs, "during the catch-up");
        let vvs: Vec<VersionVector> = dbs.iter().map(|d| d.version_vector().unwrap()).collect();
        if vvs.iter().all(|v| *v == expected) {
            break;
        }
        assert!(
            start.elapsed() < CONVERGE_WITHIN,
            "no convergence within {CONVERGE_WITHIN:?} of the heal: {vvs:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let at = common::ts(T0 + (WRITES as i64 + 60) * 1_000_000_000);
    for item in (0..ITEMS).map(EntityId) {
        let scores: Vec<f64> = dbs
            .iter()
            .map(|d| d.read_decay_score_at(item, "view", at).unwrap())
            .collect();
        assert!(
            scores.iter().all(|s| *s == scores[0]),
            "item {}: {scores:?}",
            item.0
        );
        let mine = acked.iter().filter(|w| w.0 == item);
        let oracle = common::decay_sum(mine.map(|w| (w.1, w.2)), at, HALF_LIFE);
        common::assert_close(scores[0], oracle, &format!("item {}", item.0));
    }
    for db in &dbs {
        db.close().unwrap();
    }
}
