//! Lag per region and network partitions, seen through the client calls: the lag a cut-off
//! region reports and its clearing after the heal, and `NetworkPartition` handles that
//! stay active until healed and really cut the regions they name.

use super::*;

#[test]
fn lag_by_region_measures_a_region_cut_off_and_clears_after_the_heal() -> Result<()> {
    let c = cluster(61, 2);
    c.register_tenant(TenantConfig::new(B, "everywhere"))?;
    c.register_tenant(TenantConfig {
        required_regions: vec![RegionId(2)],
        ..TenantConfig::new(A, "region two only")
    })?;
    c.run_for(Duration::from_millis(200));
    let zero: Vec<(RegionId, u64)> = REGIONS.iter().map(|r| (*r, 0)).collect();
    assert_eq!(c.lag_by_region(TenantId::DEFAULT)?, zero);

    let p01 = c.inject_partition(RegionId(0), RegionId(1))?;
    let p12 = c.inject_partition(RegionId(1), RegionId(2))?;
    let es: Vec<EntityId> = (0..50).map(EntityId).collect();
    let ws = vec![1.0; es.len()];
    c.write_batch(Scope::LEADER, "view", &es, &ws, None)?;
    c.write_batch(Scope::tenant(B), "view", &es[..7], &ws[..7], None)?;
    c.write_batch(Scope::tenant(A), "view", &es[..3], &ws[..3], None)?;
    // Several heartbeats, so every replica has reported since the writes.
    c.run_for(c.config().timing.heartbeat_interval * 6);
    // Every event region 1 lacks, summed over its two shards; the others are current.
    let cut = |lag: u64| vec![(RegionId(0), 0), (RegionId(1), lag), (RegionId(2), 0)];
    assert_eq!(c.lag_by_region(TenantId::DEFAULT)?, cut(50));
    assert_eq!(c.lag_by_region(B)?, cut(7));
    assert_eq!(c.lag_by_region(A)?, zero, "A has no replica in region 1");

    p01.heal();
    drop(p12);
    c.await_full_convergence(Duration::from_secs(5))?;
    for t in [TenantId::DEFAULT, A, B] {
        assert_eq!(c.lag_by_region(t)?, zero, "tenant {t}");
    }
    Ok(())
}

#[test]
fn network_partition_is_active_until_healed() -> Result<()> {
    let c = cluster(71, 1);
    let p01 = c.inject_partition(RegionId(0), RegionId(1))?;
    let p12 = c.inject_one_way_partition(RegionId(1), RegionId(2))?;
    assert!(p01.is_active() && p12.is_active());
    // Healing through one handle leaves the other partition in place.
    p01.heal();
    assert!(p12.is_active());
    assert!(c.is_partitioned());
    drop(p12);
    assert!(!c.is_partitioned());

    // heal_all sweeps live handles too; dropping such a handle later heals nothing new.
    let swept = c.inject_partition(RegionId(0), RegionId(2))?;
    assert!(swept.is_active());
    c.heal_all_partitions();
    assert!(!swept.is_active());
    let fresh = c.inject_partition(RegionId(0), RegionId(2))?;
    drop(swept);
    assert!(
        fresh.is_active(),
        "dropping a swept handle healed a newer partition"
    );

    // The partitions really cut: with region 1 cut off from region 2 as well, region 2
    // hears nothing of a write in region 0, until `fresh` alone heals.
    let p12 = c.inject_partition(RegionId(1), RegionId(2))?;
    let e = EntityId(1);
    let acked = Acked(vec![(e, 1.0, c.now())]);
    let in2 = Scope::LEADER.in_region(Some(RegionId(2)));
    c.write_batch(Scope::LEADER, "view", &[e], &[1.0], None)?;
    c.run_for(Duration::from_millis(300));
    let in1 = read(&c, Scope::LEADER.in_region(Some(RegionId(1))), e)?;
    assert_close(in1, acked.score(e, c.now()), "region 1");
    assert_eq!(read(&c, in2, e)?, 0.0);
    fresh.heal();
    assert!(p12.is_active());
    c.run_for(Duration::from_millis(600));
    assert_close(
        read(&c, in2, e)?,
        acked.score(e, c.now()),
        "region 2 after the heal",
    );
    drop(p12);
    assert!(!c.is_partitioned());

    // A handle outlives its cluster: inactive once the cluster is gone.
    let last = c.inject_partition(RegionId(1), RegionId(2))?;
    drop(c);
    assert!(!last.is_active());
    Ok(())
}
