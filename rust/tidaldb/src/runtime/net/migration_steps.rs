//! A tenant migration between server processes, driven by the Raft leader: what to do next
//! for each running migration, decided from the committed plane and the replicas' latest
//! heartbeats alone. It decides, it does not act (the control host sends and proposes), so
//! a new leader picks up where the old one stopped: every step is read off the committed
//! record, and every action is safe to repeat.
//!
//! The steps, by the record's state:
//! - `Idle`: the target's replica joins the plane (its process opens it on the leader's
//!   hosting orders, with the group as its peers), the group's replicas add it as a peer,
//!   and the record names it (`TargetCreated`).
//! - `TargetCreated`: every write the source takes now reaches the target too, as it does
//!   every peer (the data plane is active-active): `DualWrite`.
//! - `DualWrite`: once the target's applied events cover the source's: `Finalized`.
//! - `Finalized`: the source stops serving the tenant (its clients fail over), hands its
//!   caps' rights to the target, and once the target covers everything the source holds
//!   (heard after the source stopped serving), it leaves the plane; its peers drop it, its
//!   process deletes its copy: `Complete`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::placement::ReplicaIds;
use crate::control::{Command, ControlPlane, MigrationRecord, MigrationState, Replica};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::{ControlCommand, PeerAddr};
use crate::schema::{NodeId, RegionId, Timestamp};
use crate::tenancy::ShardAssignment;

/// How long after the source stopped serving its last writes are taken to have reached
/// its heartbeats: a report heard later than this reflects everything it acknowledged.
pub const RETIRE_SETTLE: Duration = Duration::from_millis(300);

/// One thing the leader does for a migration.
#[derive(Clone, Debug, PartialEq)]
pub enum MigrationAction {
    Propose(Command),
    /// An order to the process hosting a replica of `tenant`.
    Order {
        process: NodeId,
        tenant: TenantId,
        order: ControlCommand,
    },
    /// The source's process stops serving the tenant; its replica keeps replicating.
    Retire {
        process: NodeId,
        tenant: TenantId,
    },
    /// The source's process closes its replica and deletes its files.
    Drop {
        process: NodeId,
        tenant: TenantId,
    },
}

/// The command that begins moving `tenant` from `from` (its one host when `None`) to `to`.
pub fn migrate_command(
    plane: &ControlPlane,
    tenant: TenantId,
    from: Option<ShardAssignment>,
    to: ShardAssignment,
) -> Result<Command> {
    let source = match from {
        Some(host) => host,
        None => match plane.router().placement(tenant)? {
            [only] => *only,
            _ => {
                return Err(TidalError::InvalidArgument {
                    name: "from_region",
                    reason: format!(
                        "tenant {tenant} lives in several regions; name the one to move"
                    ),
                });
            }
        },
    };
    Ok(Command::BeginMigration {
        tenant,
        source,
        target: to,
    })
}

/// What the leader must do now for every migration, given `retired_at(tenant)`: when it
/// first told the tenant's source to stop serving, if it has.
pub fn next_actions(
    plane: &ControlPlane,
    nodes: &[(NodeId, RegionId)],
    now: Timestamp,
    retired_at: impl Fn(TenantId) -> Option<Timestamp>,
) -> Vec<MigrationAction> {
    let ids = ReplicaIds::of(plane);
    let mut actions = Vec::new();
    for m in plane.migrations() {
        let (Some(source_process), Some(target_process)) = (
            process_in(nodes, m.source.region_id),
            process_in(nodes, m.target.region_id),
        ) else {
            continue;
        };
        let Some(target) = ids.replica(target_process, m.tenant) else {
            continue;
        };
        let step = Step {
            plane,
            m,
            ids: &ids,
            target,
            target_process,
            source_process,
        };
        match m.state {
            MigrationState::Idle => step.create_target(&mut actions),
            MigrationState::TargetCreated => {
                step.announce_target(&mut actions);
                actions.push(step.advance(MigrationState::DualWrite));
            }
            MigrationState::DualWrite => {
                step.announce_target(&mut actions);
                if step.target_covers_source(None) {
                    actions.push(step.advance(MigrationState::Finalized));
                }
            }
            MigrationState::Finalized => {
                step.collect_source(now, retired_at(m.tenant), &mut actions)
            }
            // Repeated for a source process that was down when it was first told.
            MigrationState::Complete if plane.replica_on(m.tenant, m.source).is_none() => {
                actions.push(MigrationAction::Drop {
                    process: source_process,
                    tenant: m.tenant,
                });
            }
            MigrationState::Complete => {}
        }
    }
    actions
}

