//! The control host's part in migrations: the Raft leader carries out the steps that
//! `migration_steps` decides.

use super::super::migration_steps::{MigrationAction, next_actions};
use super::super::peers::ControlFrame;
use super::Host;
use crate::event::TenantId;
use crate::schema::{NodeId, Timestamp};

impl Host {
    /// The Raft leader takes each running migration's next steps.
    pub(super) fn run_migrations(&mut self, now: Timestamp) {
        let Some((voter, _)) = self.voter.as_ref().filter(|(v, _)| v.is_leader()) else {
            return;
        };
        let plane = voter.plane();
        let actions = next_actions(plane, &self.spec.nodes, self.migrating.stopped(plane));
        for action in actions {
            match action {
                MigrationAction::Propose(command) => {
                    if self.migrating.should_propose(&command) {
                        self.with_voter(|v, out| v.propose(now, command, out).map(|_| ()));
                    }
                }
                MigrationAction::Order {
                    process,
                    tenant,
                    order,
                } => self.send_order(process, tenant, order),
                MigrationAction::Retire {
                    process,
                    tenant,
                    hand_over_to,
                    migration,
                } => {
                    let order = ControlFrame::Retire {
                        hand_over_to,
                        migration,
                    };
                    self.send_frame(process, tenant, order)
                }
                MigrationAction::Drop {
                    process,
                    tenant,
                    migration,
                } => self.send_frame(process, tenant, ControlFrame::Delete { migration }),
            }
        }
    }

    /// This process hosts a migration's source: it stops serving `tenant` and answers
    /// `leader` with the version vector it stopped at. Without the replica (not open yet
    /// after a restart) it says nothing, and the leader asks again.
    pub(super) fn stop_serving(
        &mut self,
        leader: NodeId,
        tenant: TenantId,
        to: NodeId,
        migration: u64,
    ) {
        if self
            .service
            .placed_by(tenant)
            .is_some_and(|placed| migration <= placed)
        {
            // An order from before this replica was placed here: not ours to obey.
            tracing::debug!(tenant = tenant.0, migration, "a stale stop order ignored");
            return;
        }
        self.service.retire(tenant);
        let Some(db) = self.service.replica(tenant) else {
            return;
        };
        match db.stop_serving(to) {
            Ok(vv) => self.send_frame(leader, tenant, ControlFrame::Retired { migration, vv }),
            Err(e) => {
                tracing::warn!(tenant = tenant.0, error = %e, "stopping a migrated replica failed")
            }
        }
    }
}
