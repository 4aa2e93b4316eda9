//! Routing of client calls, as Python's `tidaldb.Cluster` and `tidaldb.Tenant` make them:
//! scoped routing, bulk writes that are refused whole or say what they wrote, scoped
//! reads, bulk scores, merged tenant queries, lag per region; and
//! `NetworkPartition::is_active`.
//!
//! Oracles are independent of the code under test: an analytical decay sum
//! `Σ w·2^(-(at - t_i)/h)` over the acknowledged writes, a `ShardRouter` built here for
//! shard placement, and counts of acknowledged writes. Every cluster has a fixed seed.

mod common;
#[path = "routing/partitions_and_lag.rs"]
mod partitions_and_lag;
#[path = "routing/quota_refusals.rs"]
mod quota_refusals;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{SplitMix, assert_close};

use tidaldb::node::{RoutingStrategy, ShardRouter};
use tidaldb::sim::{ClusterConfig, Scope, SimulatedCluster};
use tidaldb::tenancy::{TenantConfig, TenantId};
use tidaldb::{
    EntityId, NodeId, RegionId, Result, Retrieve, ShardId, TidalError, Timestamp, VersionVector,
};

/// The half-life of `common::hourly_view_schema`'s "view".
const HALF_LIFE: Duration = Duration::from_secs(3600);
const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];
const A: TenantId = TenantId(1);
const B: TenantId = TenantId(2);

fn cluster(seed: u64, shards: u16) -> SimulatedCluster {
    SimulatedCluster::build(ClusterConfig {
        seed,
        shards_per_region: shards,
        ..ClusterConfig::new(common::hourly_view_schema())
    })
    .expect("cluster builds")
}

/// The acknowledged writes of one test: the oracle every score is checked against.
#[derive(Default)]
struct Acked(Vec<(EntityId, f64, Timestamp)>);

impl Acked {
    /// `Σ w·2^(-(at - t)/h)` over the acknowledged writes to `entity`.
    fn score(&self, entity: EntityId, at: Timestamp) -> f64 {
        let h = HALF_LIFE.as_nanos() as f64;
        self.0
            .iter()
            .filter(|(e, ..)| *e == entity)
            .map(|(_, w, t)| w * (-((at.as_nanos() - t.as_nanos()) as f64) / h).exp2())
            .sum()
    }

    fn entities(&self) -> Vec<EntityId> {
        let mut es: Vec<EntityId> = self.0.iter().map(|(e, ..)| *e).collect();
        es.sort_unstable();
        es.dedup();
        es
    }
}

/// A random batch of `n` writes over `distinct` entities (so some repeat within the
/// batch), weights in [0.5, 2.5), explicit timestamps up to half an hour before now.
fn random_batch(
    rng: &mut SplitMix,
    now: Timestamp,
    n: usize,
    distinct: u64,
) -> (Vec<EntityId>, Vec<f64>, Vec<Timestamp>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        out.0.push(EntityId(1 + rng.below(distinct) * 7919));
        out.1.push(0.5 + rng.below(2000) as f64 / 1000.0);
        let back = rng.below(1_800_000_000_000) as i64;
        out.2
            .push(Timestamp::from_nanos(now.as_nanos() - back).unwrap());
    }
    out
}

/// Every default-tenant replica's version vector (`None` while down), and those of the
/// given tenants' replicas: what a refused write must leave exactly as it was.
fn snapshot(c: &SimulatedCluster, tenants: &[TenantId]) -> Vec<Option<VersionVector>> {
    let shards = c.config().shards_per_region;
    let mut out: Vec<Option<VersionVector>> = REGIONS
        .iter()
        .flat_map(|r| (0..shards).map(move |s| c.version_vector(*r, ShardId(s)).ok()))
        .collect();
    for t in tenants {
        for (n, _) in c.tenant_replicas(*t) {
            out.push(c.handle(n).version_vector().ok());
        }
    }
    out
}

