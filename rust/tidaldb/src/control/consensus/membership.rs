//! Changing who votes: one voter added or removed at a time, as a Raft configuration
//! change. A removed voter becomes a learner, which follows the log without a vote. The change is an entry of the log like any command, so it is persisted with
//! it, kept in snapshots (their configuration), and re-applied when a voter restarts.

use raft::prelude::{ConfChange, ConfChangeType};

use super::voter::{ControlVoter, VoterOutputs, raft_error};
use crate::error::{Result, TidalError};

impl ControlVoter {
    /// The Raft ids of the voters in the configuration applied here, in order.
    pub fn voters(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.raw.raft.prs().conf().voters().ids().iter().collect();
        ids.sort_unstable();
        ids
    }

    /// Proposes adding (`add`) or removing voter `id`. It takes effect once committed and
    /// applied ([`voters`](Self::voters) then shows it). Removing the leader moves its
    /// leadership first and proposes nothing: propose it again once the leader changed.
    /// Refused, with nothing proposed:
    /// adding a voter that votes, removing one that does not, removing the last one, and a
    /// second change while one is pending at this leader. A follower forwards it.
    pub fn propose_voter_change(
        &mut self,
        id: u64,
        add: bool,
        out: &mut VoterOutputs,
    ) -> Result<()> {
        if self.leader().is_none() {
            return Err(TidalError::Unavailable(
                "the control plane has no leader this voter knows of; retry".into(),
            ));
        }
        let voters = self.voters();
        let votes = voters.contains(&id);
        let node = id.saturating_sub(1);
        if add && votes {
            return Err(TidalError::Conflict(format!(
                "node {node} is a voter already"
            )));
        }
        if !add && !votes {
            return Err(TidalError::Conflict(format!("node {node} is not a voter")));
        }
        if !add && voters.len() == 1 {
            return Err(TidalError::InvalidArgument {
                name: "node",
                reason: format!("node {node} is the last voter; the control plane needs one"),
            });
        }
        if !add && self.leader() == Some(id) {
            // A leader that removes itself can step aside before its followers learn the
            // change committed, and they then wait on a voter that no longer answers.
            // Leadership moves first (a follower forwards the request to the leader);
            // the caller proposes the removal again to the next leader.
            let Some(&heir) = voters.iter().find(|&&v| v != id) else {
                return Err(TidalError::InvalidArgument {
                    name: "node",
                    reason: format!("node {node} is the last voter; the control plane needs one"),
                });
            };
            let me = self.id();
            let transferee = if me != id && voters.contains(&me) {
                me
            } else {
                heir
            };
            self.raw.transfer_leader(transferee);
            return self.process_ready(out);
        }
        if self.is_leader() && self.raw.raft.has_pending_conf() {
            return Err(TidalError::Conflict(
                "a change of voters is still being applied; one at a time".into(),
            ));
        }
        let mut cc = ConfChange::default();
        // A removed voter stays a learner: it follows the log, and can vote again.
        cc.set_change_type(if add {
            ConfChangeType::AddNode
        } else {
            ConfChangeType::AddLearnerNode
        });
        cc.node_id = id;
        self.raw
            .propose_conf_change(Vec::new(), cc)
            .map_err(raft_error)?;
        self.process_ready(out)
    }
}
