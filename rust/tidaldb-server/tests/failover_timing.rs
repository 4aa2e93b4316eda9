//! A benchmark, not a test (it is `#[ignore]`d; `make bench` runs it): how long a replica
//! group has no leader in its role after its leader's process is killed with SIGKILL,
//! with the replicated control plane and the default timings (election timeout 500 ms,
//! heartbeats every 20 ms in these configs).
//!
//! Measured from the kill to the first write acknowledged by the new leader, over `RUNS`
//! fresh three-process clusters. The baseline, in the same run, is what a cluster without
//! failover would wait: the same kill, then a restart of the killed process and its first
//! acknowledged write.
//!
//! `cargo test --release -p tidaldb-server --test failover_timing -- --ignored --nocapture`

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cluster, PATIENCE, Spec, now_ns, wait_until};
use tidaldb::runtime::net::proto::Concern;

const RUNS: usize = 20;

/// The leader of the default group in the committed plane, as `nodes[0]`'s voter knows
/// it, if it is one of `nodes` other than `not`. The failover counts as done once that
/// successor has also acknowledged a write.
fn committed_leader(cluster: &mut Cluster, nodes: &[usize], not: usize) -> Option<usize> {
    let json = cluster.client(nodes[0]).control_json().ok()?;
    let v: Value = serde_json::from_str(&json).ok()?;
    let leader = v["groups"][0]["leader"].as_u64()? as usize;
    (leader != not && nodes.contains(&leader)).then_some(leader)
}

fn write_once(cluster: &mut Cluster, node: usize) -> Result<(), String> {
    let at = now_ns();
    cluster
        .client(node)
        .write(
            tidaldb::TenantId(0),
            "view",
            1,
            1.0,
            Some(at),
            Concern::Local,
        )
        .map(drop)
        .map_err(|e| e.to_string())
}

fn failover_once() -> Duration {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    wait_until(PATIENCE, "node 0 leads", || {
        committed_leader(&mut cluster, &[0, 1, 2], usize::MAX)
            .filter(|&l| l == 0)
            .ok_or_else(|| "not yet".to_string())
    });
    let killed = Instant::now();
    cluster.kill9(0);
    loop {
        if let Some(l) = committed_leader(&mut cluster, &[1, 2], 0)
            && write_once(&mut cluster, l).is_ok()
        {
            return killed.elapsed();
        }
        assert!(killed.elapsed() < PATIENCE, "no failover");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn restart_once() -> Duration {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    let killed = Instant::now();
    cluster.kill9(0);
    cluster.restart(0);
    wait_until(PATIENCE, "the restarted node takes a write", || {
        write_once(&mut cluster, 0)
    });
    killed.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn failover_after_kill9() {
    let mut failover: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let took = failover_once();
            eprintln!("  one failover: {:.0} ms", took.as_secs_f64() * 1e3);
            took
        })
        .collect();
    let mut restart: Vec<Duration> = (0..RUNS / 4).map(|_| restart_once()).collect();
    failover.sort();
    restart.sort();
    let (p50, p99) = (percentile(&failover, 0.5), percentile(&failover, 0.99));
    let base = percentile(&restart, 0.5);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    println!(
        "failover, kill -9 to the new leader's first write, {RUNS} runs: p50 {:.0} ms, p99 {:.0} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!(
        "baseline, kill -9 then restart to its first write, {} runs: p50 {:.0} ms; failover p50 is {:.2}x of it",
        restart.len(),
        base.as_secs_f64() * 1e3,
        p50.as_secs_f64() / base.as_secs_f64()
    );
    println!(
        "goal 1000 ms: p50 {:.2}x, p99 {:.2}x of it",
        p50.as_secs_f64(),
        p99.as_secs_f64()
    );
}
