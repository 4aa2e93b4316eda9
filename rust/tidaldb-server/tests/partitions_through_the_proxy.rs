//! Faults injected by the proxies on the peer links: a node cut off in both directions
//! leaves the rest serving degraded reads, both sides keep taking writes, hides and
//! unhides, and after the heal every node holds the model's scores and hidden flags. A
//! one-way cut and a slow link converge too.

mod support;

use std::time::Duration;

use support::model::{HOUR_NS, Model, TENANT};
use support::{Cluster, Spec, now_ns, set_hidden, write_counts, write_views};
use tidaldb::runtime::net::proto::Concern;

/// Writes one round of views and counts through `node`; `round` spreads the timestamps.
fn write_round(cluster: &mut Cluster, model: &mut Model, node: usize, round: i64, at: i64) {
    let items = [1u64, 2, 3, 4];
    let ts: Vec<i64> = items
        .iter()
        .map(|e| at - HOUR_NS + round * 30_000_000_000 + node as i64 * 1_000 + *e as i64)
        .collect();
    let weights: Vec<f64> = items
        .iter()
        .map(|e| *e as f64 * 0.5 + node as f64)
        .collect();
    let client = cluster.client(node);
    write_views(client, model, &items, &weights, &ts, Concern::Local).expect("write views");
    write_counts(client, model, &items[..node + 1], Concern::Local).expect("write counts");
}

#[test]
fn a_full_partition_degrades_reads_and_heals_to_the_model() {
    let mut cluster = Cluster::start(Spec::tls(3));
    let at = now_ns();
    let mut model = Model::default();
    // Hidden everywhere before the partition; the cut-off side unhides them.
    let (q1, q2) = ((1001, 11), (1001, 12));
    // Hidden on the majority side during the partition.
    let (p1, p2) = ((1002, 21), (1002, 22));
    // Hidden on the cut-off side only.
    let s = (1004, 41);
    // Never touched.
    let untouched = (1005, 51);
    model.hidden.insert(untouched, false);
    set_hidden(cluster.client(0), &mut model, q1, true).expect("hide");
    set_hidden(cluster.client(0), &mut model, q2, true).expect("hide");
    write_round(&mut cluster, &mut model, 0, 0, at);
    cluster.await_converged(&model, at, &[0, 1, 2]);

    cluster.isolate(2);
    let (degraded, unreachable) = cluster.await_unreachable(0, &[2]);
    assert!(degraded);
    assert_eq!(unreachable, vec![tidaldb::NodeId(2)]);
    cluster.await_unreachable(2, &[0, 1]);

    for round in 1..4 {
        for node in 0..3 {
            write_round(&mut cluster, &mut model, node, round, at);
        }
    }
    set_hidden(cluster.client(0), &mut model, p1, true).expect("hide");
    set_hidden(cluster.client(1), &mut model, p2, true).expect("hide");
    set_hidden(cluster.client(2), &mut model, q1, false).expect("unhide");
    set_hidden(cluster.client(2), &mut model, q2, false).expect("unhide");
    set_hidden(cluster.client(2), &mut model, s, true).expect("hide");
    // Each side sees only its own changes while the partition lasts.
    assert!(
        cluster
            .client(0)
            .is_hidden(TENANT, q1.0, q1.1)
            .expect("read")
    );
    assert!(!cluster.client(0).is_hidden(TENANT, s.0, s.1).expect("read"));
    assert!(
        !cluster
            .client(2)
            .is_hidden(TENANT, p1.0, p1.1)
            .expect("read")
    );

    cluster.heal();
    let seen = cluster.await_converged(&model, at, &[0, 1, 2]);
    let expected = [
        (q1, false),
        (q2, false),
        (p1, true),
        (p2, true),
        (s, true),
        (untouched, false),
    ];
    for obs in &seen {
        for (pair, hidden) in expected {
            assert!(
                obs.hidden.contains(&(pair, hidden)),
                "{pair:?}: {:?}",
                obs.hidden
            );
        }
    }
    let (degraded, unreachable) = cluster.await_unreachable(0, &[]);
    assert!(!degraded && unreachable.is_empty());
}

#[test]
fn a_one_way_cut_and_a_slow_link_still_converge() {
    let mut cluster = Cluster::start(Spec::tls(3));
    let at = now_ns();
    let mut model = Model::default();

    // 0→1 only: node 1 stops hearing node 0, while node 0 still hears node 1.
    cluster.link(0, 1).cut();
    cluster.await_unreachable(1, &[0]);
    cluster.await_unreachable(0, &[]);
    for round in 0..3 {
        for node in 0..3 {
            write_round(&mut cluster, &mut model, node, round, at);
        }
    }
    cluster.link(0, 1).restore();
    cluster.await_converged(&model, at, &[0, 1, 2]);
    cluster.await_unreachable(1, &[]);

    // 50 ms each way between nodes 0 and 2.
    cluster.link(0, 2).delay(Duration::from_millis(50));
    cluster.link(2, 0).delay(Duration::from_millis(50));
    for round in 3..6 {
        for node in [0, 2] {
            write_round(&mut cluster, &mut model, node, round, at);
        }
    }
    cluster.await_converged(&model, at, &[0, 1, 2]);
    cluster.heal();
}
