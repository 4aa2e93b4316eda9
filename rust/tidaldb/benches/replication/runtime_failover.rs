//! Section 7: failover on the in-process runtime (`LocalCluster`: real replicas, real WAL
//! files, the wall clock), from the crash of the shard leader's host to the first write
//! the new leader accepts, against the configured election timeout and heartbeat.

use std::time::{Duration, Instant};

use tidaldb::EntityId;
use tidaldb::cluster::Timing;
use tidaldb::node::{NodeRole, WriteConcern};
use tidaldb::runtime::{LocalCluster, LocalClusterConfig};

use crate::common::{ms, percentile, schema};
use crate::{Row, S0, row};

const RUNS: u64 = 20;
/// How often the client polls for a new leader: fine against the 10 ms control tick.
const POLL: Duration = Duration::from_millis(1);
const GIVE_UP: Duration = Duration::from_secs(10);

struct Run {
    /// Crash → the control plane names a live leader other than the crashed one.
    named: Duration,
    /// Crash → that replica has taken the promotion (role leader, a later term).
    promoted: Duration,
    /// Crash → the first write acknowledged by it.
    accepted: Duration,
    /// How long before the crash the control plane last heard the old leader.
    silent_before: Duration,
    /// The 100 synced warm-up writes to the old leader.
    writes: Duration,
}

fn failover(run: u64) -> Run {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cluster = LocalCluster::open(LocalClusterConfig::new(schema(), dir.path()))
        .expect("the local cluster opens");
    // Every replica heard, then a warm-up that varies with the run, so crashes land at
    // every phase of the heartbeat and tick cycles.
    cluster.run_for(Duration::from_millis(300 + (run * 37) % 100));
    let old = cluster.leader_of(S0).expect("a leader");
    let old_term = cluster
        .with_node(old, |n, _| Ok(n.term()))
        .expect("the leader is up");
    let t = Instant::now();
    for i in 0..100 {
        cluster
            .handle(old)
            .signal("view", EntityId(i), 1.0)
            .expect("the leader takes writes");
    }
    let writes = t.elapsed();
    // As in the simulator's section: a pause of 0-99 ms after the writes.
    cluster.run_for(Duration::from_millis((run * 53) % 100));
    let region = cluster.handle(old).region();
    let silent_before = cluster.with_control(|c, now| {
        c.health(now)
            .replicas
            .iter()
            .find(|r| r.node == old)
            .and_then(|r| r.last_heartbeat_ns)
            .map_or(Duration::ZERO, |at| {
                Duration::from_nanos(u64::try_from(now.as_nanos() - at).unwrap_or(0))
            })
    });
    cluster
        .crash(region, S0, false)
        .expect("the leader crashes");
    let crashed = Instant::now();
    let new = loop {
        if let Ok(n) = cluster.leader_of(S0)
            && n != old
        {
            break n;
        }
        assert!(crashed.elapsed() < GIVE_UP, "run {run}: no new leader");
        std::thread::sleep(POLL);
    };
    let named = crashed.elapsed();
    while !cluster
        .with_node(new, |n, _| {
            Ok(n.role() == NodeRole::Leader && n.term() > old_term)
        })
        .unwrap_or(false)
    {
        assert!(crashed.elapsed() < GIVE_UP, "run {run}: not promoted");
        std::thread::sleep(POLL);
    }
    let promoted = crashed.elapsed();
    while cluster
        .handle(new)
        .write_signal("view", EntityId(1), 1.0, None, WriteConcern::Local, None)
        .is_err()
    {
        assert!(crashed.elapsed() < GIVE_UP, "run {run}: no write accepted");
        std::thread::sleep(POLL);
    }
    let accepted = crashed.elapsed();
    cluster.shutdown().expect("the cluster shuts down");
    Run {
        named,
        promoted,
        accepted,
        silent_before,
        writes,
    }
}

pub(super) fn section_runtime_failover(rows: &mut Vec<Row>) {
    let t = Instant::now();
    let runs: Vec<Run> = (0..RUNS).map(failover).collect();
    let sorted = |f: fn(&Run) -> Duration| {
        let mut xs: Vec<f64> = runs.iter().map(|r| ms(f(r))).collect();
        xs.sort_by(f64::total_cmp);
        xs
    };
    let (named, promoted, accepted, silent, writes) = (
        sorted(|r| r.named),
        sorted(|r| r.promoted),
        sorted(|r| r.accepted),
        sorted(|r| r.silent_before),
        sorted(|r| r.writes),
    );
    let timing = Timing::default();
    let election = ms(timing.election_timeout);
    let heartbeat = ms(timing.heartbeat_interval);
    let p = |xs: &[f64], q| percentile(xs, q);
    println!(
        "\n7. failover on the runtime (LocalCluster: 3 regions, real WAL files, immediate \
         durability, wall clock), {RUNS} runs, default timings (heartbeat {heartbeat:.0} ms, \
         election timeout {election:.0} ms, tick {:.0} ms) ({:.1} s wall)",
        ms(timing.tick),
        t.elapsed().as_secs_f64()
    );
    for (what, xs) in [
        ("crash → control plane names a new live leader", &named),
        ("crash → the new leader holds the promotion", &promoted),
        ("crash → first write accepted by the new leader", &accepted),
        ("diagnostic: leader last heard before the crash", &silent),
        ("diagnostic: 100 synced writes to the old leader", &writes),
    ] {
        println!(
            "   {what}: min {:.0}, p50 {:.0}, p99 {:.0}, max {:.0} ms",
            p(xs, 0.0),
            p(xs, 50.0),
            p(xs, 99.0),
            p(xs, 100.0)
        );
    }
    let (p50, p99) = (p(&accepted, 50.0), p(&accepted, 99.0));
    println!(
        "   baseline election timeout {election:.0} ms: p50 {:.2} x, p99 {:.2} x; \
         p99 − timeout = {:.1} heartbeats",
        p50 / election,
        p99 / election,
        (p99 - election) / heartbeat
    );
    rows.push(row(
        "failover on the runtime, crash → first write accepted by the new leader (wall), 20 runs",
        format!("p50 {p50:.0} / p99 {p99:.0} ms"),
        format!("election timeout {election:.0} ms (heartbeat {heartbeat:.0} ms)"),
        format!("p50 {:.2}×, p99 {:.2}×", p50 / election, p99 / election),
        "",
        None,
    ));
}
