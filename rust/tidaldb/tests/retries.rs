//! Retries are applied once: an idempotency key sent three times across a failover, session
//! writes at or below their high-water mark, and a replicated write retried before and
//! after its original reached a peer.

mod common;

use std::time::Duration;

use tidaldb::event::{ClientTag, IdempotencyKey, SessionId, SessionSeqNo};
use tidaldb::node::{WriteAck, WriteConcern};
use tidaldb::sim::{ClusterConfig, ShardCrash, SimDurability, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, TidalError};

fn schema() -> Schema {
    common::daily_view_schema()
}

const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];

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
        common::all_time_counts(&cluster, item, 3)?,
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
    assert_eq!(common::all_time_counts(&cluster, item, 3)?, vec![4, 4, 4]);
    Ok(())
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
        .map(|r| common::all_time_count(&cluster, RegionId(*r), item))
        .collect::<Result<_>>()?;
    assert_eq!(
        counts,
        vec![1, 1, 1],
        "the acknowledged retry's original survives the crash ({lost} events lost)"
    );
    Ok(())
}
