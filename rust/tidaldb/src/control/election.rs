//! Failover: a group whose leader is silent, or drained, gets a new one.

use super::{Command, ControlPlane, Decision, GroupId};
use crate::node::{ControlCommand, NodeRole};
use crate::schema::{NodeId, Timestamp};

impl ControlPlane {
    /// Failover and membership repair. A group whose leader has been silent for the
    /// election timeout, or sits on a drained host, gets the most caught-up healthy
    /// replica that is not drained (highest version vector sum, ties to the lowest NodeId)
    /// as leader, in a new term. Replicas that report a stale term or a wrong role are
    /// told their place.
    pub fn tick(&mut self, now: Timestamp) -> Vec<(NodeId, ControlCommand)> {
        let started = *self.started.get_or_insert(now);
        let grace_over =
            now.as_nanos() - started.as_nanos() > self.election_timeout.as_nanos() as i64;
        let mut commands = Vec::new();
        for g in 0..self.groups.len() {
            let group = self.groups[g].group;
            let leader = self.groups[g].leader.and_then(|n| self.member(n));
            let leader_ok = leader.is_some_and(|m| self.healthy(m, now));
            let leader_drained = leader.is_some_and(|m| {
                self.is_drained(m.replica.host()) || self.is_sidelined(m.replica.node)
            });
            if (!leader_ok && grace_over) || leader_drained {
                self.elect(group, now, leader_drained);
            }
            let Some(l) = self.group(group) else { continue };
            let (term, leader) = (l.term, l.leader);
            for m in self.members.iter().filter(|m| m.replica.group() == group) {
                let Some(r) = &m.last_report else { continue };
                let role = if Some(m.replica.node) == leader {
                    NodeRole::Leader
                } else {
                    NodeRole::Follower
                };
                if self.healthy(m, now) && (r.term != term || r.role != role) {
                    commands.push((m.replica.node, ControlCommand::SetRole { term, role }));
                }
            }
        }
        commands
    }

    fn elect(&mut self, group: GroupId, now: Timestamp, handover: bool) {
        // A candidate must have reported recently, not merely within the timeout that
        // declared the leader dead: a replica that died since must not be promoted.
        let fresh = self.election_timeout / 5;
        let candidate = self
            .members
            .iter()
            .filter(|m| m.replica.group() == group && Self::heard_within(m, now, fresh))
            .filter(|m| !self.is_drained(m.replica.host()) && !self.is_sidelined(m.replica.node))
            .filter_map(|m| m.last_report.as_ref().map(|r| (r.vv.sum(), m.replica.node)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, node)| node);
        let at_ns = now.as_nanos();
        let shard = group.shard;
        let had_leader = self.leader_of_group(group).is_some();
        let command = match candidate {
            Some(node) => Command::Promote { group, node },
            // A drained leader keeps leading until someone can take over.
            None if handover => return,
            None if had_leader => Command::Demote { group },
            None => return,
        };
        if let Err(e) = self.apply(now, command) {
            tracing::error!(error = %e, "an election command was refused");
            return;
        }
        match (candidate, self.group(group)) {
            (Some(node), Some(g)) => {
                tracing::info!(shard = shard.0, tenant = %group.tenant, node = node.0, term = g.term, "promoted a new leader");
                self.decisions.push(Decision::Promote {
                    shard,
                    node,
                    term: g.term,
                    at_ns,
                });
            }
            _ => self.decisions.push(Decision::Leaderless { shard, at_ns }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::VersionVector;
    use crate::node::NodeReport;
    use crate::schema::ShardId;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000).unwrap()
    }

    fn report(node: u16, term: u64, role: NodeRole, applied: u64) -> NodeReport {
        let mut vv = VersionVector::new();
        vv.advance(NodeId(0), applied);
        NodeReport {
            node: NodeId(node),
            term,
            role,
            vv,
            entities: 0,
            behind_log: Vec::new(),
        }
    }

    #[test]
    fn promotes_the_most_caught_up_healthy_replica_after_the_timeout() {
        let mut cp = crate::control::tests::three_region_plane();
        cp.observe(at(0), report(0, 1, NodeRole::Leader, 10));
        cp.observe(at(0), report(1, 1, NodeRole::Follower, 8));
        cp.observe(at(0), report(2, 1, NodeRole::Follower, 9));
        assert_eq!(cp.lag_for(NodeId(1)).events, 2);
        assert!(cp.tick(at(100)).is_empty());
        // Node 0 falls silent; 1 and 2 keep reporting.
        for t in [300, 600, 900] {
            cp.observe(at(t), report(1, 1, NodeRole::Follower, 8));
            cp.observe(at(t), report(2, 1, NodeRole::Follower, 9));
        }
        let commands = cp.tick(at(900));
        assert_eq!(
            cp.leader_of(ShardId(0)),
            Some(NodeId(2)),
            "highest VV sum wins"
        );
        assert_eq!(cp.term_of(ShardId(0)), 2);
        assert!(commands.contains(&(
            NodeId(2),
            ControlCommand::SetRole {
                term: 2,
                role: NodeRole::Leader
            }
        )));
        assert!(commands.contains(&(
            NodeId(1),
            ControlCommand::SetRole {
                term: 2,
                role: NodeRole::Follower
            }
        )));
        assert!(
            !commands.iter().any(|(n, _)| *n == NodeId(0)),
            "a silent node gets no orders"
        );
        assert!(cp.has_live_leader(ShardId(0), at(900)));
    }
}
