//! Catch-up after a partition in which replicas wrote more events than their in-memory
//! retained log holds: the events that left it are read back from the durable log, every
//! replica converges bit-identical to the analytical oracle over the acknowledged writes,
//! and the retained log never passes its bound. This module drives the simulator;
//! the runtime over real WAL files is in `runtime_beyond_retained_log.rs`.

use crate::common;

use std::time::Duration;

use tidaldb::control::RegionHealth;
use tidaldb::node::{ClientOp, WriteAck, WriteConcern};
use tidaldb::sim::{ClusterConfig, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, Timestamp, VersionVector};

const HALF_LIFE: Duration = Duration::from_secs(600);
const BOUND: usize = 2_000;
/// Each writer writes three times its own events' bound during the partition.
const WRITES: usize = 3 * BOUND;
const BATCH: usize = 50;
const ITEMS: u64 = 7;
const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];

fn schema() -> Schema {
    common::view_signal(HALF_LIFE)
        .add()
        .build()
        .expect("valid schema")
}

/// One acknowledged write: what the oracle sums.
#[derive(Clone, Copy)]
struct Acked {
    item: EntityId,
    at: Timestamp,
    weight: f64,
}

/// Fails the test if any replica's retained log holds more than its bound.
fn assert_logs_bounded(cluster: &SimulatedCluster, when: &str) -> Result<()> {
    for r in REGIONS {
        let (len, bound) = cluster.node(r)?.retained_log_len()?;
        assert!(
            len <= bound && bound == 2 * BOUND,
            "{when}: region {}'s retained log holds {len} events, past its bound {bound}",
            r.0
        );
    }
    Ok(())
}

fn region_health(cluster: &SimulatedCluster, region: RegionId) -> Option<RegionHealth> {
    cluster.with_control(|c, now| c.health(now).region(region))
}

#[test]
fn two_writers_past_the_retained_bound_and_a_silent_region_converge_after_a_partition() -> Result<()>
{
    let cluster = SimulatedCluster::build(ClusterConfig {
        max_retained: BOUND,
        max_retained_own: BOUND,
        seed: 17,
        ..ClusterConfig::new(schema())
    })?;
    let view = cluster.config().schema.resolve("view")?;
    cluster.run_for(Duration::from_millis(200));
    let cuts = (
        cluster.inject_partition(RegionId(0), RegionId(1))?,
        cluster.inject_partition(RegionId(0), RegionId(2))?,
        cluster.inject_partition(RegionId(1), RegionId(2))?,
    );

    let mut acked: Vec<Acked> = Vec::new();
    let mut rng = common::SplitMix(17);
    for round in 0..WRITES / BATCH {
        for writer in [RegionId(0), RegionId(1)] {
            let node = cluster.node(writer)?;
            let at = cluster.now();
            let batch: Vec<Acked> = (0..BATCH)
                .map(|_| Acked {
                    item: EntityId(rng.below(ITEMS)),
                    at,
                    weight: 1.0 + rng.below(4) as f64,
                })
                .collect();
            let ops: Vec<ClientOp> = batch
                .iter()
                .map(|w| ClientOp::Signal {
                    signal: view,
                    entity: w.item,
                    weight: w.weight,
                    ts: Some(w.at),
                })
                .collect();
            let ack = cluster.submit(node.id(), &ops, WriteConcern::Local, None)?;
            assert!(matches!(ack, WriteAck::Applied { count, .. } if count == BATCH));
            acked.extend(batch);
            assert_logs_bounded(&cluster, &format!("after write round {round}"))?;
        }
        for _ in 0..20 {
            cluster.step();
            assert_logs_bounded(&cluster, &format!("during the partition, round {round}"))?;
        }
    }
    // Each writer's own events left its in-memory log while the others lacked them.
    for r in REGIONS {
        assert_eq!(
            region_health(&cluster, r),
            Some(RegionHealth::NeedsResync),
            "region {} lacks events its peers no longer hold in memory",
            r.0
        );
    }

    drop(cuts);
    let deadline = cluster.now().as_nanos() + Duration::from_secs(30).as_nanos() as i64;
    while !cluster.is_converged() {
        assert!(
            cluster.now().as_nanos() < deadline,
            "no convergence within 30 s of virtual time after the heal:\n{}",
            cluster.divergence_report()
        );
        cluster.step();
        assert_logs_bounded(&cluster, "during the catch-up")?;
    }
    cluster.run_for(Duration::from_millis(200));
    for r in REGIONS {
        assert_eq!(region_health(&cluster, r), Some(RegionHealth::Healthy));
    }

    // Every replica holds exactly the acknowledged writes: both writers' 6,000 events.
    let expected: VersionVector = {
        let mut vv = VersionVector::new();
        for r in [RegionId(0), RegionId(1)] {
            vv.advance(cluster.node(r)?.id(), WRITES as u64);
        }
        vv
    };
    for r in REGIONS {
        assert_eq!(
            cluster.version_vector(r, ShardId(0))?,
            expected,
            "region {}",
            r.0
        );
    }
    let stats = cluster.stats();
    assert!(
        stats.events_read_back as usize >= 2 * (WRITES - BOUND),
        "the events beyond the bound came from the disks: {stats:?}"
    );
    assert_eq!(stats.snapshots_installed, 0, "{stats:?}");

    // Bit-identical scores everywhere, equal to Σ w·2^(-Δ/h) over the acknowledged writes.
    let at = cluster.now();
    for item in (0..ITEMS).map(EntityId) {
        let scores: Vec<f64> = REGIONS
            .iter()
            .map(|r| cluster.node(*r)?.read_decay_score(item, "view", Some(at)))
            .collect::<Result<_>>()?;
        assert!(
            scores.iter().all(|s| *s == scores[0]),
            "item {}: {scores:?}",
            item.0
        );
        let mine = acked.iter().filter(|w| w.item == item);
        let oracle = common::decay_sum(mine.map(|w| (w.at, w.weight)), at, HALF_LIFE);
        common::assert_close(scores[0], oracle, &format!("item {}", item.0));
    }
    Ok(())
}