fn view(c: &SimulatedCluster) -> tidaldb::schema::SignalIdx {
    c.config()
        .schema
        .resolve("view")
        .expect("view is in the schema")
}

/// The decayed "view" score of `entity` now, read where `scope` routes it.
fn read(c: &SimulatedCluster, scope: Scope, entity: EntityId) -> Result<f64> {
    let v = view(c);
    c.read_scoped(scope, entity, |n, now| {
        n.ledger().decay_score(v, entity, now)
    })
}

fn is_invalid_weights(r: &Result<usize>) -> bool {
    matches!(
        r,
        Err(TidalError::InvalidArgument {
            name: "weights",
            ..
        })
    )
}

#[test]
fn write_batch_lands_every_event_on_its_router_shard() -> Result<()> {
    for (seed, shards) in [(11, 2u16), (12, 3)] {
        let c = cluster(seed, shards);
        let router = ShardRouter::new(RoutingStrategy::Hash { num_shards: shards })?;
        let mut rng = SplitMix(seed);
        let mut acked = Acked::default();
        // Explicit timestamps: 300 writes over 120 entities.
        let (es, ws, ts) = random_batch(&mut rng, c.now(), 300, 120);
        let n = c.write_batch(Scope::LEADER, "view", &es, &ws, Some(&ts))?;
        assert_eq!(n, 300);
        acked.0.extend((0..n).map(|i| (es[i], ws[i], ts[i])));
        // Without timestamps: stamped with virtual now (a local write takes no time).
        c.run_for(Duration::from_millis(7));
        let stamped = c.now();
        let (es2, ws2, _) = random_batch(&mut rng, stamped, 200, 150);
        assert_eq!(c.write_batch(Scope::LEADER, "view", &es2, &ws2, None)?, 200);
        acked.0.extend((0..200).map(|i| (es2[i], ws2[i], stamped)));

        c.await_full_convergence(Duration::from_secs(5))?;
        let now = c.now();
        let mut per_shard = vec![0u64; usize::from(shards)];
        for (e, ..) in &acked.0 {
            per_shard[usize::from(router.route(*e).0)] += 1;
        }
        assert!(per_shard.iter().all(|k| *k > 0), "{per_shard:?}");
        for r in REGIONS {
            assert_eq!(
                c.total_signal_count_for_tenant(r, TenantId::DEFAULT, "view")?,
                500,
                "region {} (seed {seed})",
                r.0
            );
            for s in 0..shards {
                let held = c.version_vector(r, ShardId(s))?.sum();
                assert_eq!(held, per_shard[usize::from(s)], "region {} shard {s}", r.0);
            }
        }
        for e in acked.entities() {
            let home = router.route(e);
            let expected = acked.score(e, now);
            for r in REGIONS {
                for s in 0..shards {
                    let node = c.handle(c.node_id(r, ShardId(s))?);
                    let score = node.read_decay_score(e, "view", None)?;
                    if ShardId(s) == home {
                        assert_close(score, expected, &format!("entity {e} in region {}", r.0));
                    } else {
                        assert_eq!(score, 0.0, "entity {e} leaked onto shard {s}");
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn write_batch_refuses_bad_input_and_writes_nothing_anywhere() -> Result<()> {
    let c = cluster(21, 2);
    let router = ShardRouter::new(RoutingStrategy::Hash { num_shards: 2 })?;
    // Entities on both shards, shard 0's first, so a refusal after shard 0's part was
    // sent would show.
    let (mut on0, mut on1): (Vec<EntityId>, Vec<EntityId>) = (1..=40)
        .map(EntityId)
        .partition(|e| router.route(*e) == ShardId(0));
    on0.truncate(5);
    on1.truncate(5);
    let es: Vec<EntityId> = on0.iter().chain(&on1).copied().collect();
    let ws = vec![1.0; es.len()];
    let ts = vec![c.now(); es.len()];
    let before = snapshot(&c, &[]);

    let r = c.write_batch(Scope::LEADER, "view", &es, &ws[1..], None);
    assert!(is_invalid_weights(&r), "short weights: {r:?}");
    let r = c.write_batch(Scope::LEADER, "view", &es, &ws, Some(&ts[1..]));
    assert!(is_invalid_weights(&r), "short timestamps: {r:?}");
    for (i, bad) in [(0, f64::NAN), (4, f64::INFINITY), (9, f64::NEG_INFINITY)] {
        let mut w = ws.clone();
        w[i] = bad;
        match c.write_batch(Scope::LEADER, "view", &es, &w, Some(&ts)) {
            Err(TidalError::InvalidArgument {
                name: "weights",
                reason,
            }) => assert!(reason.contains(&format!("element {i}")), "{reason}"),
            other => panic!("weight {bad} at {i}: {other:?}"),
        }
    }
    assert!(matches!(
        c.write_batch(Scope::LEADER, "nope", &es, &ws, None),
        Err(TidalError::UnknownSignal { .. })
    ));
    assert_eq!(snapshot(&c, &[]), before, "a refused batch wrote something");
    assert_eq!(c.write_batch(Scope::LEADER, "view", &[], &[], None)?, 0);

    // Shard 1's leader host goes down: the batch is refused before shard 0 sees any of it,
    // whether routed to leaders or to region 0.
    let old_leader = c.leader_of(ShardId(1))?;
    c.crash(RegionId(0), ShardId(1), false)?;
    let before = snapshot(&c, &[]);
    for scope in [Scope::LEADER, Scope::LEADER.in_region(Some(RegionId(0)))] {
        let r = c.write_batch(scope, "view", &es, &ws, None);
        assert!(
            matches!(r, Err(TidalError::Unavailable(_))),
            "{scope:?}: {r:?}"
        );
    }
    assert_eq!(snapshot(&c, &[]), before, "shard 0's part was written");
    assert_eq!(c.version_vector(RegionId(0), ShardId(0))?.sum(), 0);
    // Region 1's replicas are up and take the batch.
    let in1 = Scope::LEADER.in_region(Some(RegionId(1)));
    assert_eq!(c.write_batch(in1, "view", &es, &ws, None)?, 10);
    assert_eq!(c.version_vector(RegionId(1), ShardId(0))?.sum(), 5);
    assert_eq!(c.version_vector(RegionId(1), ShardId(1))?.sum(), 5);
    // Once the control plane promotes a new leader, region None routes to it.
    c.run_for(Duration::from_secs(1));
    let new_leader = c.node_serving(Scope::LEADER, on1[0])?;
    assert_ne!(new_leader, old_leader);
    assert_eq!(new_leader, c.leader_of(ShardId(1))?);
    assert_eq!(c.write_batch(Scope::LEADER, "view", &es, &ws, None)?, 10);
    Ok(())
}

#[test]
fn scoped_reads_answer_from_the_region_asked_or_the_leader() -> Result<()> {
    let c = cluster(31, 1);
    let (e, f) = (EntityId(5), EntityId(6));
    let leader = c.leader_of(ShardId(0))?;
    assert_eq!(c.node_serving(Scope::LEADER, e)?, leader);
    for r in REGIONS {
        let scope = Scope::LEADER.in_region(Some(r));
        assert_eq!(c.node_serving(scope, e)?, c.node_id(r, ShardId(0))?);
        assert_eq!(
            c.read_scoped(scope, e, |n, _| Ok(n.id()))?,
            c.node_id(r, ShardId(0))?
        );
    }
    assert!(matches!(
        c.node_serving(Scope::LEADER.in_region(Some(RegionId(9))), e),
        Err(TidalError::NotFound(_))
    ));

    // Region 1 is cut off from both others, so nothing reaches it by relay either.
    let p01 = c.inject_partition(RegionId(0), RegionId(1))?;
    let p12 = c.inject_partition(RegionId(1), RegionId(2))?;
    let mut acked = Acked::default();
    let t = c.now();
    let in0 = Scope::LEADER.in_region(Some(RegionId(0)));
    let in1 = Scope::LEADER.in_region(Some(RegionId(1)));
    let in2 = Scope::LEADER.in_region(Some(RegionId(2)));
    c.write_batch(in0, "view", &[e, e], &[1.0, 2.0], Some(&[t, t]))?;
    acked.0.extend([(e, 1.0, t), (e, 2.0, t)]);
    c.write_batch(in1, "view", &[f], &[4.0], Some(&[t]))?;
    acked.0.push((f, 4.0, t));
    c.run_for(Duration::from_millis(300));
    let now = c.now();
    assert_close(read(&c, in0, e)?, acked.score(e, now), "e in region 0");
    assert_close(
        read(&c, in2, e)?,
        acked.score(e, now),
        "e relayed to region 2",
    );
    assert_eq!(read(&c, in1, e)?, 0.0, "region 1 cannot have heard of e");
    assert_close(read(&c, in1, f)?, acked.score(f, now), "f in region 1");
    // Region None reads the leader (region 0), which has e and not f.
    assert_eq!(read(&c, Scope::LEADER, e)?, read(&c, in0, e)?);
    assert_eq!(read(&c, Scope::LEADER, f)?, 0.0);
    assert_eq!(
        c.version_vector_scoped(Scope::LEADER, ShardId(0))?,
        c.version_vector(RegionId(0), ShardId(0))?
    );
    assert_ne!(
        c.version_vector_scoped(in1, ShardId(0))?,
        c.version_vector_scoped(Scope::LEADER, ShardId(0))?
    );

    drop((p01, p12));
    c.await_full_convergence(Duration::from_secs(5))?;
    for x in [e, f] {
        let leader_score = read(&c, Scope::LEADER, x)?;
        assert_close(leader_score, acked.score(x, c.now()), "after the heal");
        for scope in [in0, in1, in2] {
            assert_eq!(read(&c, scope, x)?, leader_score, "{scope:?} differs");
        }
    }
    Ok(())
}

#[test]
fn tenant_scopes_route_to_the_tenants_own_replicas() -> Result<()> {
    let c = cluster(41, 2);
    c.register_tenant(TenantConfig {
        required_regions: vec![RegionId(1)],
        ..TenantConfig::new(A, "region one only")
    })?;
    let t = Scope::tenant(A);
    let items: Vec<EntityId> = (1..=40).map(EntityId).collect();
    let weights: Vec<f64> = (1..=40).map(|i| f64::from(i) / 8.0).collect();
    let at = c.now();
    assert_eq!(c.write_batch(t, "view", &items, &weights, None)?, 40);
    let acked = Acked(
        items
            .iter()
            .zip(&weights)
            .map(|(e, w)| (*e, *w, at))
            .collect(),
    );
    let tenant_router = c.control_plane().router().clone();
    let replicas = c.tenant_replicas(A);
    let mut shards_used = [0usize; 2];
    for e in &items {
        let home = tenant_router.route(A, *e)?;
        shards_used[usize::from(home.shard_id.0)] += 1;
        let node = c.node_serving(t, *e)?;
        assert_eq!(
            replicas.iter().find(|(n, _)| *n == node).map(|x| x.1),
            Some(home)
        );
        assert_eq!(c.node_serving(t.in_region(Some(RegionId(1))), *e)?, node);
        assert_close(read(&c, t, *e)?, acked.score(*e, c.now()), "tenant read");
        // The default tenant's replicas hold none of it.
        assert_eq!(read(&c, Scope::LEADER, *e)?, 0.0);
    }
    assert!(shards_used.iter().all(|k| *k > 0), "{shards_used:?}");
    assert_eq!(c.total_signal_count_for_tenant(RegionId(1), A, "view")?, 40);
    assert_eq!(c.total_signal_count_for_tenant(RegionId(0), A, "view")?, 0);

    // A region where the tenant keeps no replica: NotFound, and nothing written.
    let elsewhere = t.in_region(Some(RegionId(0)));
    let before = snapshot(&c, &[A]);
    let not_found = |r: Result<()>| matches!(r, Err(TidalError::NotFound(_)));
    assert!(not_found(c.node_serving(elsewhere, items[0]).map(|_| ())));
    assert!(not_found(read(&c, elsewhere, items[0]).map(|_| ())));
    assert!(not_found(
        c.write_batch(elsewhere, "view", &items, &weights, None)
            .map(|_| ())
    ));
    assert!(not_found(
        c.version_vector_scoped(elsewhere, ShardId(0)).map(|_| ())
    ));
    let q = Retrieve::builder()
        .candidates(items.iter().copied())
        .rank_by(&[("view", 1.0)])
        .limit(100)
        .build()?;
    assert!(not_found(c.retrieve_scoped(elsewhere, &q).map(|_| ())));
    assert_eq!(snapshot(&c, &[A]), before);

    // A tenant nobody registered.
    let unknown = Scope::tenant(TenantId(404));
    let is_unknown = |r: Result<()>| matches!(r, Err(TidalError::UnknownTenant(404)));
    assert!(is_unknown(c.node_serving(unknown, items[0]).map(|_| ())));
    assert!(is_unknown(read(&c, unknown, items[0]).map(|_| ())));
    assert!(is_unknown(
        c.write_batch(unknown, "view", &items, &weights, None)
            .map(|_| ())
    ));
    let mut out = vec![0.0; items.len()];
    assert!(is_unknown(
        c.scores_scoped(unknown, "view", &items, None, &mut out)
    ));
    assert!(is_unknown(c.retrieve_scoped(unknown, &q).map(|_| ())));
    assert!(is_unknown(
        c.version_vector_scoped(unknown, ShardId(0)).map(|_| ())
    ));
    assert!(is_unknown(c.lag_by_region(TenantId(404)).map(|_| ())));

    // The query merges both shards' answers, best first.
    let now = c.now();
    let all = c.retrieve_scoped(t, &q)?;
    assert_eq!(all.items.len(), 40);
    assert!(!all.stats.degraded, "{:?}", all.stats);
    assert_eq!(all.stats.shards_reached, vec![ShardId(0), ShardId(1)]);
    assert_eq!(all.stats.candidates_considered, 40);
    assert!(all.items.windows(2).all(|w| w[0].score >= w[1].score));
    for it in &all.items {
        assert_close(it.score, acked.score(it.item, now), "merged answer");
    }

    // Shard 1's host in region 1 goes down: its part is missing, and the answer says so.
    c.crash(RegionId(1), ShardId(1), false)?;
    for scope in [t, t.in_region(Some(RegionId(1)))] {
        let part = c.retrieve_scoped(scope, &q)?;
        assert!(part.stats.degraded, "{scope:?}: {:?}", part.stats);
        assert_eq!(part.stats.shards_unreachable, vec![ShardId(1)]);
        assert_eq!(part.stats.shards_reached, vec![ShardId(0)]);
        let mut got: Vec<EntityId> = part.items.iter().map(|i| i.item).collect();
        got.sort_unstable();
        let on0: Vec<EntityId> = items
            .iter()
            .copied()
            .filter(|e| {
                tenant_router
                    .route(A, *e)
                    .is_ok_and(|a| a.shard_id == ShardId(0))
            })
            .collect();
        assert_eq!(got, on0);
    }
    // A batch touching the downed shard is refused whole: shard 0 gets none of it.
    let before = snapshot(&c, &[A]);
    let r = c.write_batch(t, "view", &items, &weights, None);
    assert!(matches!(r, Err(TidalError::Unavailable(_))), "{r:?}");
    assert_eq!(snapshot(&c, &[A]), before);
    Ok(())
}

#[test]
fn scores_scoped_equals_read_scoped_bit_for_bit() -> Result<()> {
    let c = cluster(51, 3);
    c.register_tenant(TenantConfig::new(A, "everywhere"))?;
    let mut rng = SplitMix(51);
    let (es, ws, ts) = random_batch(&mut rng, c.now(), 600, 300);
    c.write_batch(Scope::LEADER, "view", &es, &ws, Some(&ts))?;
    c.write_batch(
        Scope::tenant(A),
        "view",
        &es[..300],
        &ws[..300],
        Some(&ts[..300]),
    )?;
    let acked = Acked((0..600).map(|i| (es[i], ws[i], ts[i])).collect());
    // Mid-replication, so regions differ; plus entities nobody wrote.
    c.run_for(Duration::from_millis(21));
    let mut probe = acked.entities();
    probe.extend((0..20).map(|i| EntityId(1_000_000 + i)));
    let v = view(&c);
    let later = c.now().saturating_add(Duration::from_secs(600));
    let mut scopes = vec![Scope::LEADER, Scope::tenant(A)];
    for r in REGIONS {
        scopes.push(Scope::LEADER.in_region(Some(r)));
        scopes.push(Scope::tenant(A).in_region(Some(r)));
    }
    let mut nonzero = 0;
    for scope in scopes {
        for at in [None, Some(later)] {
            let mut out = vec![f64::NAN; probe.len()];
            c.scores_scoped(scope, "view", &probe, at, &mut out)?;
            for (i, e) in probe.iter().enumerate() {
                let one = c.read_scoped(scope, *e, |n, now| {
                    n.ledger().decay_score(v, *e, at.unwrap_or(now))
                })?;
                assert_eq!(
                    out[i].to_bits(),
                    one.to_bits(),
                    "{scope:?} entity {e} at {at:?}"
                );
                nonzero += usize::from(one > 0.0);
            }
        }
    }
    assert!(
        nonzero > 1000,
        "too few written entities were read: {nonzero}"
    );
    let mut out = vec![0.0; probe.len()];
    assert!(matches!(
        c.scores_scoped(Scope::LEADER, "nope", &probe, None, &mut out),
        Err(TidalError::UnknownSignal { .. })
    ));
    // The leaders hold every default-tenant write: the analytical sum.
    c.scores_scoped(Scope::LEADER, "view", &probe, Some(later), &mut out)?;
    for (i, e) in probe.iter().enumerate() {
        assert_close(out[i], acked.score(*e, later), &format!("entity {e}"));
    }
    Ok(())
}

/// Routing of one entity is the same whichever call asks: the node `node_serving` names
/// is the one `read_scoped` runs on and the one `version_vector_scoped` reads.
#[test]
fn every_scoped_call_agrees_on_the_serving_node() -> Result<()> {
    let c = cluster(81, 3);
    c.register_tenant(TenantConfig::new(A, "everywhere"))?;
    let router = ShardRouter::new(RoutingStrategy::Hash { num_shards: 3 })?;
    let tenant_router = c.control_plane().router().clone();
    let mut seen: BTreeMap<NodeId, usize> = BTreeMap::new();
    for e in (0..60).map(EntityId) {
        for region in [None, Some(RegionId(1))] {
            for scope in [
                Scope::LEADER.in_region(region),
                Scope::tenant(A).in_region(region),
            ] {
                let node = c.node_serving(scope, e)?;
                assert_eq!(c.read_scoped(scope, e, |n, _| Ok(n.id()))?, node);
                let shard = if scope.tenant == TenantId::DEFAULT {
                    router.route(e)
                } else {
                    tenant_router.route(A, e)?.shard_id
                };
                assert_eq!(
                    c.version_vector_scoped(scope, shard)?,
                    c.handle(node).version_vector()?
                );
                *seen.entry(node).or_default() += 1;
            }
        }
    }
    // 3 shards × (default leader, default region 1, tenant serving, tenant region 1):
    // leaders and the tenant's home are in region 0, so no node serves two scopes.
    assert_eq!(seen.len(), 3 * 4, "{seen:?}");
    Ok(())
}
