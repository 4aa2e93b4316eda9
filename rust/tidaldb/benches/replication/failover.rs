//! Section 3: failover time after a leader crash, against the election timeout.

use std::time::{Duration, Instant};

use tidaldb::EntityId;
use tidaldb::control::Decision;
use tidaldb::node::{ClientOp, WriteConcern};
use tidaldb::schema::SignalIdx;
use tidaldb::sim::{SimulatedCluster, Timing};

use crate::common::{config, ms, percentile, virtual_ms};
use crate::{FAILOVER_SEEDS, Row, S0, row};

struct FailoverRun {
    /// Virtual ms from the crash until `has_leader()` (polled every 10 ms).
    detected: f64,
    /// Virtual ms from the crash to the control plane's promotion.
    promoted: f64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn failover(seed: u64, signal: SignalIdx) -> FailoverRun {
    let cluster = SimulatedCluster::build(config(seed)).expect("the cluster builds");
    // A seeded warm-up between 0.5 s and 1 s, so crashes land at every phase of the
    // heartbeat and tick cycles.
    cluster.run_for(Duration::from_millis(500 + splitmix(seed) % 500));
    let leader = cluster.leader_of(S0).expect("a leader");
    let ops: Vec<ClientOp> = (0..100)
        .map(|i| ClientOp::Signal {
            signal,
            entity: EntityId(i),
            weight: 1.0,
            ts: None,
        })
        .collect();
    cluster
        .submit(leader, &ops, WriteConcern::Local, None)
        .expect("the leader takes the batch");
    cluster.run_for(Duration::from_millis(splitmix(seed ^ 0xa5a5) % 100));
    let region = cluster.handle(leader).region();
    let crashed_at = cluster.now();
    cluster
        .crash(region, S0, false)
        .expect("the leader crashes");
    let limit = crashed_at.as_nanos() + 10_000_000_000;
    while !cluster.has_leader() {
        assert!(
            cluster.now().as_nanos() < limit,
            "seed {seed}: no leader 10 s after the crash"
        );
        cluster.run_for(Duration::from_millis(10));
    }
    let detected = virtual_ms(crashed_at, cluster.now());
    let new_leader = cluster.leader_of(S0).expect("a new leader");
    assert_ne!(
        new_leader, leader,
        "seed {seed}: the crashed leader is not the leader"
    );
    let promoted_ns = cluster
        .control_plane()
        .decisions()
        .iter()
        .rev()
        .find_map(|d| match d {
            Decision::Promote { at_ns, .. } => Some(*at_ns),
            Decision::Leaderless { .. } => None,
        })
        .expect("a promotion was decided");
    cluster
        .handle(new_leader)
        .signal("view", EntityId(1), 1.0)
        .expect("the new leader takes writes");
    FailoverRun {
        detected,
        promoted: (promoted_ns - crashed_at.as_nanos()) as f64 / 1e6,
    }
}

pub(super) fn section_failover(view: SignalIdx, rows: &mut Vec<Row>) {
    let t = Instant::now();
    let runs: Vec<FailoverRun> = (0..FAILOVER_SEEDS).map(|s| failover(s, view)).collect();
    let mut detected: Vec<f64> = runs.iter().map(|r| r.detected).collect();
    detected.sort_by(f64::total_cmp);
    let mut promoted: Vec<f64> = runs.iter().map(|r| r.promoted).collect();
    promoted.sort_by(f64::total_cmp);
    let election = ms(Timing::default().election_timeout);
    let stats = |xs: &[f64]| {
        (
            percentile(xs, 0.0),
            percentile(xs, 50.0),
            percentile(xs, 99.0),
            percentile(xs, 100.0),
        )
    };
    let (dmin, dp50, dp99, dmax) = stats(&detected);
    let (pmin, pp50, pp99, pmax) = stats(&promoted);
    println!(
        "\n3. failover: {FAILOVER_SEEDS} seeds, default timings (heartbeat 50 ms, election timeout \
         {election:.0} ms, tick 10 ms) ({:.1} s wall)",
        t.elapsed().as_secs_f64()
    );
    println!(
        "   crash → has_leader() (polled every 10 ms): min {dmin:.0}, p50 {dp50:.0}, p99 {dp99:.0}, \
         max {dmax:.0} ms; baseline election timeout {election:.0} ms: p50 {:.2} x, max {:.2} x",
        dp50 / election,
        dmax / election
    );
    println!(
        "   crash → promotion decided: min {pmin:.0}, p50 {pp50:.0}, p99 {pp99:.0}, max {pmax:.0} ms"
    );
    rows.push(row(
        "failover, crash → new leader (virtual), 100 seeds",
        format!("min {dmin:.0} / p50 {dp50:.0} / p99 {dp99:.0} / max {dmax:.0} ms"),
        format!("election timeout {election:.0} ms"),
        format!("p50 {:.2}×, max {:.2}×", dp50 / election, dmax / election),
        "≤ 1 s (seeds: ≤ 10 s)",
        Some(dmax <= 1_000.0),
    ));
}
