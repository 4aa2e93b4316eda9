//! Reconciliation: replicas exchange what the other lacks and apply it exactly once.
//!
//! Here, the sans-IO node driven by hand: term fencing, idempotent application of pushes,
//! and a reconciliation plan applied twice; no simulator, each message is delivered
//! explicitly. `beyond_retained_log` (on the simulator) and `runtime_beyond_retained_log`
//! (on the tokio runtime over real WAL files): catch-up after a partition in which replicas
//! wrote more than their in-memory log holds.

#[path = "reconciliation/beyond_retained_log.rs"]
mod beyond_retained_log;
mod common;
#[path = "reconciliation/runtime_beyond_retained_log.rs"]
mod runtime_beyond_retained_log;

use std::sync::Arc;
use std::time::Duration;

use common::{T0, deliver, ts};
use tidaldb::ledger::Ledger;
use tidaldb::node::{
    ClientOp, ControlCommand, Input, Message, Node, NodeRole, Outputs, ReconcilePlan,
    ReconciliationEngine, WriteAck, WriteConcern, WriteRequest,
};
use tidaldb::{EntityId, Schema, Timestamp};

fn schema() -> Arc<Schema> {
    Arc::new(
        common::view_signal(Duration::from_secs(3600))
            .add()
            .build()
            .unwrap(),
    )
}

fn node(id: u16, peers: &[u16]) -> Node {
    common::sans_io_node(id, peers, schema())
}

fn write(n: &mut Node, now: Timestamp, entity: u64, out: &mut Outputs) -> WriteAck {
    let op = ClientOp::Signal {
        signal: schema().resolve("view").unwrap(),
        entity: EntityId(entity),
        weight: 1.0,
        ts: None,
    };
    let req = WriteRequest {
        id: 1,
        ops: &[op],
        concern: WriteConcern::Local,
        tag: None,
    };
    n.handle(now, Input::Write(req), out);
    n.handle(now, Input::Synced, out);
    out.replies.pop().unwrap().1.unwrap()
}

#[test]
fn a_stale_term_is_fenced_and_its_events_are_applied_only_after_the_sender_catches_up() {
    let now = ts(T0);
    let mut a = node(0, &[1]);
    let mut b = node(1, &[0]);
    let mut out = Outputs::default();
    a.handle(
        now,
        Input::Control(ControlCommand::SetRole {
            term: 1,
            role: NodeRole::Leader,
        }),
        &mut out,
    );
    b.handle(
        now,
        Input::Control(ControlCommand::SetRole {
            term: 2,
            role: NodeRole::Leader,
        }),
        &mut out,
    );
    // Make both peers reachable, so pushes go out eagerly.
    a.handle(now, Input::Tick, &mut out);
    let mut hb = deliver(&mut out, &a, &mut b, now);
    b.handle(now, Input::Tick, &mut hb);
    let mut back = deliver(&mut hb, &b, &mut a, now);
    assert_eq!(a.term(), 2, "a heartbeat of term 2 teaches a the new term");
    assert_eq!(a.role(), NodeRole::Follower, "the old leader steps down");
    back.messages.clear();

    // A message stamped with an older term is answered with Fenced and not applied.
    let stale = Message::Heartbeat {
        term: 1,
        vv: Default::default(),
        role: NodeRole::Leader,
    };
    let mut fenced = Outputs::default();
    b.handle(
        now,
        Input::Peer {
            from: a.id(),
            msg: stale,
        },
        &mut fenced,
    );
    assert!(
        fenced
            .messages
            .iter()
            .any(|(to, m)| *to == a.id() && matches!(m, Message::Fenced { term: 2 })),
        "{:?}",
        fenced.messages
    );

    // A push from a's own events in the current term is applied once, however often it
    // is delivered.
    let mut writes = Outputs::default();
    write(&mut a, now, 7, &mut writes);
    let pushes: Vec<_> = writes.messages.clone();
    assert!(
        pushes
            .iter()
            .any(|(_, m)| matches!(m, Message::Push { .. }))
    );
    deliver(&mut writes, &a, &mut b, now);
    let once = b
        .ledger()
        .decay_score(schema().resolve("view").unwrap(), EntityId(7), now)
        .unwrap();
    let mut again = Outputs {
        messages: pushes,
        ..Outputs::default()
    };
    let replies = deliver(&mut again, &a, &mut b, now);
    assert!(
        replies.persist.is_empty(),
        "a duplicate push persists nothing"
    );
    let twice = b
        .ledger()
        .decay_score(schema().resolve("view").unwrap(), EntityId(7), now)
        .unwrap();
    assert_eq!(once, 1.0);
    assert_eq!(once, twice);
}

#[test]
fn a_reconciliation_plan_applied_twice_changes_nothing() {
    let now = ts(T0);
    let mut a = node(0, &[1]);
    let mut out = Outputs::default();
    for e in 0..20 {
        write(&mut a, now, e % 3, &mut out);
    }
    let b_vv = Default::default();
    let plan = ReconciliationEngine::plan(a.ledger().version_vector(), a.retained_log(), &b_vv);
    let ReconcilePlan::Ranges(ranges) = plan else {
        panic!("expected ranges, got {plan:?}")
    };
    let events = ReconciliationEngine::gather(a.retained_log(), &ranges);
    assert_eq!(events.len(), 20);
    let mut b = Ledger::new(schema());
    b.apply_batch(&events).unwrap();
    let once = (
        b.version_vector().clone(),
        format!("{:?}", b.signal_ledgers()),
    );
    b.apply_batch(&events).unwrap();
    for e in events.iter().rev() {
        b.apply(e).unwrap();
    }
    assert_eq!(
        once,
        (
            b.version_vector().clone(),
            format!("{:?}", b.signal_ledgers())
        )
    );
    let at = Timestamp::from_nanos(T0 + 1_000_000_000).unwrap();
    for entity in 0..3 {
        let signal = schema().resolve("view").unwrap();
        assert_eq!(
            b.decay_score(signal, EntityId(entity), at).unwrap(),
            a.ledger()
                .decay_score(signal, EntityId(entity), at)
                .unwrap()
        );
    }
}
