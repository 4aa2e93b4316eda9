//! A tenant's hard caps hold across its regions: `max_entities` and `max_storage_bytes`
//! are bounded counters whose rights replicas hold and pass to each other, so replicas
//! writing at once (active-active), cut off by partitions and restarted, never admit
//! more together than the cap.
//!
//! Each seed registers a capped tenant in three regions and runs a random schedule of
//! writes on every region (single and batched, on entities that the regions share),
//! partitions that isolate one region, heals, host crashes (half of them losing the
//! unsynced tail, and with it the writes and rights spent there) and restarts. After
//! healing and converging:
//!
//! - every replica holds at most the cap (distinct entities, or events as storage is
//!   accounted), and the rights the counters record as spent stay within it;
//! - every acknowledged write is on every replica (those a crash may have lost from its
//!   origin's unsynced tail may be missing), and nothing else is: the distinct
//!   entities are exactly those of the acknowledged writes, the signal count exactly
//!   their number (a refused write wrote nothing);
//! - the replicas' state digests are equal.
//!
//! `make test` runs 200 seeds of each cap. More: `TIDALDB_CAPS_SEEDS=2000 cargo test
//! --release -p tidaldb --test tenant_caps_across_regions`. Replay one:
//! `TIDALDB_CAPS_SEED=<n> cargo test -p tidaldb --test tenant_caps_across_regions --
//! --nocapture`.

mod common;
#[path = "tenant_caps_across_regions/rights_move.rs"]
mod rights_move;

use std::collections::BTreeSet;
use std::time::Duration;

use common::SplitMix;
use tidaldb::event::{CapKind, EventId};
use tidaldb::node::{ClientOp, WriteConcern};
use tidaldb::sim::{ClusterConfig, NetworkPartition, SimDurability, SimulatedCluster};
use tidaldb::tenancy::{EVENT_STORAGE_BYTES, Quota, TenantConfig, TenantId};
use tidaldb::{EntityId, NodeId, RegionId, Result, ShardId, TidalError};

pub const T: TenantId = TenantId(5);

/// A tenant capped at `cap` rights of `kind` (entities, or events of storage).
pub fn capped(kind: CapKind, cap: u64) -> TenantConfig {
    let base = TenantConfig::new(T, "capped");
    match kind {
        CapKind::Entities => TenantConfig {
            max_entities: Some(cap),
            ..base
        },
        CapKind::Storage => TenantConfig {
            max_storage_bytes: Some(cap * EVENT_STORAGE_BYTES),
            ..base
        },
    }
}

pub fn quota_of(kind: CapKind) -> Quota {
    match kind {
        CapKind::Entities => Quota::Entities,
        CapKind::Storage => Quota::StorageBytes,
    }
}

pub fn cluster(seed: u64, durability: SimDurability) -> SimulatedCluster {
    SimulatedCluster::build(ClusterConfig {
        seed,
        durability,
        ..ClusterConfig::new(common::hourly_view_schema())
    })
    .expect("the cluster builds")
}

/// The tenant's replica in each region, in region order.
pub fn replicas(c: &SimulatedCluster) -> Vec<(NodeId, RegionId)> {
    let mut r: Vec<(NodeId, RegionId)> = c
        .tenant_replicas(T)
        .into_iter()
        .map(|(n, host)| (n, host.region_id))
        .collect();
    r.sort_by_key(|(_, region)| *region);
    r
}

pub fn view(c: &SimulatedCluster, entity: u64) -> ClientOp {
    ClientOp::Signal {
        signal: c.config().schema.resolve("view").expect("view is declared"),
        entity: EntityId(entity),
        weight: 1.0,
        ts: None,
    }
}

/// What a replica holds of the tenant, and what its counters say was spent.
#[derive(Debug, PartialEq)]
pub struct Held {
    pub entities: BTreeSet<EntityId>,
    pub signals: u64,
    pub events: u64,
    pub spent: u64,
    pub digest: u64,
}

pub fn held(c: &SimulatedCluster, node: NodeId, kind: CapKind, among: &[u64]) -> Result<Held> {
    c.with_node(node, |n, _| {
        let l = n.ledger();
        let view = l.schema().resolve("view")?;
        Ok(Held {
            entities: among
                .iter()
                .map(|e| EntityId(*e))
                .filter(|e| l.holds_entity(*e))
                .collect(),
            signals: l.total_signal_count(view)?,
            events: l.version_vector().sum(),
            spent: l.escrow().counter(kind).total_consumed(),
            digest: l.state_digest(),
        })
    })
}

