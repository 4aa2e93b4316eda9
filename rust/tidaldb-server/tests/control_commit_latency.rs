//! A benchmark, not a test (it is `#[ignore]`d; `make bench` runs it): how long an
//! operator's command takes to commit through the replicated control plane, on loopback,
//! with the default timings (a 20 ms Raft tick).
//!
//! Each sample is one `Client::admin` call, from sending it to the answer that it has
//! been committed by a majority of voters and applied on the node asked. The commands
//! alternate between draining and rejoining a region whose host does not lead, so no
//! leadership moves. Asked of the Raft leader, and of a follower voter (which forwards
//! the command to the leader). The baseline, in the same run, is a read of the node's
//! control status over the same connection: the cost of the round trip alone.
//!
//! `cargo test --release -p tidaldb-server --test control_commit_latency -- --ignored --nocapture`

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cluster, PATIENCE, Spec, wait_until};
use tidaldb::runtime::net::proto::AdminOp;

const SAMPLES: usize = 200;

fn raft_leader(cluster: &mut Cluster) -> Result<usize, String> {
    let json = cluster
        .client(0)
        .control_json()
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let leader = v["raft_leader"].as_u64().ok_or("no Raft leader yet")? as usize;
    let group = v["groups"][0]["leader"]
        .as_u64()
        .ok_or("no group leader yet")?;
    (group == 0)
        .then_some(leader)
        .ok_or_else(|| "node 0 does not lead yet".into())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `SAMPLES` commits asked of node `asked`, sorted.
fn commits(cluster: &mut Cluster, asked: usize) -> Vec<Duration> {
    let mut took: Vec<Duration> = (0..SAMPLES)
        .map(|i| {
            let region = "r2".to_string();
            let op = if i % 2 == 0 {
                AdminOp::Drain { region }
            } else {
                AdminOp::Rejoin { region }
            };
            let start = Instant::now();
            cluster
                .client(asked)
                .admin(op)
                .expect("the command commits");
            start.elapsed()
        })
        .collect();
    took.sort();
    took
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn control_plane_commit_latency() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    let leader = wait_until(PATIENCE, "a Raft leader and node 0 leading", || {
        raft_leader(&mut cluster)
    });
    let follower = (0..3).find(|&i| i != leader && i != 2).unwrap_or(2);
    let mut reads: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            cluster.client(leader).control_json().expect("status");
            start.elapsed()
        })
        .collect();
    reads.sort();
    let at_leader = commits(&mut cluster, leader);
    let at_follower = commits(&mut cluster, follower);
    let base = percentile(&reads, 0.5);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    println!(
        "baseline, a status read on loopback, {SAMPLES} samples: p50 {:.2} ms, p99 {:.2} ms",
        ms(base),
        ms(percentile(&reads, 0.99))
    );
    for (who, took) in [
        ("the Raft leader", &at_leader),
        ("a follower voter", &at_follower),
    ] {
        let (p50, p99) = (percentile(took, 0.5), percentile(took, 0.99));
        println!(
            "commit asked of {who}, {SAMPLES} commands: p50 {:.2} ms, p99 {:.2} ms; p50 is {:.1}x the baseline",
            ms(p50),
            ms(p99),
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }
}
