//! A client that knows every node keeps writing while the node it talks to is killed with
//! SIGKILL: it moves to another node, and the surviving nodes end up with every
//! acknowledged write, once. A write in flight when its node died fails with
//! `OutcomeUnknown` instead of being retried elsewhere, and counts at most once.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::ingest::{Progress, ingest};
use support::model::Model;
use support::{Cluster, Spec, now_ns, write_counts};
use tidaldb::TidalError;
use tidaldb::runtime::net::proto::Concern;

#[test]
fn writes_continue_after_the_clients_node_is_killed_and_count_once() {
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
    // Shown only when the test fails.
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
/// where `original_on` says, and is killed before it can acknowledge. `links` shapes the
/// network first: `(i, j, None)` cuts i→j, `(i, j, Some(d))` delays it. The client must
/// not retry the write on node 1, which has not seen it (node 1 would count it a second
/// time once the original reaches it): the call fails with `OutcomeUnknown`, the next call
/// goes to node 1, and every node counts the write at most once. With `restart`, node 0
/// comes back with the original in its log.
fn write_in_flight_when_its_node_dies(
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
        match writing.join().expect("the writer") {
            Err(TidalError::OutcomeUnknown(_)) => {}
            other => panic!("expected OutcomeUnknown, got {other:?}"),
        }
    });
    // The next call goes to another node, and is acknowledged there.
    let next = write_counts(&mut client, &mut model, &[item + 1], Concern::Replicated(1))
        .expect("the next write, on another node");
    assert_ne!(next.served.node, tidaldb::NodeId(0));
    if restart {
        cluster.restart(0);
        cluster.await_converged(&model, now_ns(), &[0, 1, 2]);
    } else {
        cluster.await_converged(&model, now_ns(), &[1, 2]);
    }
}

/// The original reached node 2 (node 0 hears node 2's acknowledgement a second late),
/// node 1 hears nothing.
#[test]
fn a_write_in_flight_counts_at_most_once_when_only_another_node_held_it() {
    write_in_flight_when_its_node_dies(
        &[
            (0, 1, None),
            (2, 1, None),
            (2, 0, Some(Duration::from_secs(1))),
        ],
        2,
        false,
    );
}

/// The original never left node 0, which then restarts with it in its log.
#[test]
fn a_write_in_flight_counts_at_most_once_when_its_node_comes_back_with_it() {
    write_in_flight_when_its_node_dies(&[(0, 1, None), (0, 2, None), (2, 1, None)], 0, true);
}
