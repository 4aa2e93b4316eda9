//! A client that knows every node keeps writing while the node it talks to is killed with
//! SIGKILL: it moves to another node, and the surviving nodes end up with every
//! acknowledged write exactly once (retries carry the original's idempotency key).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::ingest::{Progress, ingest};
use support::model::Model;
use support::{Cluster, Spec, now_ns, write_counts};
use tidaldb::runtime::net::proto::Concern;

#[test]
fn writes_continue_after_the_clients_node_is_killed_and_count_exactly_once() {
    let mut cluster = Cluster::start(Spec::tls(3));
    let at = now_ns();
    let progress = Progress::default();
    let client = cluster.client_of(&[0, 1, 2]);
    let first = client.node().expect("connected").0;
    let items: Vec<u64> = (1..=4).collect();
    let (victim, ingested) = std::thread::scope(|s| {
        let running = s.spawn(|| ingest(client, &progress, &items, at, Concern::Replicated(1)));
        progress.await_more(30);
        let victim = progress.node.load(Ordering::SeqCst);
        assert_eq!(victim, first, "the client moved before any node failed");
        cluster.kill9(usize::from(victim));
        progress.await_more(30);
        progress.stop.store(true, Ordering::SeqCst);
        (victim, running.join().expect("the writer thread"))
    });
    let now_on = progress.node.load(Ordering::SeqCst);
    assert_ne!(now_on, victim, "the client still reports the killed node");
    // Shown only when the test fails: a count above the model is a write counted twice.
    eprintln!(
        "killed node {victim}; {} calls failed: {:?}; {} acknowledged as duplicates",
        ingested.failures.len(),
        ingested.failures,
        ingested.duplicates
    );
    let survivors: Vec<usize> = (0..3).filter(|&n| n != usize::from(victim)).collect();
    cluster.await_converged(&ingested.model, at, &survivors);
}

/// Node 0 takes a `Replicated(1)` write from a client that knows every node, holds it
/// where `original_on` says, and is killed before it can acknowledge; the client retries on
/// node 1, which has not seen the original. `links` shapes the network first: `(i, j,
/// None)` cuts i→j, `(i, j, Some(d))` delays it. With `restart`, node 0 comes back with
/// the original in its log. Every node must then count the write once.
fn retry_after_failover(
    links: &[(usize, usize, Option<Duration>)],
    original_on: usize,
    restart: bool,
) {
    let mut cluster = Cluster::start(Spec::tls(3));
    let mut model = Model::default();
    for &(i, j, delay) in links {
        match delay {
            None => cluster.link(i, j).cut(),
            Some(d) => cluster.link(i, j).delay(d),
        }
    }
    // A delayed link is silent for its delay, then delivers again.
    if let Some(d) = links.iter().filter_map(|l| l.2).max() {
        std::thread::sleep(d + Duration::from_millis(200));
    }
    cluster.await_unreachable(0, &[]);
    cluster.await_unreachable(1, &[0, 2]);
    let mut client = cluster.client_of(&[0, 1, 2]);
    assert_eq!(client.node(), Some(tidaldb::NodeId(0)));
    let item = 7u64;
    std::thread::scope(|s| {
        let writing =
            s.spawn(|| write_counts(&mut client, &mut model, &[item], Concern::Replicated(1)));
        let mut held = Model::default();
        held.wrote_counts(&[item]);
        cluster.await_converged(&held, now_ns(), &[original_on]);
        cluster.kill9(0);
        cluster.heal();
        let written = writing
            .join()
            .expect("the writer")
            .expect("the retry is acknowledged");
        assert_eq!(
            written.served,
            tidaldb::NodeId(1),
            "the retry went to node 1"
        );
    });
    if restart {
        cluster.restart(0);
        cluster.await_converged(&model, now_ns(), &[0, 1, 2]);
    } else {
        cluster.await_converged(&model, now_ns(), &[1, 2]);
    }
}

/// The race of the test above, made deterministic: the original reached node 2 (node 0
/// hears node 2's acknowledgement a second late), node 1 hears nothing.
#[test]
#[ignore = "known bug, reproduced: a node checks an idempotency key only against what it \
            holds, so a retry on a node the original has not reached is applied again and \
            the write counts twice (run with --ignored)"]
fn a_retry_counts_once_when_only_another_node_held_the_original() {
    retry_after_failover(
        &[
            (0, 1, None),
            (2, 1, None),
            (2, 0, Some(Duration::from_secs(1))),
        ],
        2,
        false,
    );
}

/// The same when the original never left node 0, which then restarts with it in its log.
#[test]
#[ignore = "known bug, reproduced: the unacknowledged original comes back from the killed \
            node's log after its restart, beside the retry (run with --ignored)"]
fn a_retry_counts_once_when_the_killed_node_comes_back_with_the_original() {
    retry_after_failover(&[(0, 1, None), (0, 2, None), (2, 1, None)], 0, true);
}
