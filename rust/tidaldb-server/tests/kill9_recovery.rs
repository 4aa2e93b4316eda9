//! Processes killed with SIGKILL lose no acknowledged write: a node killed in the middle of
//! ingest catches up after its restart, and writes acknowledged as `Replicated(1)` outlive
//! the only node they were written to. A SIGTERM stops a node cleanly, and its restart
//! serves the same bits.

mod support;

use std::sync::atomic::Ordering;

use support::ingest::{Progress, ingest};
use support::model::{HOUR_NS, Model};
use support::{Cluster, Spec, now_ns, write_counts, write_views};
use tidaldb::runtime::net::proto::Concern;

#[test]
fn a_node_killed_mid_ingest_restarts_and_holds_every_acknowledged_write() {
    let mut cluster = Cluster::start(Spec::tls(3));
    let at = now_ns();
    let progress = Progress::default();
    let writer = cluster.client_of(&[0]);
    let items: Vec<u64> = (1..=8).collect();
    let ingested = std::thread::scope(|s| {
        let running = s.spawn(|| ingest(writer, &progress, &items, at, Concern::Local));
        for _ in 0..3 {
            progress.await_more(20);
            cluster.kill9(1);
            progress.await_more(20);
            cluster.restart(1);
        }
        progress.await_more(20);
        progress.stop.store(true, Ordering::SeqCst);
        running.join().expect("the writer thread")
    });
    assert!(
        ingested.failures.is_empty(),
        "writes to node 0, which stayed up, failed: {:?}",
        ingested.failures
    );
    assert!(ingested.model.total_counts() >= 140 * items.len() as u64);
    cluster.await_converged(&ingested.model, at, &[0, 1, 2]);
}

#[test]
fn replicated_writes_outlive_the_only_node_they_were_written_to() {
    let mut cluster = Cluster::start(Spec::tls(3));
    let at = now_ns();
    let mut model = Model::default();
    let mut client = cluster.client_of(&[2]);
    for batch in 0..40i64 {
        let items: Vec<u64> = (1..=5).map(|e| e + (batch as u64 % 3)).collect();
        let ts: Vec<i64> = items
            .iter()
            .map(|e| at - HOUR_NS + batch * 60_000_000_000 + *e as i64)
            .collect();
        let weights = vec![1.5; items.len()];
        write_views(
            &mut client,
            &mut model,
            &items,
            &weights,
            &ts,
            Concern::Replicated(1),
        )
        .expect("a replicated write");
        write_counts(&mut client, &mut model, &items, Concern::Replicated(1))
            .expect("a replicated write");
    }
    // Killed the moment the last write is acknowledged: some writes may have reached only
    // one of the other two nodes, which must then pass them on.
    cluster.kill9(2);
    cluster.await_converged(&model, at, &[0, 1]);
}

#[test]
fn a_sigterm_stops_a_node_cleanly_and_its_restart_serves_the_same_bits() {
    let mut cluster = Cluster::start(Spec::tls(3));
    let at = now_ns();
    let mut model = Model::default();
    let items = [3u64, 5, 7];
    let ts = [at - HOUR_NS, at - HOUR_NS / 2, at - HOUR_NS / 3];
    for node in 0..3 {
        let client = cluster.client(node);
        write_views(
            client,
            &mut model,
            &items,
            &[1.0, 2.0, 3.0],
            &ts,
            Concern::Local,
        )
        .expect("write");
        write_counts(client, &mut model, &items, Concern::Local).expect("write");
    }
    let before = cluster.await_converged(&model, at, &[0, 1, 2]);

    let status = cluster.sigterm(1);
    assert!(status.success(), "SIGTERM exit: {status}");
    let log = cluster.node(1).log_text();
    assert!(log.contains("shutting down"), "no shutdown line:\n{log}");
    assert!(log.contains("tidaldb stopped"), "no stop line:\n{log}");

    // Written while node 1 is down; it must catch up after the restart.
    write_counts(cluster.client(0), &mut model, &items, Concern::Local).expect("write");
    cluster.restart(1);
    let after = cluster.await_converged(&model, at, &[0, 1, 2]);
    assert_eq!(
        before[1].view_bits, after[1].view_bits,
        "node 1's views changed"
    );
}
