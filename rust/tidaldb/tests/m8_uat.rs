//! The M8 acceptance scenarios, steps 1–5 (seed 001), on the deterministic simulator.
//!
//! Strengthened over the seed: scores are compared bit for bit (`==`) across regions and
//! against the analytical formula to 1e-9; the degradation flag and the unreachable replica
//! are asserted; `Replicated(1)` writes acknowledged just before a crash are checked on the
//! promoted leader; reconciliation run twice changes nothing; the migration counts every
//! read and write that failed during dual write (none may), and checks the target's
//! count and score exactly.
//!
//! Every run is reproducible: the cluster seed is fixed per test.

mod common;

use std::time::Duration;

use common::assert_close;

use tidaldb::node::{WriteAck, WriteConcern};
use tidaldb::sim::{ClusterConfig, ShardCrash, SimDurability, SimulatedCluster};
use tidaldb::{EntityId, ReplicaAddr, Retrieve, Schema, ShardId, Timestamp, Window};
use tidaldb::{RegionId, Result};

const VIEW_HALF_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);
const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];

fn m8_schema() -> Schema {
    let views = common::view_signal(VIEW_HALF_LIFE)
        .windows(&[Window::OneHour, Window::TwentyFourHours])
        .add();
    common::daily_like(views)
        .add()
        .build()
        .expect("the M8 schema is valid")
}

fn three_region_config(seed: u64) -> ClusterConfig {
    ClusterConfig {
        seed,
        ..ClusterConfig::new(m8_schema())
    }
}

/// Scores of `item` in every region, read at the same virtual instant.
fn scores(cluster: &SimulatedCluster, item: EntityId) -> Result<Vec<f64>> {
    REGIONS
        .iter()
        .map(|r| cluster.read_decay_score(*r, item, "view"))
        .collect()
}

/// Writes `n` unit views through the leader, one virtual millisecond apart; returns their
/// timestamps.
fn write_views(cluster: &SimulatedCluster, item: EntityId, n: usize) -> Result<Vec<Timestamp>> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        times.push(cluster.now());
        cluster.write_signal("view", item, 1.0)?;
        cluster.run_for(Duration::from_millis(1));
    }
    Ok(times)
}

#[test]
fn uat_step1_cross_region_replication() -> Result<()> {
    let cluster = SimulatedCluster::build(three_region_config(1))?;
    let item = EntityId(1);
    let times = write_views(&cluster, item, 25)?;

    let took = cluster.await_full_convergence(Duration::from_secs(2))?;
    println!(
        "step 1: converged {took:?} (virtual) after the last write, default 20 ms ± 5 ms links"
    );
    assert!(
        took < Duration::from_millis(500),
        "convergence took {took:?}, far more than a few round trips"
    );

    let s = scores(&cluster, item)?;
    assert_eq!(s[0], s[1], "eu-west differs from us-east");
    assert_eq!(s[0], s[2], "ap-south differs from us-east");
    assert_close(s[0], analytical(&times, cluster.now()), "us-east score");

    let cp = cluster.control_plane();
    for region in [RegionId(1), RegionId(2)] {
        assert_eq!(
            cp.lag_seqno(region, ShardId(0)),
            0,
            "region {} lags",
            region.0
        );
    }
    for region in REGIONS {
        assert_eq!(cluster.applied_seqno(region)?, 25);
    }
    Ok(())
}

/// Crashes the leader and steps virtual time until a new one is promoted; returns the
/// time that took.
fn await_failover(cluster: &SimulatedCluster, limit: Duration) -> Duration {
    let crashed_at = cluster.now();
    while !cluster.has_leader() {
        let waited =
            Duration::from_nanos((cluster.now().as_nanos() - crashed_at.as_nanos()) as u64);
        assert!(
            waited <= limit,
            "no new leader within {limit:?} of virtual time"
        );
        cluster.run_for(Duration::from_millis(10));
    }
    Duration::from_nanos((cluster.now().as_nanos() - crashed_at.as_nanos()) as u64)
}

