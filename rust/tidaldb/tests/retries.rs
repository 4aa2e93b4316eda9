//! Scenarios on the simulator beyond the UAT: the seed-002 smoke test, idempotent retries
//! across a failover, session high-water marks, catch-up from a peer's disk when its
//! in-memory log has been trimmed, and repair across a one-way partition.

mod common;

use std::time::Duration;

use tidaldb::event::{ClientTag, IdempotencyKey, SessionId, SessionSeqNo};
use tidaldb::node::{WriteAck, WriteConcern};
use tidaldb::sim::{ClusterConfig, ShardCrash, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, Window};

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(24 * 3600))
        .windows(&[Window::OneHour])
        .add()
        .build()
        .expect("valid schema")
}

const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];

fn counts(cluster: &SimulatedCluster, item: EntityId) -> Result<Vec<u64>> {
    REGIONS
        .iter()
        .map(|r| {
            Ok(cluster
                .node(*r)?
                .read_window(item, "view", Window::AllTime)?
                .count)
        })
        .collect()
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
fn an_idempotency_key_sent_three_times_across_a_failover_counts_once() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig {
        seed: 11,
        ..ClusterConfig::new(schema())
    })?;
    let item = EntityId(1);
    let key = Some(ClientTag::Key(IdempotencyKey(0xfeed)));
    let first = cluster.leader()?.write_signal(
        "view",
        item,
        1.0,
        None,
        WriteConcern::Replicated(2),
        key,
    )?;
    let WriteAck::Applied {
        first: original, ..
    } = first
    else {
        panic!("the first send applies, got {first:?}")
    };

    // The leader dies; the retry goes to whoever leads next.
    ShardCrash::crash(ShardId(0), &cluster, true)?;
    while !cluster.has_leader() {
        cluster.run_for(Duration::from_millis(10));
    }
    let retry =
        cluster
            .leader()?
            .write_signal("view", item, 1.0, None, WriteConcern::Local, key)?;
    assert_eq!(retry, WriteAck::Duplicate { original });
    // And once more, on the other survivor.
    let other = REGIONS
        .iter()
        .map(|r| cluster.node(*r))
        .find(|n| {
            n.as_ref()
                .is_ok_and(|n| n.role().is_ok_and(|r| r != tidaldb::node::NodeRole::Leader))
        })
        .expect("a follower is up")?;
    let third = other.write_signal("view", item, 1.0, None, WriteConcern::Local, key)?;
    assert_eq!(third, WriteAck::Duplicate { original });

    cluster.restart(RegionId(0), ShardId(0))?;
    cluster.await_full_convergence(Duration::from_secs(5))?;
    assert_eq!(
        counts(&cluster, item)?,
        vec![1, 1, 1],
        "counted once everywhere"
    );
    Ok(())
}

#[test]
fn session_writes_at_or_below_the_high_water_mark_are_retries() -> Result<()> {
    let cluster = SimulatedCluster::build(ClusterConfig::new(schema()))?;
    let item = EntityId(2);
    let tag = |seq| {
        Some(ClientTag::Session {
            session: SessionId(5),
            seq: SessionSeqNo(seq),
        })
    };
    let leader = cluster.leader()?;
    for seq in 1..=3 {
        let ack = leader.write_signal("view", item, 1.0, None, WriteConcern::Local, tag(seq))?;
        assert!(matches!(ack, WriteAck::Applied { .. }));
    }
    cluster.await_full_convergence(Duration::from_secs(2))?;
    // A replica that never saw the writes directly knows the session's mark by replication.
    let west = cluster.node(RegionId(1))?;
    let retry = west.write_signal("view", item, 1.0, None, WriteConcern::Local, tag(2))?;
    assert!(matches!(retry, WriteAck::Duplicate { .. }), "{retry:?}");
    let next = west.write_signal("view", item, 1.0, None, WriteConcern::Local, tag(4))?;
    assert!(matches!(next, WriteAck::Applied { .. }));
    cluster.await_full_convergence(Duration::from_secs(2))?;
    assert_eq!(counts(&cluster, item)?, vec![4, 4, 4]);
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
    assert_eq!(counts(&cluster, item)?, vec![20, 20, 20]);
    Ok(())
}
