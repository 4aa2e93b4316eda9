//! The leader's steps, one at a time against a committed plane.

use super::*;
use crate::event::VersionVector;
use crate::node::{NodeReport, NodeRole};
use crate::runtime::net::placement::tests::spec_of;
use crate::runtime::net::placement::{host_orders, initial_plane, place_command};
use crate::schema::{ShardId, Timestamp};
use crate::tenancy::TenantConfig;

pub(super) const T: TenantId = TenantId(9);
const SECOND: i64 = 1_000_000_000;

pub(super) fn nodes() -> Vec<(NodeId, RegionId)> {
    (0..3).map(|i| (NodeId(i), RegionId(i))).collect()
}

pub(super) fn at(ns: i64) -> Timestamp {
    Timestamp::from_nanos(ns).unwrap()
}

/// Tenant 9 on process 0 only (slot 1, so replica ids 64..), migrating to region 1.
fn migrating_plane() -> ControlPlane {
    let spec = spec_of(&[(0, 0), (1, 1), (2, 2)], &[]);
    let mut plane = initial_plane(&spec).unwrap();
    let mut config = TenantConfig::new(T, "nine");
    config.required_regions = vec![RegionId(0)];
    plane
        .apply(at(1), place_command(&spec, &plane, config).unwrap())
        .unwrap();
    let host = |r| ShardAssignment {
        shard_id: ShardId(0),
        region_id: RegionId(r),
    };
    let begin = migrate_command(&plane, T, None, host(1)).unwrap();
    plane.apply(at(2), begin).unwrap();
    plane
}

