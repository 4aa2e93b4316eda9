//! Failover and terms.
//!
//! Here: a runtime replica restarted from its files rejoins as a simulated one does: in the
//! last term it knew, with the membership it last had (which may differ from its
//! configuration, once a peer joined or left), as a follower — and a message from an
//! earlier term is fenced off afterwards. `promotion`: whom the control plane promotes on
//! the simulator, and pushes refused by a new term.

use std::time::{Duration, Instant};

mod common;
#[path = "failover/promotion.rs"]
mod promotion;
use common::runtime_replica_config;

use tidaldb::node::{ControlCommand, HardState, Message, NodeRole, PeerAddr};
use tidaldb::runtime::{InProcessTransportFactory, Inbox};
use tidaldb::{NodeId, RegionId, Schema, TidalDb, VersionVector};

fn schema() -> Schema {
    common::view_signal(Duration::from_secs(3600))
        .add()
        .build()
        .expect("valid schema")
}

fn open(net: &InProcessTransportFactory, dir: &std::path::Path, id: u16) -> TidalDb {
    let (transport, inbox) = net.connect(NodeId(id));
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .with_cluster(runtime_replica_config(id))
        .with_transport(std::sync::Arc::new(transport), inbox)
        .open()
        .expect("open replica")
}

/// The first message from `inbox` that `pick` accepts, within a bound.
async fn receive(inbox: &mut Inbox, pick: impl Fn(&Message) -> bool) -> Option<Message> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await {
            Ok(Some((_, msg))) if pick(&msg) => return Some(msg),
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => return None,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_keeps_its_term_and_membership_and_fences_stale_terms() {
    let net = InProcessTransportFactory::new();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&net, dir.path(), 0);
    assert_eq!(db.role().unwrap(), NodeRole::Leader, "configured to lead");

    // The control plane moves the group to term 3 and a migration adds node 7.
    db.apply_control(ControlCommand::SetRole {
        term: 3,
        role: NodeRole::Leader,
    })
    .unwrap();
    let newcomer = PeerAddr::new(NodeId(7), RegionId(3));
    db.apply_control(ControlCommand::AddPeer(newcomer)).unwrap();
    db.apply_control(ControlCommand::RemovePeer(NodeId(2)))
        .unwrap();
    let expected = HardState {
        term: 3,
        peers: vec![PeerAddr::new(NodeId(1), RegionId(1)), newcomer],
        stopped_serving: false,
    };
    assert_eq!(db.hard_state().unwrap(), expected);
    db.close().unwrap();
    drop(db);

    // Reopened with its original configuration: term 0, peers 1 and 2, leader.
    let db = open(&net, dir.path(), 0);
    assert_eq!(
        db.hard_state().unwrap(),
        expected,
        "the stored term and membership win over the configuration"
    );
    assert_eq!(
        db.role().unwrap(),
        NodeRole::Follower,
        "a restarted replica waits for the control plane to make it lead again"
    );

    // Node 1, still in term 2, speaks to it: the reply is a fence naming term 3.
    let (peer, mut peer_inbox) = net.connect(NodeId(1));
    use tidaldb::runtime::Transport;
    peer.send(
        NodeId(0),
        Message::Heartbeat {
            term: 2,
            vv: VersionVector::new(),
            role: NodeRole::Leader,
        },
    );
    let fence = receive(&mut peer_inbox, |m| matches!(m, Message::Fenced { .. })).await;
    assert_eq!(fence, Some(Message::Fenced { term: 3 }));
    db.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_hard_state_refuses_to_open() {
    let net = InProcessTransportFactory::new();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&net, dir.path(), 1);
    db.apply_control(ControlCommand::SetRole {
        term: 5,
        role: NodeRole::Follower,
    })
    .unwrap();
    db.close().unwrap();
    drop(db);
    let file = tidaldb::runtime::default_wal_dir(dir.path()).join("HARDSTATE");
    let mut bytes = std::fs::read(&file).expect("the term was stored");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let (transport, inbox) = net.connect(NodeId(1));
    let reopened = TidalDb::builder()
        .with_data_dir(dir.path())
        .with_schema(schema())
        .with_cluster(runtime_replica_config(1))
        .with_transport(std::sync::Arc::new(transport), inbox)
        .open();
    assert!(
        matches!(reopened, Err(tidaldb::TidalError::Corruption { .. })),
        "a damaged term must not be trusted: {reopened:?}"
    );
}
