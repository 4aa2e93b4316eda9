//! Section 2: replication lag under a steady write load, against the link latency.

use std::time::{Duration, Instant};

use tidaldb::node::{ClientOp, WriteAck, WriteConcern};
use tidaldb::schema::SignalIdx;
use tidaldb::sim::{ClusterConfig, LinkConfig, SimulatedCluster};
use tidaldb::{EntityId, NodeId, Timestamp};

use crate::common::{config, ms, percentile, virtual_ms};
use crate::{ENTITIES, REGIONS, Row, S0, row};

const LAG_STEPS: usize = 1_000;
const LAG_BATCH: usize = 250;
const LAG_STEP: Duration = Duration::from_millis(10);
const LAG_POLL: Duration = Duration::from_millis(1);
const LAG_LATENCY: Duration = Duration::from_millis(50);
const LAG_JITTER: Duration = Duration::from_millis(20);

struct LagRun {
    /// Virtual ms from write to apply, one entry per event, per follower (1 ms resolution).
    per_event: Vec<f64>,
    /// The control plane's `oldest_age` of each follower, one sample per fresh reading.
    control_age: Vec<f64>,
    /// The control plane's lag in events, same samples.
    control_events: Vec<f64>,
    /// Events written.
    written: u64,
}

fn lag(signal: SignalIdx) -> LagRun {
    let cluster = SimulatedCluster::build(ClusterConfig {
        links: LinkConfig {
            latency: LAG_LATENCY,
            jitter: LAG_JITTER,
            ..LinkConfig::default()
        },
        ..config(2)
    })
    .expect("the cluster builds");
    cluster.run_for(Duration::from_secs(1));
    let leader = cluster.leader_of(S0).expect("a leader");
    let followers: Vec<NodeId> = REGIONS[1..]
        .iter()
        .map(|r| cluster.node_id(*r, S0).expect("a replica"))
        .collect();
    // (last seq of the batch, virtual time it was written)
    let mut batches: Vec<(u64, Timestamp)> = Vec::with_capacity(LAG_STEPS);
    let mut next = vec![0usize; followers.len()];
    let mut last_reading = vec![0i64; followers.len()];
    let mut run = LagRun {
        per_event: Vec::with_capacity(LAG_STEPS * LAG_BATCH * followers.len()),
        control_age: Vec::new(),
        control_events: Vec::new(),
        written: 0,
    };
    let poll = |run: &mut LagRun, batches: &[(u64, Timestamp)], next: &mut [usize]| {
        let now = cluster.now();
        for (k, f) in followers.iter().enumerate() {
            let applied = cluster
                .handle(*f)
                .version_vector()
                .expect("followers stay up")
                .get(leader);
            while next[k] < batches.len() && batches[next[k]].0 <= applied {
                let lag = virtual_ms(batches[next[k]].1, now);
                run.per_event.extend(std::iter::repeat_n(lag, LAG_BATCH));
                next[k] += 1;
            }
        }
    };
    let mut entity = 0u64;
    for _ in 0..LAG_STEPS {
        let ops: Vec<ClientOp> = (0..LAG_BATCH)
            .map(|_| {
                entity = (entity + 7_919) % ENTITIES;
                ClientOp::Signal {
                    signal,
                    entity: EntityId(entity),
                    weight: 1.0,
                    ts: None,
                }
            })
            .collect();
        let at = cluster.now();
        let ack = cluster
            .submit(leader, &ops, WriteConcern::Local, None)
            .expect("the leader takes the batch");
        let WriteAck::Applied { first, count } = ack else {
            panic!("untagged writes are never duplicates")
        };
        batches.push((first.seq + count as u64 - 1, at));
        run.written += count as u64;
        for _ in 0..(LAG_STEP.as_nanos() / LAG_POLL.as_nanos()) {
            cluster.run_for(LAG_POLL);
            poll(&mut run, &batches, &mut next);
        }
        let control = cluster.control_plane();
        for (k, f) in followers.iter().enumerate() {
            let reading = control.lag_for(*f);
            if reading.measured_at_ns != last_reading[k] {
                last_reading[k] = reading.measured_at_ns;
                run.control_age.push(ms(reading.oldest_age));
                run.control_events.push(reading.events as f64);
            }
        }
    }
    // Let the tail arrive.
    let deadline = cluster.now().as_nanos() + 5_000_000_000;
    while next.iter().any(|n| *n < batches.len()) && cluster.now().as_nanos() < deadline {
        cluster.run_for(LAG_POLL);
        poll(&mut run, &batches, &mut next);
    }
    assert!(
        next.iter().all(|n| *n == batches.len()),
        "every follower applies every batch"
    );
    run
}

pub(super) fn section_lag(view: SignalIdx, rows: &mut Vec<Row>) {
    let t = Instant::now();
    let l = lag(view);
    let mut per_event = l.per_event;
    per_event.sort_by(f64::total_cmp);
    let mut control_age = l.control_age;
    control_age.sort_by(f64::total_cmp);
    let mut control_events = l.control_events;
    control_events.sort_by(f64::total_cmp);
    let latency = ms(LAG_LATENCY);
    let (p50, p99, max) = (
        percentile(&per_event, 50.0),
        percentile(&per_event, 99.0),
        percentile(&per_event, 100.0),
    );
    let (c50, c99) = (
        percentile(&control_age, 50.0),
        percentile(&control_age, 99.0),
    );
    println!(
        "\n2. lag: {} signals at 25K/s over {} s of virtual time, links {} ms ± {} ms ({:.1} s wall)",
        l.written,
        LAG_STEPS as f64 * LAG_STEP.as_secs_f64(),
        latency,
        ms(LAG_JITTER),
        t.elapsed().as_secs_f64()
    );
    println!(
        "   write → applied on each follower (1 ms resolution): p50 {p50:.0} ms, p99 {p99:.0} ms, \
         max {max:.0} ms; baseline link latency {latency:.0} ms: p50 {:.2} x, p99 {:.2} x",
        p50 / latency,
        p99 / latency
    );
    println!(
        "   control plane lag_for(follower), {} fresh readings: oldest_age p50 {c50:.0} ms, \
         p99 {c99:.0} ms, max {:.0} ms; events behind p50 {:.0}, p99 {:.0}, max {:.0}",
        control_age.len(),
        percentile(&control_age, 100.0),
        percentile(&control_events, 50.0),
        percentile(&control_events, 99.0),
        percentile(&control_events, 100.0)
    );
    rows.push(row(
        "lag p50, write → applied on follower (virtual)",
        format!("{p50:.0} ms"),
        format!("link latency {latency:.0} ms"),
        format!("{:.2}×", p50 / latency),
        "",
        None,
    ));
    rows.push(row(
        "lag p99, write → applied on follower (virtual)",
        format!("{p99:.0} ms"),
        format!("link latency {latency:.0} ms"),
        format!("{:.2}×", p99 / latency),
        "",
        None,
    ));
    rows.push(row(
        "lag p50 / p99, control plane `lag_for(..).oldest_age`",
        format!("{c50:.0} ms / {c99:.0} ms"),
        format!("link latency {latency:.0} ms"),
        format!("{:.1}× / {:.1}×", c50 / latency, c99 / latency),
        "",
        None,
    ));
}
