//! Bulk writes that span shards: a batch refused on a later shard says how many events
//! the earlier shards took, and a batch whose later part fails admission writes nothing.

use super::*;

const T: TenantId = TenantId(1);

// `write_batch` submits one request per shard. When a later shard's part breaches a quota,
// the earlier parts stay applied, and the error must say so: `PartlyWritten` counts the
// events that landed, keeps the quota breach as its cause, and has the cause's kind, so a
// retry does not count them twice.
#[test]
fn write_batch_refused_by_a_quota_says_what_was_written() -> Result<()> {
    let c = SimulatedCluster::build(ClusterConfig {
        seed: 3,
        shards_per_region: 2,
        ..ClusterConfig::new(common::hourly_view_schema())
    })?;
    c.register_tenant(TenantConfig {
        max_entities: Some(10),
        ..TenantConfig::new(T, "ten entities")
    })?;
    let scope = Scope::tenant(T);
    // Entities grouped by the replica that serves them, in the order write_batch submits
    // (its parts are keyed by node id).
    let mut by_node: BTreeMap<NodeId, Vec<EntityId>> = Default::default();
    for e in 0..200 {
        let e = EntityId(e);
        by_node
            .entry(c.node_serving(scope, e)?)
            .or_default()
            .push(e);
    }
    let parts: Vec<Vec<EntityId>> = by_node.into_values().collect();
    assert_eq!(parts.len(), 2, "the tenant spans both shards");
    // The first part fits the quota; the second breaches it.
    let mut es: Vec<EntityId> = parts[0][..5].to_vec();
    es.extend_from_slice(&parts[1][..15]);
    let ws = vec![1.0; es.len()];
    match c.write_batch(scope, "view", &es, &ws, None) {
        Err(e @ TidalError::PartlyWritten { .. }) => {
            assert_eq!(e.kind(), tidaldb::ErrorKind::QuotaExceeded);
            let TidalError::PartlyWritten {
                written,
                total,
                cause,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*written, *total), (5, 20), "{e}");
            assert!(matches!(**cause, TidalError::QuotaExceeded(_)), "{e}");
        }
        other => panic!("expected PartlyWritten, got {other:?}"),
    }
    c.run_for(Duration::from_secs(1));
    for r in 0..3 {
        let held = c.total_signal_count_for_tenant(RegionId(r), T, "view")?;
        assert_eq!(held, 5, "region {r} holds {held} events; the error said 5");
    }
    Ok(())
}

// Every op of a batch passes admission's checks before anything is written: a weight the
// nodes refuse (|w| > 1e6, -0.0) or a timestamp too far ahead, on an entity of a later
// shard, must not leave the earlier shards' parts written.
#[test]
fn write_batch_refused_by_a_later_shard_writes_nothing() -> Result<()> {
    let c = SimulatedCluster::build(ClusterConfig {
        seed: 22,
        shards_per_region: 2,
        ..ClusterConfig::new(common::hourly_view_schema())
    })?;
    let router = ShardRouter::new(RoutingStrategy::Hash { num_shards: 2 })?;
    let first = (1..).map(EntityId).find(|e| router.route(*e) == ShardId(0));
    let second = (1..).map(EntityId).find(|e| router.route(*e) == ShardId(1));
    let (Some(first), Some(second)) = (first, second) else {
        panic!("both shards own some entity");
    };
    let es = [first, second];
    let future = c.now().saturating_add(Duration::from_secs(3600));
    let cases: [(&str, [f64; 2], [Timestamp; 2]); 3] = [
        ("weight 2e6", [1.0, 2e6], [c.now(); 2]),
        ("weight -0.0", [1.0, -0.0], [c.now(); 2]),
        ("a timestamp an hour ahead", [1.0, 1.0], [c.now(), future]),
    ];
    let mut partly_written = Vec::new();
    for (what, ws, ts) in cases {
        let before = default_vvs(&c);
        let r = c.write_batch(Scope::LEADER, "view", &es, &ws, Some(&ts));
        assert!(r.is_err(), "{what}: {r:?}");
        if default_vvs(&c) != before {
            partly_written.push(what);
        }
    }
    assert!(
        partly_written.is_empty(),
        "refused batches left shard 0's part written: {partly_written:?}"
    );
    Ok(())
}

/// Every default-tenant replica's version vector (`None` while down): what a refused
/// write must leave exactly as it was.
fn default_vvs(c: &SimulatedCluster) -> Vec<Option<VersionVector>> {
    let shards = c.config().shards_per_region;
    (0..3)
        .flat_map(|r| (0..shards).map(move |s| c.version_vector(RegionId(r), ShardId(s)).ok()))
        .collect()
}
