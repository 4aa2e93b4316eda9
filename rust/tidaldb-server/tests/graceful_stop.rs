//! A node stopped with SIGTERM goes without failing its clients: reads that were in flight
//! are answered (or refused untouched and answered by another node), and a client whose
//! node restarted while it was idle writes on a fresh connection instead of putting its
//! next write in doubt.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};

use support::model::{Model, TENANT};
use support::{Cluster, Spec, now_ns, write_counts};
use tidaldb::runtime::net::proto::Concern;

#[test]
fn reads_in_flight_while_a_node_stops_gracefully_are_all_answered() {
    let mut cluster = Cluster::start(Spec::tls(2));
    let mut model = Model::default();
    let items: Vec<u64> = (1..=16).collect();
    write_counts(
        cluster.client(0),
        &mut model,
        &items,
        Concern::Replicated(1),
    )
    .expect("the first write");
    let stopping = AtomicBool::new(false);
    let mut reader = cluster.client_of(&[0, 1]);
    let (answered, failures) = std::thread::scope(|s| {
        let reading = s.spawn(|| {
            let (mut answered, mut failures) = (0u64, Vec::new());
            // Reads until the stop has happened and a few more reads have gone through.
            let mut after_stop = 0;
            while after_stop < 200 {
                match reader.scores(TENANT, "count", items.clone(), None) {
                    Ok(_) => answered += 1,
                    Err(e) => failures.push(e.to_string()),
                }
                if stopping.load(Ordering::SeqCst) {
                    after_stop += 1;
                }
            }
            (answered, failures)
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let status = cluster.sigterm(0);
        stopping.store(true, Ordering::SeqCst);
        assert!(status.success(), "a graceful stop exits 0, got {status}");
        reading.join().expect("the reader thread")
    });
    assert!(
        failures.is_empty(),
        "{} of {} reads failed while node 0 stopped: {failures:?}",
        failures.len(),
        answered + failures.len() as u64
    );
}

#[test]
fn a_client_whose_node_restarted_while_it_was_idle_writes_without_doubt() {
    let mut cluster = Cluster::start(Spec::tls(2));
    let mut model = Model::default();
    let mut client = cluster.client_of(&[0, 1]);
    assert_eq!(client.node(), Some(tidaldb::NodeId(0)));
    write_counts(&mut client, &mut model, &[5], Concern::Local).expect("before the restart");
    assert!(cluster.sigterm(0).success(), "a graceful stop exits 0");
    cluster.restart(0);
    // The client's connection to node 0 was closed by the stop. The write must not be sent
    // on it (that would end in OutcomeUnknown): it goes on a new connection and lands.
    let written = write_counts(&mut client, &mut model, &[5], Concern::Local);
    assert!(
        written.is_ok(),
        "the write after the restart failed: {written:?}"
    );
    let at = now_ns();
    cluster.await_converged(&model, at, &[0, 1]);
}
