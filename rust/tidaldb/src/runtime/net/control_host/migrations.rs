//! The control host's part in migrations: the Raft leader carries out the steps that
//! `migration_steps` decides.

use super::super::migration_steps::{MigrationAction, next_actions};
use super::super::peers::ControlFrame;
use super::Host;
use crate::schema::Timestamp;

impl Host {
    /// The Raft leader takes each running migration's next steps.
    pub(super) fn run_migrations(&mut self, now: Timestamp) {
        let Some((voter, _)) = self.voter.as_ref().filter(|(v, _)| v.is_leader()) else {
            return;
        };
        let retired = &self.migrating.retired_at;
        let actions = next_actions(voter.plane(), &self.spec.nodes, now, |t| {
            retired.get(&t).copied()
        });
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
                MigrationAction::Retire { process, tenant } => {
                    self.migrating.retired_at.entry(tenant).or_insert(now);
                    self.send_frame(process, tenant, ControlFrame::Retire);
                }
                MigrationAction::Drop { process, tenant } => {
                    self.send_frame(process, tenant, ControlFrame::Delete);
                }
            }
        }
    }
}
