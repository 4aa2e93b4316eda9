//! Rights move: a region that holds none (or has spent its own) is refused with a retry
//! hint and writes nothing, asks the peer holding spare rights, and admits once that peer
//! grants; a region cut off admits within what it holds and no further; once every right
//! is spent, a refusal says no retry helps.

use std::time::Duration;

use tidaldb::event::CapKind;
use tidaldb::node::WriteConcern;
use tidaldb::sim::{SimDurability, SimulatedCluster};
use tidaldb::{NodeId, RegionId, Result, TidalError};

use super::{capped, cluster, held, quota_of, replicas, view};

/// Writes a new entity (or, for storage, entity 0 again) on `node`: `Ok(None)` when
/// admitted, `Ok(Some(retry_after))` when the cap refused it.
fn write(
    c: &SimulatedCluster,
    node: NodeId,
    kind: CapKind,
    next: &mut u64,
) -> Result<Option<Option<Duration>>> {
    let entity = match kind {
        CapKind::Entities => *next,
        CapKind::Storage => 0,
    };
    match c.submit(node, &[view(c, entity)], WriteConcern::Local, None) {
        Ok(_) => {
            *next += 1;
            Ok(None)
        }
        Err(TidalError::QuotaExceeded(b)) => {
            assert_eq!(b.quota, quota_of(kind));
            Ok(Some(b.retry_after))
        }
        Err(e) => Err(e),
    }
}

fn rights(c: &SimulatedCluster, node: NodeId, kind: CapKind) -> u64 {
    c.with_node(node, |n, _| Ok(n.rights_of(node, kind)))
        .expect("the node is up")
        .expect("the tenant is capped")
}

fn events_on(c: &SimulatedCluster, node: NodeId) -> u64 {
    c.with_node(node, |n, _| Ok(n.ledger().version_vector().sum()))
        .expect("the node is up")
}

fn rights_move(kind: CapKind) -> Result<()> {
    let cap = 20;
    let c = cluster(11, SimDurability::Immediate);
    c.register_tenant(capped(kind, cap))?;
    let nodes = replicas(&c);
    let [(home, _), (r1, _), (r2, _)] = nodes[..] else {
        panic!("three replicas: {nodes:?}")
    };
    assert_eq!(
        rights(&c, home, kind),
        cap,
        "the home starts with every right"
    );
    assert_eq!(rights(&c, r1, kind), 0);
    let mut next = 1000;

    // Region 1 holds nothing: refused with a hint, nothing written, a request sent.
    let before = events_on(&c, r1);
    let retry = write(&c, r1, kind, &mut next)?
        .expect("refused")
        .expect("a hint");
    assert_eq!(events_on(&c, r1), before, "a refused write writes nothing");
    c.run_for(retry);
    assert!(
        write(&c, r1, kind, &mut next)?.is_none(),
        "admitted after the grant"
    );
    // The home gave half its spare (less the grant's own storage right).
    let granted = rights(&c, r1, kind) + 1;
    assert!(granted >= cap / 2 - 1, "granted {granted}");

    // Region 1 spends what it was given, asks again, and admits more.
    while write(&c, r1, kind, &mut next)?.is_none() {}
    let retry = write(&c, r1, kind, &mut next)?
        .expect("refused")
        .expect("a hint");
    c.run_for(retry);
    assert!(
        write(&c, r1, kind, &mut next)?.is_none(),
        "a region that used its rights admits more once a peer grants it"
    );

    // Region 2 borrows, then is cut off: it admits within what it holds, no further.
    let retry = write(&c, r2, kind, &mut next)?
        .expect("refused")
        .expect("a hint");
    c.run_for(retry);
    assert!(write(&c, r2, kind, &mut next)?.is_none());
    let cut: Vec<_> = [RegionId(0), RegionId(1)]
        .into_iter()
        .map(|r| c.inject_partition(RegionId(2), r))
        .collect::<Result<_>>()?;
    let mut isolated = 0;
    while write(&c, r2, kind, &mut next)?.is_none() {
        isolated += 1;
    }
    assert_eq!(rights(&c, r2, kind), 0);
    let before = events_on(&c, r2);
    for _ in 0..3 {
        let refused = write(&c, r2, kind, &mut next)?.expect("refused while cut off");
        assert!(
            refused.is_some(),
            "a request is out, so a retry may pass later"
        );
        c.run_for(Duration::from_millis(300));
    }
    assert_eq!(
        events_on(&c, r2),
        before,
        "cut off, it admitted nothing more"
    );
    println!("{kind:?}: region 2 admitted {isolated} more while cut off");

    // Healed, every region writes until the refusal says no retry helps: every right is
    // spent, wherever it was.
    drop(cut);
    c.await_full_convergence(Duration::from_secs(30))?;
    for node in [home, r1, r2, home, r1, r2] {
        let mut last = None;
        for _ in 0..4 * cap {
            match write(&c, node, kind, &mut next)? {
                None => {}
                Some(Some(retry)) => c.run_for(retry),
                Some(None) => {
                    last = Some(());
                    break;
                }
            }
        }
        assert!(
            last.is_some(),
            "node {} never met the exhausted cap",
            node.0
        );
        c.await_full_convergence(Duration::from_secs(30))?;
    }
    let among: Vec<u64> = (0..next).collect();
    let spent = held(&c, home, kind, &among)?;
    for (node, _) in &nodes {
        let h = held(&c, *node, kind, &among)?;
        assert_eq!(h, spent, "replicas are identical");
    }
    let used = match kind {
        CapKind::Entities => spent.entities.len() as u64,
        CapKind::Storage => spent.events,
    };
    assert_eq!(
        used, cap,
        "the whole cap is used, and no more: no right was stranded"
    );
    assert_eq!(spent.spent, cap, "the counters agree");
    Ok(())
}

#[test]
fn entity_rights_move_to_the_region_that_needs_them() -> Result<()> {
    rights_move(CapKind::Entities)
}

#[test]
fn storage_rights_move_to_the_region_that_needs_them() -> Result<()> {
    rights_move(CapKind::Storage)
}

/// A migration's source holds rights; it hands them to the target before it is
/// collected, so a tenant that moves keeps its whole cap, and no more.
#[test]
fn a_migrated_tenant_keeps_its_rights() -> Result<()> {
    let cap = 10;
    let c = cluster(12, SimDurability::Immediate);
    c.register_tenant(tidaldb::tenancy::TenantConfig {
        required_regions: vec![RegionId(0)],
        ..capped(CapKind::Entities, cap)
    })?;
    let [(source, _)] = replicas(&c)[..] else {
        panic!("one replica")
    };
    let mut next = 0;
    for _ in 0..4 {
        assert!(write(&c, source, CapKind::Entities, &mut next)?.is_none());
    }
    let m = c.migrate_tenant(super::T, RegionId(2), None)?;
    m.run_steps(m.record()?.number, Duration::ZERO, |_| {
        Ok::<_, TidalError>(())
    })?;
    let [(target, RegionId(2))] = replicas(&c)[..] else {
        panic!("the tenant moved to region 2")
    };
    assert_eq!(rights(&c, target, CapKind::Entities), cap - 4);
    while write(&c, target, CapKind::Entities, &mut next)?.is_none() {}
    assert_eq!(next, cap, "the whole cap, and no more");
    assert_eq!(
        write(&c, target, CapKind::Entities, &mut next)?,
        Some(None),
        "no retry helps: no replica holds spare rights"
    );
    Ok(())
}