/// The process that hosts a region's replicas: its lowest node id.
fn process_in(nodes: &[(NodeId, RegionId)], region: RegionId) -> Option<NodeId> {
    nodes
        .iter()
        .filter(|(_, r)| *r == region)
        .map(|(n, _)| *n)
        .min()
}

struct Step<'a> {
    plane: &'a ControlPlane,
    m: &'a MigrationRecord,
    ids: &'a ReplicaIds,
    /// The target's replica id in the plane.
    target: NodeId,
    target_process: NodeId,
    source_process: NodeId,
}

impl Step<'_> {
    fn advance(&self, to: MigrationState) -> MigrationAction {
        MigrationAction::Propose(Command::AdvanceMigration {
            tenant: self.m.tenant,
            to,
            target_node: None,
        })
    }

    fn create_target(&self, actions: &mut Vec<MigrationAction>) {
        if self.plane.replica(self.target).is_none() {
            actions.push(MigrationAction::Propose(Command::AddReplica {
                replica: Replica {
                    node: self.target,
                    region: self.m.target.region_id,
                    shard: self.m.target.shard_id,
                    tenant: self.m.tenant,
                },
                lead: false,
            }));
            return;
        }
        self.announce_target(actions);
        actions.push(MigrationAction::Propose(Command::AdvanceMigration {
            tenant: self.m.tenant,
            to: MigrationState::TargetCreated,
            target_node: Some(self.target),
        }));
    }

    /// Every other replica of the group takes the target as a peer (again: an order may
    /// have been lost, and a second `AddPeer` changes nothing).
    fn announce_target(&self, actions: &mut Vec<MigrationAction>) {
        let peer = PeerAddr::new(self.target_process, self.m.target.region_id);
        for process in self.member_processes() {
            if process != self.target_process {
                actions.push(MigrationAction::Order {
                    process,
                    tenant: self.m.tenant,
                    order: ControlCommand::AddPeer(peer),
                });
            }
        }
    }

    fn member_processes(&self) -> Vec<NodeId> {
        self.plane
            .replicas()
            .filter(|r| r.tenant == self.m.tenant)
            .filter_map(|r| self.ids.process(r.node).map(|(p, _)| p))
            .collect()
    }

    fn source(&self) -> Option<NodeId> {
        self.plane
            .replica_on(self.m.tenant, self.m.source)
            .map(|r| r.node)
    }

    /// Whether the target has applied every event the source had in its latest report,
    /// and that report was heard after `heard_after` when one is given.
    fn target_covers_source(&self, heard_after: Option<Timestamp>) -> bool {
        let Some(source) = self.source() else {
            return false;
        };
        let (Some((heard, source_report)), Some((_, target_report))) = (
            self.plane.last_report(source),
            self.plane.last_report(self.target),
        ) else {
            return false;
        };
        heard_after.is_none_or(|t| heard > t) && target_report.vv.dominates(&source_report.vv)
    }

    fn collect_source(
        &self,
        now: Timestamp,
        retired_at: Option<Timestamp>,
        actions: &mut Vec<MigrationAction>,
    ) {
        let tenant = self.m.tenant;
        let Some(source) = self.source() else {
            // Out of the plane: its peers forget it, its process deletes it, and done.
            for process in self.member_processes() {
                actions.push(MigrationAction::Order {
                    process,
                    tenant,
                    order: ControlCommand::RemovePeer(self.source_process),
                });
            }
            actions.push(MigrationAction::Drop {
                process: self.source_process,
                tenant,
            });
            actions.push(self.advance(MigrationState::Complete));
            return;
        };
        actions.push(MigrationAction::Retire {
            process: self.source_process,
            tenant,
        });
        let Some(retired_at) = retired_at else {
            return;
        };
        let settled =
            Timestamp::from_nanos(retired_at.as_nanos() + RETIRE_SETTLE.as_nanos() as i64);
        let Ok(settled) = settled else {
            return;
        };
        if now <= settled {
            return;
        }
        actions.push(MigrationAction::Order {
            process: self.source_process,
            tenant,
            order: ControlCommand::HandOverRights(self.target_process),
        });
        if self.target_covers_source(Some(settled)) {
            actions.push(MigrationAction::Propose(Command::RemoveReplica(source)));
        }
    }
}

