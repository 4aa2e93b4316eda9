//! Regression tests for replication bugs found in review: each once failed.

mod common;

use std::time::Duration;

use tidaldb::event::{ClientTag, IdempotencyKey};
use tidaldb::node::{WriteAck, WriteConcern};
use tidaldb::sim::{ClusterConfig, SimDurability, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, TidalError, Window};

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(24 * 3600))
        .windows(&[Window::OneHour])
        .add()
        .build()
        .expect("valid schema")
}

fn count(cluster: &SimulatedCluster, r: RegionId, item: EntityId) -> Result<u64> {
    Ok(cluster
        .node(r)?
        .read_window(item, "view", Window::AllTime)?
        .count)
}

/// A retry of a replicated write is acknowledged only as the original would have been:
/// while no replica holds the original, the retry times out too; once one does, it is
/// acknowledged as a duplicate, and then no crash of the writer can lose it.
#[test]
fn a_replicated_retry_is_acknowledged_only_once_the_original_is_replicated() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig {
        seed: 1,
        durability: SimDurability::Every(Duration::from_secs(60)),
        write_timeout: Duration::from_millis(300),
        ..ClusterConfig::new(schema())
    })?;
    cluster.run_for(Duration::from_millis(100));
    let item = EntityId(42);
    let key = Some(ClientTag::Key(IdempotencyKey(7)));
    let cut = (
        cluster.inject_partition(RegionId(0), RegionId(1))?,
        cluster.inject_partition(RegionId(0), RegionId(2))?,
    );
    let n0 = cluster.node(RegionId(0))?;
    let first = n0.write_signal("view", item, 1.0, None, WriteConcern::Replicated(1), key);
    assert!(matches!(first, Err(TidalError::Timeout(_))), "{first:?}");
    let retry = n0.write_signal("view", item, 1.0, None, WriteConcern::Replicated(1), key);
    assert!(
        matches!(retry, Err(TidalError::Timeout(_))),
        "no replica holds it yet: {retry:?}"
    );

    drop(cut);
    // Disks sync once a minute: the original leaves node 0 after its sync, and is
    // acknowledged after a peer's.
    cluster.run_for(Duration::from_secs(125));
    let retry = n0.write_signal("view", item, 1.0, None, WriteConcern::Replicated(1), key)?;
    assert!(matches!(retry, WriteAck::Duplicate { .. }), "{retry:?}");
    let lost = cluster.crash(RegionId(0), ShardId(0), true)?;
    cluster.restart(RegionId(0), ShardId(0))?;
    cluster.await_full_convergence(Duration::from_secs(5))?;
    let counts: Vec<u64> = [0, 1, 2]
        .iter()
        .map(|r| count(&cluster, RegionId(*r), item))
        .collect::<Result<_>>()?;
    assert_eq!(
        counts,
        vec![1, 1, 1],
        "the acknowledged retry's original survives the crash ({lost} events lost)"
    );
    Ok(())
}

/// Two active writers, both past `max_retained` during a partition, converge after it.
#[test]
fn two_writers_past_the_log_bound_still_converge_after_a_partition() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig {
        regions: vec![RegionId(0), RegionId(1)],
        max_retained: 16,
        seed: 5,
        ..ClusterConfig::new(schema())
    })?;
    cluster.run_for(Duration::from_millis(100));
    let cut = cluster.inject_partition(RegionId(0), RegionId(1))?;
    let a = cluster.node(RegionId(0))?;
    let b = cluster.node(RegionId(1))?;
    for i in 0..50 {
        a.signal("view", EntityId(i % 5), 1.0)?;
        b.signal("view", EntityId(i % 5), 1.0)?;
        cluster.run_for(Duration::from_millis(5));
    }
    cluster.run_for(Duration::from_secs(1));
    drop(cut);
    cluster.reconcile_all();
    // The error names each replica's version vector if they never converge.
    cluster.await_full_convergence(Duration::from_secs(20))?;
    Ok(())
}

/// Under periodic sync, a replica caught up from a peer's disk ends with everything
/// durable: `durable` reaches its version vector and the cluster converges.
#[test]
fn a_catch_up_from_a_peers_disk_under_periodic_sync_ends_durable() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig {
        max_retained: 64,
        seed: 3,
        durability: SimDurability::Every(Duration::from_millis(20)),
        ..ClusterConfig::new(schema())
    })?;
    let cut = (
        cluster.inject_partition(RegionId(0), RegionId(2))?,
        cluster.inject_partition(RegionId(1), RegionId(2))?,
    );
    for i in 0..300 {
        cluster.write_signal("view", EntityId(i % 7), 1.0)?;
        cluster.run_for(Duration::from_millis(2));
    }
    cluster.run_for(Duration::from_secs(1));
    // With the leader down, region 1 must supply the leader's events, which have left its
    // 64-event in-memory log: it reads them back from its disk.
    cluster.crash(RegionId(0), ShardId(0), false)?;
    drop(cut);
    cluster.await_full_convergence(Duration::from_secs(10))?;
    assert!(
        cluster.stats().events_read_back >= 1,
        "the path under test was taken"
    );
    let south = cluster.node(RegionId(2))?;
    assert_eq!(south.durable()?, south.version_vector()?);
    Ok(())
}

/// A replica that went down after the leader must not be promoted: candidates once only
/// needed a report within the election timeout, the bound that declares the leader dead.
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

/// Found by the drain benchmark: when leadership moves, the old leader's pushes still in
/// flight arrive in an older term and are refused (`Fenced`). The sender used to wait for
/// `repair_after` (200 ms) before shipping them again, so draining a leader under load
/// took a repair round; it now re-sends at once, once per term.
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
            .map(|e| count(&cluster, r, EntityId(e)).unwrap_or(0))
            .sum();
        assert_eq!(
            total, 500,
            "region {} holds every write of the old leader",
            r.0
        );
    }
    Ok(())
}
