//! A replica id comes back: a tenant that migrated away from a process and later returns
//! gets a new, empty replica there with the old replica's id, while its peers still hold
//! the events the old one originated. Were the new replica to write before it holds them,
//! its events would take their ids: a peer would drop each as a duplicate, and ship it
//! nothing more of that id, since it counts those ids as held. Driven by hand on the
//! sans-IO node, which both drivers host; the server opens a migration's target with
//! `own_history_from` naming the migration's source, which holds all the old replica had.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{T0, catch_up, client_write, deliver, sans_io_node, ts};
use tidaldb::ledger::Ledger;
use tidaldb::node::{ControlCommand, Input, Node, NodeConfig, NodeRole, Outputs, PeerAddr};
use tidaldb::{EventId, NodeId, RegionId, Schema, TidalError};

const RETURNING: u16 = 0;
const STAYING: u16 = 1;

fn schema() -> Arc<Schema> {
    Arc::new(common::hourly_view_schema())
}

/// The old replica wrote three events, the staying one holds them, and the old one left
/// the group and came back, as two migrations leave and re-add it.
fn staying_with_three_old_events() -> Node {
    let mut old = sans_io_node(RETURNING, &[STAYING], schema());
    let mut staying = sans_io_node(STAYING, &[RETURNING], schema());
    for entity in 0..3 {
        client_write(&mut old, entity).unwrap();
    }
    catch_up(&mut staying, &mut old);
    assert_eq!(staying.ledger().version_vector().get(NodeId(RETURNING)), 3);
    let back = PeerAddr::new(NodeId(RETURNING), RegionId(RETURNING));
    for order in [
        ControlCommand::RemovePeer(back.node),
        ControlCommand::AddPeer(back),
    ] {
        staying.handle(ts(T0), Input::Control(order), &mut Outputs::default());
    }
    staying
}

fn returning(own_history_from: Option<NodeId>) -> Node {
    let cfg = NodeConfig {
        id: NodeId(RETURNING),
        peers: vec![PeerAddr::new(NodeId(STAYING), RegionId(STAYING))],
        role: NodeRole::Follower,
        own_history_from,
        ..NodeConfig::default()
    };
    Node::new(cfg, Ledger::new(schema()), Default::default())
}

/// `from` sends a heartbeat (its durable version vector) to `to`.
fn heartbeat(from: &mut Node, to: &mut Node, later: Duration) {
    let mut out = Outputs::default();
    let at = ts(T0 + later.as_nanos() as i64);
    from.handle(at, Input::Tick, &mut out);
    deliver(&mut out, from, to, at);
}

#[test]
fn a_returning_id_writes_only_once_it_holds_what_it_originated_before() {
    let mut staying = staying_with_three_old_events();
    let mut back = returning(Some(NodeId(STAYING)));
    let refused = client_write(&mut back, 9).unwrap_err();
    assert!(matches!(refused, TidalError::Unavailable(_)), "{refused:?}");

    // Hearing the peer before holding its old events is not enough.
    heartbeat(&mut staying, &mut back, Duration::from_secs(1));
    assert!(client_write(&mut back, 9).is_err());

    catch_up(&mut back, &mut staying);
    heartbeat(&mut staying, &mut back, Duration::from_secs(2));
    let id = client_write(&mut back, 9).expect("caught up, it serves");
    assert_eq!(
        id,
        EventId {
            origin: NodeId(RETURNING),
            seq: 4
        }
    );
}

#[test]
fn unguarded_a_returning_id_would_reuse_an_old_event_id() {
    // Why the guard exists: an empty replica numbers its own events from 1.
    let _staying = staying_with_three_old_events();
    let mut back = returning(None);
    assert_eq!(client_write(&mut back, 9).unwrap().seq, 1);
}
