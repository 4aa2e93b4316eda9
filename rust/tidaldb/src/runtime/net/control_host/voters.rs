//! The control host's changes of voters: proposed as Raft configuration changes, and
//! answered once this voter has applied them.

use tokio::sync::oneshot;

use super::{ADMIN_TIMEOUT, Host, raft_id};
use crate::error::{Result, TidalError};
use crate::schema::NodeId;

/// An operator's change of voters, until this voter has applied it.
pub(super) struct VoterChange {
    /// The Raft id of the voter added or removed.
    id: u64,
    add: bool,
    reply: oneshot::Sender<Result<()>>,
    deadline: std::time::Instant,
    /// The leader the proposal went to, and when.
    proposed_to: Option<u64>,
    proposed_at: std::time::Instant,
}

/// How long a change of voters may stay unapplied before it is proposed again.
const REPROPOSE_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

impl Host {
    /// Proposes a change of voters; the reply waits until this voter has applied it.
    pub(super) fn change_voters(
        &mut self,
        node: NodeId,
        add: bool,
        reply: oneshot::Sender<Result<()>>,
    ) {
        if !self.spec.nodes.iter().any(|(n, _)| *n == node) {
            let _ = reply.send(Err(TidalError::InvalidArgument {
                name: "node",
                reason: format!("no node {} in this cluster", node.0),
            }));
            return;
        }
        let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
        match self.propose_voter_change(raft_id(node), add) {
            Ok(leader) => self.voter_changes.push(VoterChange {
                id: raft_id(node),
                add,
                reply,
                deadline,
                proposed_to: leader,
                proposed_at: std::time::Instant::now(),
            }),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Proposes one change of voters; returns the leader it went to.
    fn propose_voter_change(&mut self, id: u64, add: bool) -> Result<Option<u64>> {
        let mut proposed = Ok(None);
        self.with_voter(|v, out| {
            proposed = v.propose_voter_change(id, add, out).map(|()| v.leader());
            Ok(())
        });
        proposed
    }

    /// Answers the changes of voters that have applied here, or whose time is up.
    pub(super) fn answer_voter_changes(&mut self) {
        let Some((voter, _)) = self.voter.as_ref() else {
            return;
        };
        let (voters, leader) = (voter.voters(), voter.leader());
        let waiting = std::mem::take(&mut self.voter_changes);
        for mut change in waiting {
            if voters.contains(&change.id) == change.add {
                let _ = change.reply.send(Ok(()));
                continue;
            }
            if change.reply.is_closed() {
                continue;
            }
            if std::time::Instant::now() >= change.deadline {
                let _ = change.reply.send(Err(TidalError::Timeout(format!(
                    "the change of voters did not apply within {} s; it may still: read the \
                     control status before sending it again",
                    ADMIN_TIMEOUT.as_secs()
                ))));
                continue;
            }
            let stale = change.proposed_at.elapsed() >= REPROPOSE_AFTER;
            if leader.is_some() && (leader != change.proposed_to || stale) {
                // Sent to a leader that lost its place (one that removed itself steps
                // aside), or dropped by a new leader whose own first entry has not
                // committed yet: making it again is harmless (adding a voter that votes,
                // or removing one that does not, changes nothing).
                if let Ok(to) = self.propose_voter_change(change.id, change.add) {
                    change.proposed_to = to;
                    change.proposed_at = std::time::Instant::now();
                }
            }
            self.voter_changes.push(change);
        }
    }
}
