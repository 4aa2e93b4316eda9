//! Section 4: reconciliation after a partition heals, by ranges from the retained logs and
//! by events read back from a relay's durable log.

use std::time::{Duration, Instant};

use tidaldb::RegionId;
use tidaldb::node::{ClientOp, DEFAULT_MAX_RETAINED, WriteConcern};
use tidaldb::sim::{ClusterConfig, LinkConfig, SimulatedCluster};

use crate::common::{Workload, config, in_order_links, median, ms, single_node_ingest};
use crate::{
    BATCH, CONVERGENCE_TIMEOUT, EVENTS, MINORITY_EVENTS, REGIONS, RUNS, Row, S0, WARM_UP, row,
};

struct ReconRun {
    /// Wall seconds from the heal to full convergence.
    heal_to_converged: f64,
    /// Wall seconds of the `reconcile_all` call alone (plans, gathers, frame encoding).
    reconcile_call: f64,
    virtual_converge: Duration,
    /// Events in each side's log that the other side lacks.
    divergent: usize,
    messages: u64,
    /// Full resyncs during the reconciliation (0: events were shipped).
    snapshots: u64,
    /// Events read back from a durable log because they had left the in-memory one.
    read_back: u64,
}

/// `leader_down`: the leader crashes before the heal, so region 1 must supply the leader's
/// events to region 2 from its own log (past its in-memory bound, read back from disk).
fn reconciliation(
    ops: &[ClientOp],
    minority: &[ClientOp],
    max_retained: usize,
    links: LinkConfig,
    leader_down: bool,
) -> ReconRun {
    let cluster = SimulatedCluster::build(ClusterConfig {
        max_retained,
        links,
        ..config(4)
    })
    .expect("the cluster builds");
    cluster.run_for(WARM_UP);
    let leader = cluster.leader_of(S0).expect("a leader");
    let isolated = cluster.node_id(RegionId(2), S0).expect("a replica");
    let cut_0 = cluster
        .inject_partition(RegionId(2), RegionId(0))
        .expect("regions exist");
    let cut_1 = cluster
        .inject_partition(RegionId(2), RegionId(1))
        .expect("regions exist");
    // Let the peers notice, so the partition is settled before the writes.
    cluster.run_for(Duration::from_secs(1));
    for chunk in ops.chunks(BATCH) {
        cluster
            .submit(leader, chunk, WriteConcern::Local, None)
            .expect("the leader takes the batch");
    }
    cluster
        .submit(isolated, minority, WriteConcern::Local, None)
        .expect("the isolated replica takes writes");
    cluster.run_for(Duration::from_secs(1));
    let majority_vv = cluster.version_vector(RegionId(1), S0).expect("a replica");
    assert_eq!(
        majority_vv.get(leader),
        ops.len() as u64,
        "region 1 has caught up with the leader before the heal"
    );
    assert_eq!(
        cluster
            .version_vector(RegionId(2), S0)
            .expect("a replica")
            .sum(),
        minority.len() as u64,
        "region 2 saw nothing of the majority's writes"
    );
    if leader_down {
        cluster
            .crash(RegionId(0), S0, false)
            .expect("the leader crashes");
    }
    let before = cluster.stats();
    drop(cut_0);
    drop(cut_1);
    let start = Instant::now();
    cluster.reconcile_all();
    let reconcile_call = start.elapsed().as_secs_f64();
    let virtual_converge = cluster
        .await_full_convergence(CONVERGENCE_TIMEOUT)
        .expect("the cluster converges after the heal");
    let heal_to_converged = start.elapsed().as_secs_f64();
    let live: &[RegionId] = if leader_down { &REGIONS[1..] } else { &REGIONS };
    for r in live {
        let vv = cluster.version_vector(*r, S0).expect("region exists");
        assert_eq!(
            vv.sum(),
            (ops.len() + minority.len()) as u64,
            "region {} applied {vv:?}",
            r.0
        );
    }
    let after = cluster.stats();
    ReconRun {
        heal_to_converged,
        reconcile_call,
        virtual_converge,
        divergent: ops.len() + minority.len(),
        messages: after.messages_delivered - before.messages_delivered,
        snapshots: after.snapshots_installed - before.snapshots_installed,
        read_back: after.events_read_back - before.events_read_back,
    }
}

