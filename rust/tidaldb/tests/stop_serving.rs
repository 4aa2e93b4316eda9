//! A replica that stops serving for good, as a migration's source does before it is
//! collected: `TidalDb::stop_serving` returns a version vector, and the migration removes
//! the source once the target holds it. That is only safe if no write the source
//! acknowledged lies beyond it, however the writes race the order, and if a restart does
//! not bring the source back to taking writes. The oracle is the set of writes the writer
//! threads saw acknowledged. The order itself is the sans-IO node's, so the simulator and
//! the tokio runtime carry it out alike; the first test drives two nodes by hand.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{T0, catch_up, client_write, sans_io_node, ts};
use tidaldb::node::{ControlCommand, Input, Outputs};
use tidaldb::{EntityId, EventId, NodeId, Schema, TidalDb, TidalError};

const WRITERS: u64 = 2;
const BATCH: usize = 16;

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(3600))
        .add()
        .build()
        .expect("valid schema")
}

#[test]
fn a_stopped_node_refuses_clients_but_still_replicates_and_rejoins_stopped() {
    let schema = std::sync::Arc::new(schema());
    let (mut source, mut target) = (
        sans_io_node(1, &[2], schema.clone()),
        sans_io_node(2, &[1], schema.clone()),
    );
    client_write(&mut source, 7).expect("serving");
    let mut out = Outputs::default();
    source.handle(
        ts(T0),
        Input::Control(ControlCommand::StopServing),
        &mut out,
    );
    let stored = out
        .hard_state
        .expect("the order is stored before anything else");
    assert!(stored.stopped_serving);
    let refused = client_write(&mut source, 8).unwrap_err();
    assert!(matches!(refused, TidalError::Unavailable(_)), "{refused:?}");
    assert_eq!(source.ledger().version_vector().get(NodeId(1)), 1);

    // The target still gets the source's write, and the source the target's.
    client_write(&mut target, 9).expect("the target serves");
    catch_up(&mut target, &mut source);
    catch_up(&mut source, &mut target);
    assert_eq!(target.ledger().version_vector().sum(), 2);
    assert_eq!(
        source.ledger().version_vector(),
        target.ledger().version_vector()
    );

    // A restart rejoins with the stored state, and refuses as before.
    let mut restarted = sans_io_node(1, &[2], schema);
    restarted.handle(ts(T0), Input::Rejoin(Some(stored)), &mut Outputs::default());
    assert!(client_write(&mut restarted, 8).is_err());
}

/// Far more writes than a writer makes before the order: it is refused long before.
const AT_MOST: u64 = 5_000_000;

/// What one writer thread saw acknowledged before its first refusal, if it was refused.
struct Acknowledged {
    ids: Vec<EventId>,
    batched_events: u64,
    refusal: Option<TidalError>,
}

/// Writes until refused (or `AT_MOST` writes): single writes, and every eighth time a
/// batch of `BATCH`.
fn write_until_refused(db: &TidalDb, writer: u64, written: &AtomicU64) -> Acknowledged {
    let mut acknowledged = Acknowledged {
        ids: Vec::new(),
        batched_events: 0,
        refusal: None,
    };
    let items: Vec<EntityId> = (0..BATCH as u64)
        .map(|i| EntityId(writer * 100 + i))
        .collect();
    for i in 0..AT_MOST {
        let refused = if i % 8 == 7 {
            match db.signal_batch("view", &items, &[1.0; BATCH], None) {
                Ok(n) => {
                    acknowledged.batched_events += n as u64;
                    None
                }
                Err(e) => Some(e),
            }
        } else {
            match db.signal("view", EntityId(writer * 100 + i % 50), 1.0, None) {
                Ok(id) => {
                    acknowledged.ids.push(id);
                    None
                }
                Err(e) => Some(e),
            }
        };
        if refused.is_some() {
            acknowledged.refusal = refused;
            break;
        }
        written.fetch_add(1, Ordering::Relaxed);
    }
    acknowledged
}

#[test]
fn no_write_is_acknowledged_beyond_the_vector_stop_serving_returns() {
    // Two threads for bulk writes, so a batch may be applied on several while it races.
    let db = common::ephemeral_db(schema(), 2);
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (db, written) = (db.clone(), written.clone());
            thread::spawn(move || write_until_refused(&db, w, &written))
        })
        .collect();
    while written.load(Ordering::Relaxed) < 2_000 {
        thread::yield_now();
    }
    let stopped_at = db.stop_serving(NodeId(9)).expect("stops");
    let seen: Vec<Acknowledged> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    let origin = seen
        .iter()
        .find_map(|a| a.ids.first())
        .expect("some single write was acknowledged")
        .origin;
    let acknowledged: u64 = seen
        .iter()
        .map(|a| a.ids.len() as u64 + a.batched_events)
        .sum();
    for a in &seen {
        assert!(
            matches!(a.refusal, Some(TidalError::Unavailable(_))),
            "refused as unavailable, so clients fail over: {:?}",
            a.refusal
        );
        for id in &a.ids {
            assert!(
                id.seq <= stopped_at.get(origin),
                "{id:?} beyond {stopped_at:?}"
            );
        }
    }
    // Every event of this origin is an acknowledged write (no caps, so the hand-over
    // adds none), and none came after the vector.
    assert_eq!(stopped_at.get(origin), acknowledged);
    assert_eq!(db.version_vector().unwrap(), stopped_at);
    assert_eq!(db.events_applied().unwrap(), acknowledged);
}

#[test]
fn a_reopened_replica_keeps_refusing_writes_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let open = || common::open_in(dir.path(), schema());
    let db = open();
    let items: Vec<EntityId> = (0..10).map(EntityId).collect();
    db.signal_batch("view", &items, &[2.0; 10], None).unwrap();
    let stopped_at = db.stop_serving(NodeId(9)).unwrap();
    assert_eq!(stopped_at.sum(), 10);
    assert_eq!(
        db.stop_serving(NodeId(9)).unwrap(),
        stopped_at,
        "repeatable"
    );
    db.close().unwrap();

    let db = open();
    let single = db.signal("view", EntityId(1), 1.0, None).unwrap_err();
    assert!(matches!(single, TidalError::Unavailable(_)), "{single:?}");
    let batch = db
        .signal_batch("view", &items, &[1.0; 10], None)
        .unwrap_err();
    assert!(matches!(batch, TidalError::Unavailable(_)), "{batch:?}");
    assert_eq!(db.version_vector().unwrap(), stopped_at);
    let score = db.read_decay_score(EntityId(3), "view").unwrap();
    assert!(score > 1.9 && score <= 2.0, "reads still served: {score}");
}