fn proposals(actions: &[MigrationAction]) -> Vec<&Command> {
    actions
        .iter()
        .filter_map(|a| match a {
            MigrationAction::Propose(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Applies the one proposal among `actions`, as a commit would.
fn commit(plane: &mut ControlPlane, actions: &[MigrationAction], now: i64) {
    let [command] = proposals(actions)[..] else {
        panic!("expected one proposal in {actions:?}");
    };
    plane.apply(at(now), command.clone()).unwrap();
}

fn report(plane: &mut ControlPlane, replica: u16, events: u64, now: i64) {
    let mut vv = VersionVector::new();
    vv.advance(NodeId(0), events);
    let report = NodeReport {
        node: NodeId(replica),
        term: 1,
        role: NodeRole::Follower,
        vv,
        entities: 0,
        behind_log: Vec::new(),
    };
    plane.observe(at(now), report);
}

/// Walks `T`'s migration to `Finalized`: the source holds 100 events, the target too.
pub(super) fn finalized_plane() -> ControlPlane {
    let mut plane = migrating_plane();
    let (source, target) = (64, 65);
    let none = StoppedSources::new();
    let first = next_actions(&plane, &nodes(), &none);
    assert!(matches!(
        proposals(&first)[..],
        [Command::AddReplica { replica, lead: false }] if replica.node == NodeId(target)
    ));
    commit(&mut plane, &first, 3);
    let created = next_actions(&plane, &nodes(), &none);
    assert!(created.contains(&MigrationAction::Order {
        process: NodeId(0),
        tenant: T,
        order: ControlCommand::AddPeer(PeerAddr::new(NodeId(1), RegionId(1))),
    }));
    commit(&mut plane, &created, 4);
    let dual = next_actions(&plane, &nodes(), &none);
    commit(&mut plane, &dual, 5);
    assert_eq!(plane.migration(T).unwrap().state, MigrationState::DualWrite);

    // The target is behind: no switch yet.
    report(&mut plane, source, 100, 6);
    report(&mut plane, target, 99, 6);
    assert!(proposals(&next_actions(&plane, &nodes(), &none)).is_empty());
    report(&mut plane, target, 100, 7);
    let switch = next_actions(&plane, &nodes(), &none);
    commit(&mut plane, &switch, 7);
    assert_eq!(plane.migration(T).unwrap().state, MigrationState::Finalized);
    plane
}

const STOP_ORDER: MigrationAction = MigrationAction::Retire {
    process: NodeId(0),
    tenant: T,
    hand_over_to: NodeId(1),
    migration: 1,
};

fn answer(process: u16, migration: u64, events: u64) -> StoppedSource {
    let mut vv = VersionVector::new();
    vv.advance(NodeId(0), events);
    StoppedSource {
        process: NodeId(process),
        migration,
        vv,
    }
}

fn stopped_at(process: u16, events: u64) -> StoppedSources {
    StoppedSources::from([(T, answer(process, 1, events))])
}

#[test]
fn a_migration_walks_its_steps_and_collects_the_source_only_once_covered() {
    let mut plane = finalized_plane();
    let (source, target) = (64, 65);

    // Finalized: the source is told to stop serving, again every round, and nothing
    // is removed before it answers, whatever the reports say and however long it takes.
    let unanswered = next_actions(&plane, &nodes(), &StoppedSources::new());
    assert!(unanswered.contains(&STOP_ORDER));
    assert!(proposals(&unanswered).is_empty());
    let hour = 3_600 * SECOND;
    report(&mut plane, source, 100, hour);
    report(&mut plane, target, 100, hour);
    assert!(proposals(&next_actions(&plane, &nodes(), &StoppedSources::new())).is_empty());

    // It stopped after a last write (the hand-over): the target must hold that too.
    let answered = stopped_at(0, 101);
    let waiting = next_actions(&plane, &nodes(), &answered);
    assert!(!waiting.contains(&STOP_ORDER), "{waiting:?}");
    assert!(proposals(&waiting).is_empty(), "{waiting:?}");
    report(&mut plane, target, 101, hour + 1);
    let collect = next_actions(&plane, &nodes(), &answered);
    assert_eq!(
        proposals(&collect),
        [&Command::RemoveReplica(NodeId(source))]
    );
    commit(&mut plane, &collect, hour + 1);

    let done = next_actions(&plane, &nodes(), &answered);
    assert!(done.contains(&MigrationAction::Drop {
        process: NodeId(0),
        tenant: T,
        migration: 1,
    }));
    commit(&mut plane, &done, hour + 2);
    assert_eq!(plane.migration(T).unwrap().state, MigrationState::Complete);
}

#[test]
fn only_the_source_process_answer_to_this_migration_counts() {
    let mut plane = finalized_plane();
    report(&mut plane, 65, 500, 8);
    // Another process's answer is not the source's, and the source's answer to an
    // earlier migration of the tenant is not an answer to this one.
    for stale in [answer(2, 1, 100), answer(0, 0, 100)] {
        let actions = next_actions(&plane, &nodes(), &StoppedSources::from([(T, stale)]));
        assert!(actions.contains(&STOP_ORDER));
        assert!(proposals(&actions).is_empty());
    }
    assert!(!proposals(&next_actions(&plane, &nodes(), &stopped_at(0, 100))).is_empty());

    // Answers are kept only while their migration is finalized.
    let mut pace = MigrationPace::default();
    pace.source_stopped(T, answer(0, 1, 1));
    assert!(pace.stopped(&migrating_plane()).is_empty());
    pace.source_stopped(T, answer(0, 1, 1));
    assert_eq!(pace.stopped(&plane).len(), 1);
    // A late answer to an earlier migration does not hide the current one.
    pace.source_stopped(T, answer(0, 0, 7));
    assert_eq!(pace.stopped(&plane)[&T], answer(0, 1, 1));
}

#[test]
fn the_target_is_hosted_as_placed_by_its_migration_and_the_source_is_not() {
    let plane = finalized_plane();
    let placed: Vec<(u16, u64, Option<NodeId>)> = host_orders(&plane, &[TenantId::DEFAULT])
        .into_iter()
        .filter(|(_, tenant, _)| *tenant == T)
        .map(|(process, _, order)| (process.0, order.placed_by, order.placed_from))
        .collect();
    assert_eq!(placed, [(0, 0, None), (1, 1, Some(NodeId(0)))]);
}

#[test]
fn the_same_step_is_not_proposed_again_while_it_commits() {
    let mut pace = MigrationPace::default();
    let step = Command::RemoveReplica(NodeId(64));
    assert!(pace.should_propose(&step));
    assert!(!pace.should_propose(&step));
    assert!(pace.should_propose(&Command::RemoveReplica(NodeId(65))));
}

#[test]
fn a_tenant_in_several_regions_must_name_the_one_it_leaves() {
    let plane = migrating_plane();
    let host = ShardAssignment {
        shard_id: ShardId(0),
        region_id: RegionId(2),
    };
    let e = migrate_command(&plane, TenantId::DEFAULT, None, host).unwrap_err();
    assert!(e.to_string().contains("name the one to move"), "{e}");
}