#[test]
fn uat_step2_shard_crash_and_failover() -> Result<()> {
    let cluster = SimulatedCluster::build(three_region_config(2))?;
    let item = EntityId(2);
    let times = write_views(&cluster, item, 100)?;
    cluster.await_full_convergence(Duration::from_secs(2))?;
    let pre_crash = cluster.applied_seqno(RegionId(1))?;
    assert_eq!(pre_crash, 100);

    let crash = ShardCrash::crash(ShardId(0), &cluster, false)?;
    let took = await_failover(&cluster, Duration::from_secs(10));
    println!("step 2: new leader after {took:?} (virtual)");

    let leader = cluster.leader()?;
    assert_ne!(leader.id(), crash.node, "the crashed node cannot lead");
    assert!(leader.term()? >= 2, "promotion bumps the term");
    assert!(leader.applied_seqno()? >= pre_crash);
    let score = leader.read_decay_score(item, "view", None)?;
    assert_close(
        score,
        analytical(&times, cluster.now()),
        "promoted leader's score",
    );

    // The old leader restarts, rejoins as a follower in the new term, and catches up.
    crash.restart()?;
    cluster.write_signal("view", item, 1.0)?;
    cluster.await_full_convergence(Duration::from_secs(5))?;
    let old = cluster.node(RegionId(0))?;
    assert_eq!(old.role()?, tidaldb::node::NodeRole::Follower);
    assert_eq!(old.term()?, leader.term()?);
    assert_eq!(old.applied_seqno()?, 101);
    Ok(())
}

