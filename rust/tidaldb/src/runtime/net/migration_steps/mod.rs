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
//! - `Finalized`: the source stops serving the tenant (its clients fail over) and hands
//!   its caps' rights to the target, and answers with its version vector read right after,
//!   under the lock every write takes: nothing it acknowledged lies beyond it. Once the
//!   target's applied events dominate that vector, the source leaves the plane; its peers
//!   drop it, its process deletes its copy: `Complete`. No step waits on a clock: a stop
//!   order delivered late only delays the collection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::event::VersionVector;

use super::placement::ReplicaIds;
use crate::control::{Command, ControlPlane, MigrationRecord, MigrationState, Replica};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::{ControlCommand, PeerAddr};
use crate::schema::{NodeId, RegionId};
use crate::tenancy::ShardAssignment;

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
    /// The source's process stops serving the tenant for good and hands its rights to
    /// `hand_over_to`; its replica keeps replicating. It answers with the version vector
    /// it stopped at, naming the tenant's `migration` (see [`MigrationPace::stopped`]).
    Retire {
        process: NodeId,
        tenant: TenantId,
        hand_over_to: NodeId,
        migration: u64,
    },
    /// The source's process closes its replica and deletes its files.
    Drop {
        process: NodeId,
        tenant: TenantId,
        migration: u64,
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

/// What the leader must do now for every migration, given what the sources that stopped
/// serving answered (see [`MigrationPace::stopped`]).
pub fn next_actions(
    plane: &ControlPlane,
    nodes: &[(NodeId, RegionId)],
    stopped: &StoppedSources,
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
                if step.target_covers_source() {
                    actions.push(step.advance(MigrationState::Finalized));
                }
            }
            MigrationState::Finalized => {
                let answer = stopped.get(&m.tenant).filter(|answer| {
                    answer.process == source_process && answer.migration == m.number
                });
                step.collect_source(answer.map(|answer| &answer.vv), &mut actions)
            }
            // Repeated for a source process that was down when it was first told.
            MigrationState::Complete if plane.replica_on(m.tenant, m.source).is_none() => {
                actions.push(MigrationAction::Drop {
                    process: source_process,
                    tenant: m.tenant,
                    migration: m.number,
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

    /// Whether the target has applied every event the source had in its latest report.
    fn target_covers_source(&self) -> bool {
        self.source()
            .and_then(|source| self.plane.last_report(source))
            .is_some_and(|(_, source_report)| self.target_holds(&source_report.vv))
    }

    /// Whether the target's latest report (its durable events) dominates `vv`.
    fn target_holds(&self, vv: &VersionVector) -> bool {
        self.plane
            .last_report(self.target)
            .is_some_and(|(_, report)| report.vv.dominates(vv))
    }

    /// `stopped_at`: the version vector the source answered when it stopped serving.
    fn collect_source(
        &self,
        stopped_at: Option<&VersionVector>,
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
                migration: self.m.number,
            });
            actions.push(self.advance(MigrationState::Complete));
            return;
        };
        let Some(stopped_at) = stopped_at else {
            // Again every round until the source answers: a frame may be lost, or the
            // source's process down.
            actions.push(MigrationAction::Retire {
                process: self.source_process,
                tenant,
                hand_over_to: self.target_process,
                migration: self.m.number,
            });
            return;
        };
        if self.target_holds(stopped_at) {
            actions.push(MigrationAction::Propose(Command::RemoveReplica(source)));
        }
    }
}

/// What a migration's source answered when it stopped serving.
#[derive(Clone, Debug, PartialEq)]
pub struct StoppedSource {
    /// The process that answered.
    pub process: NodeId,
    /// The tenant's migration it was ordered to stop for ([`MigrationRecord::number`]): an
    /// answer to an earlier migration of the tenant from the same process, heard by a
    /// voter that leads again later, names a vector the target held long ago.
    pub migration: u64,
    /// Its version vector right after it stopped.
    pub vv: VersionVector,
}

/// The latest answer for each tenant.
pub type StoppedSources = BTreeMap<TenantId, StoppedSource>;

/// The leader's memory between rounds: what the sources answered when they stopped
/// serving, and what it proposed lately, so that a step is not proposed again every round
/// while the first proposal commits. A new leader starts empty: it orders the source to
/// stop again, and the source answers again.
#[derive(Debug, Default)]
pub struct MigrationPace {
    stopped: StoppedSources,
    proposed: Vec<(Command, Instant)>,
}

/// How long a proposal is given to commit before the same step is proposed again.
const PROPOSAL_PATIENCE: Duration = Duration::from_secs(1);

impl MigrationPace {
    /// The answers to keep for this round: only a `Finalized` migration's, so that the
    /// map does not grow with every migration ever made.
    pub fn stopped(&mut self, plane: &ControlPlane) -> &StoppedSources {
        self.stopped.retain(|tenant, _| {
            plane
                .migration(*tenant)
                .is_some_and(|m| m.state == MigrationState::Finalized)
        });
        &self.stopped
    }

    /// A source answered that it stopped serving `tenant`. Kept only while the tenant's
    /// migration is `Finalized` (see [`Self::stopped`]), and not in place of an answer to
    /// a later migration: a late answer to an earlier one would hide it.
    pub fn source_stopped(&mut self, tenant: TenantId, answer: StoppedSource) {
        match self.stopped.get(&tenant) {
            Some(kept) if kept.migration > answer.migration => {}
            _ => {
                self.stopped.insert(tenant, answer);
            }
        }
    }

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
mod stop_race;
#[cfg(test)]
mod tests;