/// The leader's memory between rounds: when it told each source to stop serving, and
/// what it proposed lately, so that a step is not proposed again every round while the
/// first proposal commits.
#[derive(Debug, Default)]
pub struct MigrationPace {
    pub retired_at: BTreeMap<TenantId, Timestamp>,
    proposed: Vec<(Command, Instant)>,
}

/// How long a proposal is given to commit before the same step is proposed again.
const PROPOSAL_PATIENCE: Duration = Duration::from_secs(1);

impl MigrationPace {
    /// Whether to propose `command` now: not if it was proposed within the patience.
    pub fn should_propose(&mut self, command: &Command) -> bool {
        self.proposed
            .retain(|(_, at)| at.elapsed() < PROPOSAL_PATIENCE);
        if self.proposed.iter().any(|(c, _)| c == command) {
            return false;
        }
        self.proposed.push((command.clone(), Instant::now()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::VersionVector;
    use crate::node::{NodeReport, NodeRole};
    use crate::runtime::net::placement::tests::spec_of;
    use crate::runtime::net::placement::{initial_plane, place_command};
    use crate::schema::ShardId;
    use crate::tenancy::TenantConfig;

    const T: TenantId = TenantId(9);
    const SECOND: i64 = 1_000_000_000;

    fn nodes() -> Vec<(NodeId, RegionId)> {
        (0..3).map(|i| (NodeId(i), RegionId(i))).collect()
    }

    fn at(ns: i64) -> Timestamp {
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

    #[test]
    fn a_migration_walks_its_steps_and_collects_the_source_only_once_covered() {
        let mut plane = migrating_plane();
        let (source, target) = (64, 65);
        let never = |_| None;
        let first = next_actions(&plane, &nodes(), at(3), never);
        assert!(matches!(
            proposals(&first)[..],
            [Command::AddReplica { replica, lead: false }] if replica.node == NodeId(target)
        ));
        commit(&mut plane, &first, 3);
        let created = next_actions(&plane, &nodes(), at(4), never);
        assert!(created.contains(&MigrationAction::Order {
            process: NodeId(0),
            tenant: T,
            order: ControlCommand::AddPeer(PeerAddr::new(NodeId(1), RegionId(1))),
        }));
        commit(&mut plane, &created, 4);
        let dual = next_actions(&plane, &nodes(), at(5), never);
        commit(&mut plane, &dual, 5);
        assert_eq!(plane.migration(T).unwrap().state, MigrationState::DualWrite);

        // The target is behind: no switch yet.
        report(&mut plane, source, 100, 6);
        report(&mut plane, target, 99, 6);
        assert!(proposals(&next_actions(&plane, &nodes(), at(6), never)).is_empty());
        report(&mut plane, target, 100, 7);
        let switch = next_actions(&plane, &nodes(), at(7), never);
        commit(&mut plane, &switch, 7);
        assert_eq!(plane.migration(T).unwrap().state, MigrationState::Finalized);

        // Finalized: the source is told to stop serving, and nothing is removed until a
        // report heard after the settle time shows the target holding all it has.
        let retire = next_actions(&plane, &nodes(), at(8), never);
        assert!(retire.contains(&MigrationAction::Retire {
            process: NodeId(0),
            tenant: T
        }));
        assert!(proposals(&retire).is_empty());
        let retired = |_| Some(at(8));
        let early = next_actions(&plane, &nodes(), at(9), retired);
        assert!(
            proposals(&early).is_empty(),
            "before the settle time: {early:?}"
        );
        let later = 8 + 2 * SECOND;
        report(&mut plane, source, 101, later); // a last write (the hand-over) landed
        assert!(proposals(&next_actions(&plane, &nodes(), at(later), retired)).is_empty());
        report(&mut plane, target, 101, later);
        let collect = next_actions(&plane, &nodes(), at(later), retired);
        assert_eq!(
            proposals(&collect),
            [&Command::RemoveReplica(NodeId(source))]
        );
        commit(&mut plane, &collect, later);

        let done = next_actions(&plane, &nodes(), at(later + 1), retired);
        assert!(done.contains(&MigrationAction::Drop {
            process: NodeId(0),
            tenant: T
        }));
        commit(&mut plane, &done, later + 1);
        assert_eq!(plane.migration(T).unwrap().state, MigrationState::Complete);
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
}
