//! Promotion by the control plane on the simulator: a replica that went down is never
//! promoted, and pushes refused by a new term are re-sent at once.

use std::time::Duration;

use crate::common;
use tidaldb::sim::{ClusterConfig, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId};

fn schema() -> Schema {
    common::daily_view_schema()
}

/// A replica that went down after the leader must not be promoted: a candidate needs a
/// report more recent than the one that would declare it dead, not merely one within the
/// election timeout.
#[test]
fn the_control_plane_does_not_promote_a_replica_that_went_down() -> Result<()> {
    use tidaldb::control::Decision;
    let cluster = SimulatedCluster::build(ClusterConfig {
        seed: 9,
        ..ClusterConfig::new(schema())
    })?;
    cluster.run_for(Duration::from_millis(100));
    // Region 2 falls behind so that region 1 has the highest VV sum.
    let cut = (
        cluster.inject_partition(RegionId(0), RegionId(2))?,
        cluster.inject_partition(RegionId(1), RegionId(2))?,
    );
    for _ in 0..10 {
        cluster.write_signal("view", EntityId(1), 1.0)?;
    }
    cluster.run_for(Duration::from_millis(200));
    cluster.crash(RegionId(0), ShardId(0), false)?; // the leader
    cluster.run_for(Duration::from_millis(400));
    cluster.crash(RegionId(1), ShardId(0), false)?; // the best follower, 400 ms later
    cluster.run_for(Duration::from_millis(300));
    let decisions = cluster.control_plane().decisions().to_vec();
    drop(cut);
    let n1 = cluster.node_id(RegionId(1), ShardId(0))?;
    let promoted_down = decisions
        .iter()
        .any(|d| matches!(d, Decision::Promote { node, .. } if *node == n1));
    assert!(
        !promoted_down,
        "node {n1:?} was promoted although it had crashed: {decisions:?}"
    );
    Ok(())
}

/// When leadership moves, the old leader's pushes still in flight arrive in an older term
/// and are refused (`Fenced`). The sender re-sends them at once, once per term, rather than
/// waiting a repair round (`repair_after`), so a drain under load finishes within a
/// step timeout shorter than that round.
#[test]
fn pushes_refused_by_a_new_term_are_resent_without_waiting_for_repair() -> Result<()> {
    use tidaldb::sim::RollingUpgradeCoordinator;
    let cluster = SimulatedCluster::build(ClusterConfig {
        seed: 21,
        ..ClusterConfig::new(schema())
    })?;
    cluster.run_for(Duration::from_millis(300));
    let mut coordinator = RollingUpgradeCoordinator::new(&cluster);
    coordinator.step_timeout = Duration::from_millis(150);
    // Writes in flight on every link when the leader's host is drained.
    for i in 0..10 {
        for e in 0..50 {
            cluster.write_signal("view", EntityId(e), 1.0)?;
        }
        cluster.run_for(Duration::from_millis(2 + i % 3));
    }
    coordinator.drain(RegionId(0), ShardId(0))?;
    assert_ne!(
        cluster.leader_of(ShardId(0))?,
        cluster.node_id(RegionId(0), ShardId(0))?
    );
    for r in [RegionId(1), RegionId(2)] {
        let total: u64 = (0..50)
            .map(|e| common::all_time_count(&cluster, r, EntityId(e)).unwrap_or(0))
            .sum();
        assert_eq!(
            total, 500,
            "region {} holds every write of the old leader",
            r.0
        );
    }
    Ok(())
}
