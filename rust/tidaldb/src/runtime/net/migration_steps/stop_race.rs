//! The stop order against what can go wrong between the Raft leader and a migration's
//! source, on seeded schedules: stop orders and answers delayed, lost or repeated, a stale
//! answer to an earlier migration, leaders that forget what they heard, target reports
//! that lag, and the source's clients writing throughout. The leader's steps are
//! `next_actions` itself and the two replicas are sans-IO nodes, driven as the control
//! host drives them. The oracle is the set of writes the source acknowledged: when the
//! leader proposes to remove the source, the target must hold every one of them.
//!
//! A failure names its seed; replay it alone with
//! `TIDALDB_SEED=<seed> cargo test -p tidaldb --lib stop_race`.

use std::sync::Arc;

use super::tests::{T, at, finalized_plane, nodes};
use super::*;
use crate::error::TidalError;
use crate::ledger::Ledger;
use crate::node::{
    ClientOp, Input, Message, Node, NodeConfig, NodeReport, NodeRole, Outputs, WriteConcern,
    WriteRequest,
};
use crate::schema::{EntityId, Timestamp, hourly_view_schema};

/// The replicas' ids in the data plane (their processes') and in the control plane.
const SOURCE: NodeId = NodeId(0);
const TARGET: NodeId = NodeId(1);
const TARGET_REPLICA: NodeId = NodeId(65);
const RUNS: u64 = 200;
/// Far more steps than a run needs to end: one that does not has stalled.
const MAX_STEPS: usize = 20_000;

/// A schedule's choices, reproducible from its seed: Knuth's MMIX linear congruential
/// generator (the simulator's own generator lives a layer above this module).
struct Choices(u64);

impl Choices {
    /// Uniform enough in `[0, n)` for picking steps; `n` is never 0.
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

fn replica(id: NodeId, peer: NodeId) -> Node {
    let schema = hourly_view_schema();
    let cfg = NodeConfig {
        id,
        peers: vec![PeerAddr::new(peer, RegionId(peer.0))],
        role: NodeRole::Follower,
        ..NodeConfig::default()
    };
    Node::new(cfg, Ledger::new(Arc::new(schema)), Default::default())
}

/// Hands `messages` to `to` as sent by `from`, and confirms what `to` persisted; what `to`
/// sends in return is appended to `replies`.
fn deliver(
    messages: Vec<(NodeId, Message)>,
    from: NodeId,
    to: &mut Node,
    now: Timestamp,
    replies: &mut Vec<(NodeId, Message)>,
) {
    let mut out = Outputs::default();
    for (_, msg) in messages {
        to.handle(now, Input::Peer { from, msg }, &mut out);
    }
    to.handle(now, Input::Synced, &mut out);
    replies.append(&mut out.messages);
}

struct Run {
    rng: Choices,
    now: i64,
    plane: ControlPlane,
    source: Node,
    target: Node,
    /// The highest seq of the source's own that a client saw acknowledged.
    acknowledged: u64,
    /// Stop orders the leader sent, and writes acknowledged after the first of them.
    orders_sent: u64,
    acknowledged_after_an_order: u64,
    /// Messages on their way from the source to the target, and back.
    to_target: Vec<(NodeId, Message)>,
    back_to_source: Vec<(NodeId, Message)>,
    /// Stop orders on their way to the source (the migration each names).
    to_source: Vec<u64>,
    /// The source's answers on their way to the leader.
    to_leader: Vec<StoppedSource>,
    pace: MigrationPace,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut run = Run {
            rng: Choices(seed),
            now: 1_700_000_000_000_000_000,
            plane: finalized_plane(),
            source: replica(SOURCE, TARGET),
            target: replica(TARGET, SOURCE),
            acknowledged: 0,
            orders_sent: 0,
            acknowledged_after_an_order: 0,
            to_target: Vec::new(),
            back_to_source: Vec::new(),
            to_source: Vec::new(),
            to_leader: Vec::new(),
            pace: MigrationPace::default(),
        };
        // The plane's reports are the real replicas' from here on (`finalized_plane`'s
        // stand for events these replicas never had).
        run.target_reports();
        run
    }

    fn client_write(&mut self) {
        let op = ClientOp::Signal {
            signal: self.source.ledger().schema().resolve("view").expect("view"),
            entity: EntityId(self.rng.below(50)),
            weight: 1.0,
            ts: None,
        };
        let request = WriteRequest {
            id: 1,
            ops: &[op],
            concern: WriteConcern::Local,
            tag: None,
        };
        let mut out = Outputs::default();
        self.source
            .handle(at(self.now), Input::Write(request), &mut out);
        self.source.handle(at(self.now), Input::Synced, &mut out);
        match out.replies.pop() {
            Some((_, Ok(ack))) => {
                assert!(
                    !self.source.stopped_serving(),
                    "a write acknowledged after the source stopped serving"
                );
                self.acknowledged = self.acknowledged.max(ack.event_id().seq);
                if self.orders_sent > 0 {
                    self.acknowledged_after_an_order += 1;
                }
            }
            Some((_, Err(TidalError::Unavailable(_)))) => {
                assert!(self.source.stopped_serving(), "refused while serving");
            }
            other => panic!("a write answered {other:?}"),
        }
        self.to_target.append(&mut out.messages);
    }