/// What the schedules exercised, summed over seeds, so that a run that never reached
/// the cap, never moved rights or never cut a region off cannot pass unnoticed.
#[derive(Debug, Default)]
struct Coverage {
    acked: u64,
    refused_retry: u64,
    refused_final: u64,
    acked_away_from_home: u64,
    at_cap: u64,
    isolations: u64,
    crashes: u64,
    writes_lost: u64,
}

fn run_seed(seed: u64, kind: CapKind, cov: &mut Coverage) -> std::result::Result<(), String> {
    let mut rng = SplitMix(seed);
    let durability = if rng.below(2) == 0 {
        SimDurability::Immediate
    } else {
        SimDurability::Every(Duration::from_millis(100))
    };
    let c = cluster(seed, durability);
    let cap = 5 + rng.below(40);
    c.register_tenant(capped(kind, cap))
        .map_err(|e| e.to_string())?;
    let nodes = replicas(&c);
    // Entities: mostly distinct per region, some shared, three times what the cap allows.
    // Storage: a few entities, written over and over.
    let universe = match kind {
        CapKind::Entities => 3 * cap,
        CapKind::Storage => 4,
    };
    let mut acked: Vec<(EventId, u64)> = Vec::new();
    // Acknowledged writes a crash may have lost: past what their origin had confirmed
    // durable (the disk may hold more than it was told).
    let mut maybe: Vec<u64> = Vec::new();
    let mut isolation: Vec<NetworkPartition> = Vec::new();
    let mut down: Option<RegionId> = None;
    for _ in 0..250 {
        let roll = rng.below(100);
        if roll < 80 {
            let (node, region) = nodes[rng.below(3) as usize];
            if down == Some(region) {
                continue;
            }
            let n = if rng.below(5) == 0 { 3 } else { 1 };
            let entities: Vec<u64> = (0..n).map(|_| rng.below(universe)).collect();
            let ops: Vec<ClientOp> = entities.iter().map(|e| view(&c, *e)).collect();
            match c.submit(node, &ops, WriteConcern::Local, None) {
                Ok(ack) => {
                    let first = ack.event_id();
                    for (i, e) in entities.iter().enumerate() {
                        let id = EventId {
                            origin: first.origin,
                            seq: first.seq + i as u64,
                        };
                        acked.push((id, *e));
                    }
                    cov.acked += n;
                    if region != RegionId(0) {
                        cov.acked_away_from_home += n;
                    }
                }
                Err(TidalError::QuotaExceeded(b)) => {
                    if b.quota != quota_of(kind) {
                        return Err(format!("refused by {:?}, not {kind:?}", b.quota));
                    }
                    match b.retry_after {
                        Some(_) => cov.refused_retry += 1,
                        None => cov.refused_final += 1,
                    }
                }
                Err(e) => return Err(format!("write on node {} failed: {e}", node.0)),
            }
        } else if roll < 86 && isolation.is_empty() && down.is_none() {
            let cut = RegionId(rng.below(3) as u16);
            for other in (0..3).map(RegionId).filter(|r| *r != cut) {
                isolation.push(c.inject_partition(cut, other).map_err(|e| e.to_string())?);
            }
            cov.isolations += 1;
        } else if roll < 92 {
            isolation.clear();
        } else if roll < 95 && down.is_none() {
            let (node, region) = nodes[rng.below(3) as usize];
            // Losing the unsynced tail loses the node's own writes past what it made
            // durable: acknowledged under `Local`, never shipped, and their rights with them.
            let lose = rng.below(2) == 0;
            let durable = c
                .with_node(node, |n, _| Ok(n.durable().get(node)))
                .map_err(|e| e.to_string())?;
            c.crash(region, ShardId(0), lose)
                .map_err(|e| e.to_string())?;
            if lose {
                let (kept, lost): (Vec<_>, Vec<_>) = acked
                    .into_iter()
                    .partition(|(id, _)| id.origin != node || id.seq <= durable);
                acked = kept;
                cov.writes_lost += lost.len() as u64;
                maybe.extend(lost.into_iter().map(|(_, e)| e));
            }
            down = Some(region);
            cov.crashes += 1;
        } else if let Some(region) = down.take() {
            c.restart(region, ShardId(0)).map_err(|e| e.to_string())?;
        }
        c.run_for(Duration::from_millis(rng.below(40)));
    }
    isolation.clear();
    if let Some(region) = down.take() {
        c.restart(region, ShardId(0)).map_err(|e| e.to_string())?;
    }
    c.await_full_convergence(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    check(&c, kind, cap, universe, (&acked, &maybe), cov)
}

/// The oracle: the acknowledged writes, and the cap.
fn check(
    c: &SimulatedCluster,
    kind: CapKind,
    cap: u64,
    universe: u64,
    (acked, maybe): (&[(EventId, u64)], &[u64]),
    cov: &mut Coverage,
) -> std::result::Result<(), String> {
    let all: Vec<u64> = (0..universe).collect();
    let sure: BTreeSet<EntityId> = acked.iter().map(|(_, e)| EntityId(*e)).collect();
    let possible: BTreeSet<EntityId> = sure
        .iter()
        .copied()
        .chain(maybe.iter().map(|e| EntityId(*e)))
        .collect();
    let signals = acked.len() as u64..=(acked.len() + maybe.len()) as u64;
    let mut first: Option<Held> = None;
    for (node, region) in replicas(c) {
        let h = held(c, node, kind, &all).map_err(|e| e.to_string())?;
        let vv = c
            .with_node(node, |n, _| Ok(n.ledger().version_vector().clone()))
            .map_err(|e| e.to_string())?;
        if let Some((id, _)) = acked.iter().find(|(id, _)| vv.get(id.origin) < id.seq) {
            return Err(format!(
                "region {} lacks acknowledged write {id:?}",
                region.0
            ));
        }
        if !h.entities.is_superset(&sure)
            || !h.entities.is_subset(&possible)
            || !signals.contains(&h.signals)
        {
            return Err(format!(
                "region {} holds {} entities and {} signals; the acknowledged writes are {} \
                 entities and {} signals, and {} more a crash may have lost",
                region.0,
                h.entities.len(),
                h.signals,
                sure.len(),
                acked.len(),
                maybe.len()
            ));
        }
        let used = match kind {
            CapKind::Entities => h.entities.len() as u64,
            CapKind::Storage => h.events,
        };
        if used > cap || h.spent > cap {
            return Err(format!(
                "region {} holds {used} (counters say {} spent) past the cap of {cap}",
                region.0, h.spent
            ));
        }
        if used == cap {
            cov.at_cap += 1;
        }
        match &first {
            None => first = Some(h),
            Some(f) if *f == h => {}
            Some(f) => return Err(format!("replicas differ: {f:?} and {h:?}")),
        }
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_seeds(kind: CapKind) -> Coverage {
    let seeds: Vec<u64> = match env_u64("TIDALDB_CAPS_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("TIDALDB_CAPS_SEEDS").unwrap_or(200)).collect(),
    };
    let mut cov = Coverage::default();
    for seed in seeds {
        if let Err(why) = run_seed(seed, kind, &mut cov) {
            panic!(
                "{kind:?} seed {seed} failed: {why}\nreplay: TIDALDB_CAPS_SEED={seed} cargo \
                 test -p tidaldb --test tenant_caps_across_regions -- --nocapture"
            );
        }
    }
    println!("{kind:?}: {cov:?}");
    cov
}

fn assert_exercised(cov: &Coverage) {
    if env_u64("TIDALDB_CAPS_SEED").is_some() {
        return;
    }
    assert!(
        cov.acked_away_from_home > 0,
        "no region but the home admitted: {cov:?}"
    );
    assert!(cov.refused_retry > 0, "no write waited for rights: {cov:?}");
    assert!(
        cov.refused_final > 0,
        "no write met the exhausted cap: {cov:?}"
    );
    assert!(cov.at_cap > 0, "no run reached the cap: {cov:?}");
    assert!(cov.isolations > 0 && cov.crashes > 0, "no faults: {cov:?}");
    assert!(
        cov.writes_lost > 0,
        "no crash lost an unsynced write: {cov:?}"
    );
}

#[test]
fn max_entities_holds_across_regions_under_partitions_and_restarts() {
    assert_exercised(&run_seeds(CapKind::Entities));
}

#[test]
fn max_storage_bytes_holds_across_regions_under_partitions_and_restarts() {
    assert_exercised(&run_seeds(CapKind::Storage));
}