#[test]
fn uat_step2_replicated_writes_survive_the_leader_losing_its_tail() -> Result<()> {
    let config = ClusterConfig {
        write_concern: WriteConcern::Replicated(1),
        durability: SimDurability::Every(Duration::from_millis(20)),
        ..three_region_config(3)
    };
    let cluster = SimulatedCluster::build(config)?;
    let item = EntityId(2);
    let old_leader = cluster.leader()?.id();
    let mut last_acked = 0;
    for _ in 0..100 {
        // Each write returns once one other replica holds it durably: no time passes
        // between writes beyond what the acknowledgements take.
        match cluster.write_signal("view", item, 1.0)? {
            WriteAck::Applied { first, .. } => last_acked = first.seq,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Crash at once, losing whatever the leader had not synced.
    let crash = ShardCrash::crash(ShardId(0), &cluster, true)?;
    await_failover(&cluster, Duration::from_secs(10));
    let leader = cluster.leader()?;
    let held = cluster
        .version_vector(leader.region(), ShardId(0))?
        .get(old_leader);
    assert_eq!(
        held, last_acked,
        "every acknowledged Replicated(1) write is on the promoted leader (lost {} on the crashed disk)",
        crash.lost_events
    );
    Ok(())
}

#[test]
fn uat_step3_degraded_query_during_partition() -> Result<()> {
    let cluster = SimulatedCluster::build(three_region_config(4))?;
    let item = EntityId(3);
    let mut times = write_views(&cluster, item, 10)?;
    cluster.await_full_convergence(Duration::from_secs(1))?;

    let _partition = cluster.inject_partition(RegionId(0), RegionId(2))?;
    times.extend(write_views(&cluster, item, 5)?);
    // Long enough for us-east to notice that ap-south went silent.
    cluster.run_for(cluster.config().timing.peer_timeout * 2);

    let q = Retrieve::builder()
        .candidates([item])
        .rank_by(&[("view", 1.0)])
        .build()?;
    let results = cluster.leader()?.retrieve(&q)?;
    assert_eq!(
        results.items.len(),
        1,
        "the query succeeds with 2 of 3 regions"
    );
    assert_close(
        results.items[0].score,
        analytical(&times, cluster.now()),
        "degraded answer",
    );
    assert!(results.stats.degraded, "the answer must say it is degraded");
    assert_eq!(
        results.stats.replicas_unreachable,
        vec![ReplicaAddr {
            region: RegionId(2),
            shard: ShardId(0)
        }],
        "the partitioned replica is named"
    );
    assert_eq!(results.stats.shards_reached, vec![ShardId(0)]);

    // eu-west hears both sides: its answer is complete and says so.
    let full = cluster.retrieve(RegionId(1), &q)?;
    assert!(!full.stats.degraded, "{:?}", full.stats);
    Ok(())
}

#[test]
fn uat_step4_partition_heal_reconciliation() -> Result<()> {
    let cluster = SimulatedCluster::build(three_region_config(5))?;
    let item = EntityId(4);
    let user = EntityId(100);

    // ap-south is cut off from both others: with one pair cut, eu-west would relay
    // between the sides while the partition is still in place.
    let cuts = [
        cluster.inject_partition(RegionId(0), RegionId(2))?,
        cluster.inject_partition(RegionId(1), RegionId(2))?,
    ];
    let mut times = write_views(&cluster, item, 50)?;
    let south = cluster.node(RegionId(2))?;
    for _ in 0..30 {
        times.push(cluster.now());
        south.signal("view", item, 1.0)?;
        cluster.run_for(Duration::from_millis(1));
    }
    south.hide_item(user, item, None)?;
    // Far beyond any relay or repair: the sides are still apart, so what follows is a
    // reconciliation.
    cluster.run_for(Duration::from_secs(1));
    for (region, held) in [(0, 50), (1, 50), (2, 30)] {
        let node = cluster.node(RegionId(region))?;
        assert_eq!(node.read_window(item, "view", Window::OneHour)?.count, held);
    }
    assert!(!cluster.node(RegionId(0))?.is_hidden(user, item)?);

    drop(cuts);
    cluster.reconcile_all();
    let took = cluster.await_full_convergence(Duration::from_secs(5))?;
    println!("step 4: reconciled in {took:?} (virtual)");

    let now = cluster.now();
    let s = scores(&cluster, item)?;
    assert_eq!(s[0], s[1], "eu-west differs from us-east");
    assert_eq!(s[0], s[2], "ap-south differs from us-east");
    assert_close(s[0], analytical(&times, now), "reconciled score");
    let q = Retrieve::builder()
        .for_user(user)
        .candidates([item])
        .rank_by(&[("view", 1.0)])
        .build()?;
    for region in REGIONS {
        let node = cluster.node(region)?;
        assert_eq!(
            node.read_window(item, "view", Window::OneHour)?.count,
            80,
            "no double counting in region {}",
            region.0
        );
        assert!(node.is_hidden(user, item)?);
        assert!(
            cluster.retrieve(region, &q)?.items.is_empty(),
            "the hide from ap-south suppresses the item in region {}",
            region.0
        );
    }

    // A second reconciliation changes nothing.
    let before: Vec<_> = REGIONS
        .iter()
        .map(|r| cluster.version_vector(*r, ShardId(0)))
        .collect::<Result<_>>()?;
    cluster.reconcile_all();
    cluster.run_for(Duration::from_secs(1));
    let after: Vec<_> = REGIONS
        .iter()
        .map(|r| cluster.version_vector(*r, ShardId(0)))
        .collect::<Result<_>>()?;
    assert_eq!(before, after);
    for region in REGIONS {
        let node = cluster.node(region)?;
        assert_eq!(node.read_decay_score(item, "view", Some(now))?, s[0]);
        assert_eq!(node.read_window(item, "view", Window::OneHour)?.count, 80);
    }
    Ok(())
}

/// Step 5: tenant 42 moves from region 0 to region 2 with zero downtime. Every write and
/// every read in the dual-write window succeeds; afterwards the new region holds all 150
/// signals and the old region none.
#[test]
fn uat_step5_tenant_migration() -> Result<()> {
    use tidaldb::control::MigrationState;
    use tidaldb::tenancy::{TenantConfig, TenantId};
    let cluster = SimulatedCluster::build(three_region_config(5))?;
    let tenant = TenantId(42);
    let item = EntityId::new(5);
    cluster.register_tenant(TenantConfig {
        required_regions: vec![RegionId(0)],
        ..TenantConfig::new(tenant, "migrating-tenant")
    })?;
    let mut times = Vec::new();
    let mut failures = 0;
    let write = |times: &mut Vec<Timestamp>, failures: &mut usize| {
        cluster.run_for(Duration::from_millis(1));
        let now = cluster.now();
        match cluster.signal_for_tenant(tenant, "view", item, 1.0, None) {
            Ok(_) => times.push(now),
            Err(_) => *failures += 1,
        }
        if cluster.tenant_score(tenant, item, "view").is_err() {
            *failures += 1;
        }
    };
    for _ in 0..100 {
        write(&mut times, &mut failures);
    }
    cluster.await_full_convergence(Duration::from_secs(1))?;
    let migration = cluster.begin_tenant_migration(tenant, ShardId(0), ShardId(0), RegionId(2))?;
    migration.prepare_target()?;
    migration.enter_dual_write()?;
    for _ in 0..50 {
        write(&mut times, &mut failures);
    }
    cluster.run_for(Duration::from_millis(200));
    migration.finalize()?;
    assert_eq!(failures, 0, "reads and writes failed during the migration");
    assert_eq!(times.len(), 150);
    assert_eq!(
        cluster.total_signal_count_for_tenant(RegionId(2), tenant, "view")?,
        150
    );
    let score_new = cluster.read_score_for_tenant(RegionId(2), tenant, item, "view")?;
    assert_close(
        score_new,
        analytical(&times, cluster.now()),
        "the new region",
    );
    migration.gc_source(Duration::ZERO)?;
    assert_eq!(migration.state()?, MigrationState::Complete);
    assert_eq!(
        cluster.total_signal_count_for_tenant(RegionId(0), tenant, "view")?,
        0
    );
    assert!(
        cluster
            .read_score_for_tenant(RegionId(0), tenant, item, "view")
            .is_err()
    );
    Ok(())
}

/// The analytical score of unit views written at `times`, read at `at`.
fn analytical(times: &[Timestamp], at: Timestamp) -> f64 {
    common::unit_decay_sum(times, at, VIEW_HALF_LIFE)
}