    /// What is on the wire from the source arrives at the target (or, one time in ten, is
    /// lost), and the target's answers arrive back at the source.
    fn ship(&mut self) {
        let now = at(self.now);
        let (sent, lost) = (std::mem::take(&mut self.to_target), self.rng.one_in(10));
        if !lost {
            deliver(
                sent,
                SOURCE,
                &mut self.target,
                now,
                &mut self.back_to_source,
            );
        }
        let back = std::mem::take(&mut self.back_to_source);
        deliver(back, TARGET, &mut self.source, now, &mut self.to_target);
    }

    /// Time passes on both replicas: the source ships again what went unacknowledged.
    fn tick(&mut self) {
        let now = at(self.now);
        let mut out = Outputs::default();
        self.source.handle(now, Input::Tick, &mut out);
        self.to_target.append(&mut out.messages);
        self.target.handle(now, Input::Tick, &mut out);
        self.back_to_source.append(&mut out.messages);
    }

    fn target_reports(&mut self) {
        let report = NodeReport {
            node: TARGET_REPLICA,
            term: 1,
            role: NodeRole::Follower,
            vv: self.target.durable().clone(),
            entities: 0,
            behind_log: Vec::new(),
        };
        self.plane.observe(at(self.now), report);
    }

    /// The source's process hears a stop order: as `TidalDb::stop_serving` does.
    fn source_stops(&mut self, migration: u64) {
        let now = at(self.now);
        let mut out = Outputs::default();
        self.source
            .handle(now, Input::Control(ControlCommand::StopServing), &mut out);
        let hand_over = Input::Control(ControlCommand::HandOverRights(TARGET));
        self.source.handle(now, hand_over, &mut out);
        self.source.handle(now, Input::Synced, &mut out);
        self.to_target.append(&mut out.messages);
        self.to_leader.push(StoppedSource {
            process: SOURCE,
            migration,
            vv: self.source.ledger().version_vector().clone(),
        });
    }

    /// One leader round; `true` once it proposes to remove the source.
    fn leader_round(&mut self) -> bool {
        let actions = next_actions(&self.plane, &nodes(), self.pace.stopped(&self.plane));
        let mut removes = false;
        for action in actions {
            match action {
                MigrationAction::Retire { migration, .. } => {
                    self.orders_sent += 1;
                    self.to_source.push(migration)
                }
                MigrationAction::Propose(Command::RemoveReplica(_)) => removes = true,
                _ => {}
            }
        }
        removes
    }

    fn take_one<X>(rng: &mut Choices, queue: &mut Vec<X>) -> Option<X> {
        match queue.len() {
            0 => None,
            n => Some(queue.swap_remove(rng.below(n as u64) as usize)),
        }
    }

    /// Runs until the leader proposes to remove the source; the number of steps taken.
    fn until_removed(&mut self) -> Option<usize> {
        for step in 0..MAX_STEPS {
            self.now += 10_000_000;
            match self.rng.below(100) {
                0..25 => self.client_write(),
                25..35 => self.ship(),
                35..42 => self.tick(),
                42..55 => self.target_reports(),
                55..75 => {
                    if self.leader_round() {
                        return Some(step);
                    }
                }
                75..87 => {
                    if let Some(migration) = Self::take_one(&mut self.rng, &mut self.to_source)
                        && !self.rng.one_in(5)
                    {
                        self.source_stops(migration);
                    }
                }
                87..97 => {
                    if let Some(answer) = Self::take_one(&mut self.rng, &mut self.to_leader)
                        && !self.rng.one_in(5)
                    {
                        self.pace.source_stopped(T, answer);
                    }
                }
                97 => self.pace = MigrationPace::default(),
                _ => {
                    // What this process answered to the tenant's earlier migration.
                    let stale = StoppedSource {
                        process: SOURCE,
                        migration: 0,
                        vv: VersionVector::new(),
                    };
                    self.pace.source_stopped(T, stale);
                }
            }
        }
        None
    }
}

/// Names the seed of a run that panics, for the replay the module's doc gives.
struct SeedOnPanic(u64);

impl Drop for SeedOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("stop_race failed at seed {}", self.0);
        }
    }
}

#[test]
fn the_source_is_removed_only_once_the_target_holds_every_write_it_acknowledged() {
    let seeds: Vec<u64> = match std::env::var("TIDALDB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..RUNS).collect(),
    };
    let (mut raced, mut steps) = (0, 0);
    for seed in seeds {
        let _named = SeedOnPanic(seed);
        let mut run = Run::new(seed);
        let Some(taken) = run.until_removed() else {
            panic!("seed {seed}: the source was never removed in {MAX_STEPS} steps");
        };
        let held = run.target.ledger().version_vector().get(SOURCE);
        assert!(
            held >= run.acknowledged,
            "seed {seed}: the source acknowledged up to seq {} but the target holds {held}",
            run.acknowledged
        );
        raced += run.acknowledged_after_an_order;
        steps += taken;
    }
    // The schedules must reach the case that matters: writes acknowledged while a stop
    // order was on its way.
    eprintln!("{raced} writes acknowledged after a stop order was sent; {steps} steps");
    assert!(raced > 0, "no schedule raced the order");
}
