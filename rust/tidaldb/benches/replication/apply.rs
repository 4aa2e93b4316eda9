//! Section 1: replicated apply of 1M events, against single-node ingest.

use std::time::{Duration, Instant};

use tidaldb::node::{ClientOp, WriteConcern};
use tidaldb::sim::{ClusterConfig, LinkConfig, SimulatedCluster};

use crate::common::{
    Workload, assert_all_applied, config, in_order_links, median, ms, single_node_ingest,
};
use crate::{BATCH, CONVERGENCE_TIMEOUT, EVENTS, RUNS, Row, S0, WARM_UP, row};

struct ApplyRun {
    /// Wall seconds for the leader to take the ten batches (apply, log, encode pushes).
    write: f64,
    /// Wall seconds from the first write to full convergence.
    total: f64,
    /// Virtual time from the last write to convergence.
    virtual_converge: Duration,
}

fn replicated_apply(ops: &[ClientOp], links: LinkConfig) -> ApplyRun {
    let cluster =
        SimulatedCluster::build(ClusterConfig { links, ..config(1) }).expect("the cluster builds");
    cluster.run_for(WARM_UP);
    let leader = cluster.leader_of(S0).expect("a leader");
    let start = Instant::now();
    for chunk in ops.chunks(BATCH) {
        cluster
            .submit(leader, chunk, WriteConcern::Local, None)
            .expect("the leader takes the batch");
    }
    let write = start.elapsed().as_secs_f64();
    let virtual_converge = cluster
        .await_full_convergence(CONVERGENCE_TIMEOUT)
        .expect("the cluster converges");
    let total = start.elapsed().as_secs_f64();
    assert_all_applied(&cluster, ops.len() as u64);
    ApplyRun {
        write,
        total,
        virtual_converge,
    }
}

pub(super) fn section_apply(w: &Workload, ops: &[ClientOp], rows: &mut Vec<Row>) {
    println!("\n1. replicated apply, 1M events, 3 regions, Local concern, 20 ms ± 5 ms links");
    // The baseline is interleaved with the runs it is compared to, so that both see the same
    // minute of the machine.
    let mut ingest = Vec::new();
    let mut apply = Vec::new();
    let mut ordered = Vec::new();
    for run in 0..RUNS {
        ingest.push(single_node_ingest(w));
        let a = replicated_apply(ops, LinkConfig::default());
        let o = replicated_apply(ops, in_order_links());
        println!(
            "  run {run}: single-node ingest {:.3} s; replicated: leader writes {:.3} s, \
             converged {:.3} s wall ({:.0} ms virtual after the last write); \
             without jitter: {:.3} s, converged {:.3} s",
            ingest[run],
            a.write,
            a.total,
            ms(a.virtual_converge),
            o.write,
            o.total
        );
        apply.push(a);
        ordered.push(o);
    }
    let base = median(ingest);
    let ingest_rate = EVENTS as f64 / base;
    let total = median(apply.iter().map(|a| a.total).collect());
    let write = median(apply.iter().map(|a| a.write).collect());
    let o_total = median(ordered.iter().map(|a| a.total).collect());
    let o_write = median(ordered.iter().map(|a| a.write).collect());
    let per_replica = EVENTS as f64 / total;
    println!(
        "   baseline: single-node ingest (ephemeral TidalDb::signal_batch) {base:.3} s = {:.2} M events/s",
        ingest_rate / 1e6
    );
    println!(
        "   first write to convergence: {total:.3} s wall = {:.1} x the baseline's time \
         (leader's writes {write:.3} s, followers' catch-up {:.3} s)",
        total / base,
        total - write
    );
    println!(
        "   {:.2} M events/s per replica ({:.2} M/s applied over 3 replicas), {:.2} x single-node ingest",
        per_replica / 1e6,
        3.0 * per_replica / 1e6,
        per_replica / ingest_rate
    );
    println!(
        "   diagnosis, links without jitter (frames arrive in order): {o_total:.3} s \
         (leader's writes {o_write:.3} s, followers' catch-up {:.3} s), {:.1} x the baseline's time",
        o_total - o_write,
        o_total / base
    );
    rows.push(row(
        "replicated apply, 1M events, first write → convergence",
        format!(
            "{total:.3} s wall (leader {write:.3} s + followers {:.3} s)",
            total - write
        ),
        format!("single-node ingest of the same 1M: {base:.3} s"),
        format!("{:.1}× the time", total / base),
        "≤ 2 s",
        Some(total <= 2.0),
    ));
    rows.push(row(
        "replicated apply, events/s per replica",
        format!("{:.2} M/s", per_replica / 1e6),
        format!("{:.2} M/s", ingest_rate / 1e6),
        format!("{:.2}×", per_replica / ingest_rate),
        "",
        None,
    ));
    rows.push(row(
        "diagnosis: same, links without jitter (in-order frames)",
        format!(
            "{o_total:.3} s wall (leader {o_write:.3} s + followers {:.3} s)",
            o_total - o_write
        ),
        format!("{base:.3} s"),
        format!("{:.1}× the time", o_total / base),
        "(≤ 2 s)",
        Some(o_total <= 2.0),
    ));
}