pub(super) fn section_reconcile(
    w: &Workload,
    ops: &[ClientOp],
    minority: &[ClientOp],
    rows: &mut Vec<Row>,
) {
    println!(
        "\n4. reconciliation: region 2 cut off from both others; {EVENTS} events on the leader, \
         {MINORITY_EVENTS} on region 2; heal, reconcile_all, await convergence"
    );
    let mut recon = Vec::new();
    let mut ordered = Vec::new();
    let mut ingest = Vec::new();
    for run in 0..RUNS {
        ingest.push(single_node_ingest(w));
        let r = reconciliation(
            ops,
            minority,
            DEFAULT_MAX_RETAINED,
            LinkConfig::default(),
            false,
        );
        let o = reconciliation(ops, minority, DEFAULT_MAX_RETAINED, in_order_links(), false);
        println!(
            "  run {run}: single-node ingest {:.3} s; heal → converged {:.3} s wall \
             (reconcile_all call {:.3} s, {:.0} ms virtual, {} messages delivered); \
             without jitter {:.3} s ({} messages)",
            ingest[run],
            r.heal_to_converged,
            r.reconcile_call,
            ms(r.virtual_converge),
            r.messages,
            o.heal_to_converged,
            o.messages
        );
        recon.push(r);
        ordered.push(o);
    }
    let base = median(ingest);
    let ingest_rate = EVENTS as f64 / base;
    let divergent = recon[0].divergent;
    let heal = median(recon.iter().map(|r| r.heal_to_converged).collect());
    let call = median(recon.iter().map(|r| r.reconcile_call).collect());
    let o_heal = median(ordered.iter().map(|r| r.heal_to_converged).collect());
    let rate = divergent as f64 / heal;
    let path = |r: &ReconRun| match (r.snapshots, r.read_back) {
        (0, 0) => "ranges",
        (0, _) => "ranges + read-back",
        _ => "snapshot",
    };
    println!(
        "   path: {} ({divergent} divergent events, max_retained {DEFAULT_MAX_RETAINED}, \
         {} snapshots installed)",
        path(&recon[0]),
        recon[0].snapshots
    );
    println!(
        "   heal → converged {heal:.3} s wall (reconcile_all call {call:.3} s): {:.2} M events/s, \
         {:.2} x single-node ingest ({:.2} M/s, {base:.3} s)",
        rate / 1e6,
        rate / ingest_rate,
        ingest_rate / 1e6
    );
    println!("   diagnosis, links without jitter (frames arrive in order): {o_heal:.3} s");
    rows.push(row(
        format!(
            "reconciliation, 1M + 1K divergent, heal → convergence ({})",
            path(&recon[0])
        ),
        format!("{heal:.3} s wall = {:.2} M events/s", rate / 1e6),
        format!(
            "single-node ingest {base:.3} s = {:.2} M/s",
            ingest_rate / 1e6
        ),
        format!("{:.2}× throughput", rate / ingest_rate),
        "≤ 2 s",
        Some(heal <= 2.0),
    ));
    rows.push(row(
        "diagnosis: same, links without jitter (in-order frames)",
        format!(
            "{o_heal:.3} s wall = {:.2} M events/s",
            divergent as f64 / o_heal / 1e6
        ),
        format!("{:.2} M/s", ingest_rate / 1e6),
        format!("{:.2}× throughput", divergent as f64 / o_heal / ingest_rate),
        "(≤ 2 s)",
        Some(o_heal <= 2.0),
    ));

    // The leader dies before the heal and region 1's in-memory log is too small for the
    // leader's events it relayed: region 1 reads the trimmed ones back from its durable
    // log and ships them as ranges.
    let small_log = 1 << 19;
    let snap = reconciliation(ops, minority, small_log, LinkConfig::default(), true);
    assert!(
        snap.read_back > 0 && snap.snapshots == 0,
        "the small-log run must read trimmed events back ({} read back, {} snapshots)",
        snap.read_back,
        snap.snapshots
    );
    let snap_rate = snap.divergent as f64 / snap.heal_to_converged;
    println!(
        "   leader down, region 1's max_retained {small_log} ({}, {} events read back), one \
         run: heal → converged {:.3} s wall (reconcile_all call {:.3} s, {:.0} ms virtual, \
         {} messages), {:.2} M events/s, {:.2} x single-node ingest",
        path(&snap),
        snap.read_back,
        snap.heal_to_converged,
        snap.reconcile_call,
        ms(snap.virtual_converge),
        snap.messages,
        snap_rate / 1e6,
        snap_rate / ingest_rate
    );
    rows.push(row(
        format!(
            "reconciliation, leader down, relay's log 2^19 ({}), one run",
            path(&snap)
        ),
        format!(
            "{:.3} s wall = {:.2} M events/s",
            snap.heal_to_converged,
            snap_rate / 1e6
        ),
        format!("{:.2} M/s", ingest_rate / 1e6),
        format!("{:.2}× throughput", snap_rate / ingest_rate),
        "(≤ 2 s)",
        Some(snap.heal_to_converged <= 2.0),
    ));
}
