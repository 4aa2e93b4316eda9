//! Replication on the simulator: writes reach every region and read bit-identically there,
//! across a one-way partition through the third region, and after a partition in which
//! two writers passed the retained log's bound; a replica behind a peer's trimmed log is
//! caught up from that peer's disk, and ends durable under periodic sync.

mod common;

use std::time::Duration;

use tidaldb::sim::{ClusterConfig, SimDurability, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId};

fn schema() -> Schema {
    common::daily_view_schema()
}

const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];

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

#[test]
fn smoke_two_regions_ten_signals_converge_bit_for_bit() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig {
        regions: vec![RegionId(0), RegionId(1)],
        ..ClusterConfig::new(schema())
    })?;
    let item = EntityId(9);
    for _ in 0..10 {
        cluster.write_signal("view", item, 1.0)?;
    }
    cluster.await_full_convergence(Duration::from_secs(2))?;
    let east = cluster.read_decay_score(RegionId(0), item, "view")?;
    let west = cluster.read_decay_score(RegionId(1), item, "view")?;
    assert_eq!(east, west);
    assert!(cluster.follower_in(RegionId(1)).is_some());
    assert!(cluster.follower_in(RegionId(0)).is_none(), "region 0 leads");
    assert!(cluster.read_decay_score(RegionId(7), item, "view").is_err());
    Ok(())
}

#[test]
fn events_cross_a_one_way_partition_through_the_third_region() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig {
        seed: 4,
        ..ClusterConfig::new(schema())
    })?;
    let item = EntityId(4);
    let _cut = cluster.inject_one_way_partition(RegionId(0), RegionId(2))?;
    for _ in 0..20 {
        cluster.write_signal("view", item, 1.0)?;
    }
    // Region 2 cannot hear region 0, but region 1 forwards what 2 lacks.
    cluster.await_full_convergence(Duration::from_secs(5))?;
    assert_eq!(
        common::all_time_counts(&cluster, item, 3)?,
        vec![20, 20, 20]
    );
    Ok(())
}

/// Region 2 misses region 0's writes; region 0 then dies. Region 1 holds those writes but
/// has trimmed them from its bounded in-memory log, so it reads them back from its disk
/// for region 2, which applies them under its own writes.
#[test]
fn a_replica_behind_the_trimmed_log_is_caught_up_from_a_peers_disk() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig {
        max_retained: 64,
        seed: 3,
        ..ClusterConfig::new(schema())
    })?;
    let item = EntityId(3);
    let cut = (
        cluster.inject_partition(RegionId(0), RegionId(2))?,
        cluster.inject_partition(RegionId(1), RegionId(2))?,
    );
    for i in 0..500 {
        cluster.write_signal("view", EntityId(i % 7), 1.0)?;
        cluster.run_for(Duration::from_millis(2));
    }
    let south = cluster.node(RegionId(2))?;
    for _ in 0..10 {
        south.signal("view", item, 2.0)?;
    }
    cluster.run_for(Duration::from_secs(1));
    cluster.crash(RegionId(0), ShardId(0), false)?;
    drop(cut);
    cluster.reconcile_all();
    cluster.await_full_convergence(Duration::from_secs(10))?;
    let stats = cluster.stats();
    assert!(
        stats.events_read_back >= 1 && stats.snapshots_installed == 0,
        "region 1 trimmed region 0's events, so region 2 must have had them from its disk: \
         {stats:?}"
    );
    let live = [RegionId(1), RegionId(2)];
    let scores: Vec<f64> = live
        .iter()
        .map(|r| cluster.read_decay_score(*r, item, "view"))
        .collect::<Result<_>>()?;
    assert_eq!(scores[0], scores[1]);
    for r in live {
        assert_eq!(cluster.applied_seqno(r)?, 510);
    }

    cluster.restart(RegionId(0), ShardId(0))?;
    cluster.await_full_convergence(Duration::from_secs(10))?;
    for r in REGIONS {
        assert_eq!(cluster.applied_seqno(r)?, 510);
        assert_eq!(
            cluster.read_decay_score(r, item, "view")?,
            cluster.read_decay_score(RegionId(1), item, "view")?
        );
    }
    Ok(())
}
