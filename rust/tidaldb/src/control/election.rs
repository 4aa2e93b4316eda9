//! Failover: a group whose leader is silent, or drained, gets a new one.

use super::{Command, ControlPlane, Decision, Leadership};
use crate::node::{ControlCommand, NodeRole};
use crate::schema::{NodeId, Timestamp};

impl ControlPlane {
    /// Failover and membership repair in one round, for a control plane hosted in one
    /// process: the failover commands are applied at once. A replicated control plane
    /// proposes [`Self::failover_commands`] instead and applies them once committed.
    pub fn tick(&mut self, now: Timestamp) -> Vec<(NodeId, ControlCommand)> {
        for command in self.failover_commands(now) {
            if let Err(e) = self.apply(now, command) {
                tracing::error!(error = %e, "an election command was refused");
            }
        }
        self.role_orders(now)
    }

    /// The commands failover calls for now. A group whose leader has been silent for the
    /// election timeout, or sits on a drained host, gets the most caught-up healthy
    /// replica that is not drained (highest version vector sum, ties to the lowest NodeId)
    /// as leader, in a new term. Each promotion names the term it ends, so a promotion
    /// decided twice (or on a stale view) is refused when applied instead of skipping a
    /// term.
    pub fn failover_commands(&mut self, now: Timestamp) -> Vec<Command> {
        let started = *self.started.get_or_insert(now);
        let grace_over =
            now.as_nanos() - started.as_nanos() > self.election_timeout.as_nanos() as i64;
        let mut commands = Vec::new();
        for g in &self.groups {
            let leader = g.leader.and_then(|n| self.member(n));
            let leader_ok = leader.is_some_and(|m| self.healthy(m, now));
            let leader_drained = leader.is_some_and(|m| {
                self.is_drained(m.replica.host()) || self.is_sidelined(m.replica.node)
            });
            if (!leader_ok && grace_over) || leader_drained {
                commands.extend(self.election(g, now, leader_drained));
            }
        }
        commands
    }

    /// Orders that tell replicas reporting a stale term or a wrong role their place.
    pub fn role_orders(&self, now: Timestamp) -> Vec<(NodeId, ControlCommand)> {
        let mut orders = Vec::new();
        for g in &self.groups {
            for m in self.members.iter().filter(|m| m.replica.group() == g.group) {
                let Some(r) = &m.last_report else { continue };
                let role = if Some(m.replica.node) == g.leader {
                    NodeRole::Leader
                } else {
                    NodeRole::Follower
                };
                if self.healthy(m, now) && (r.term != g.term || r.role != role) {
                    orders.push((
                        m.replica.node,
                        ControlCommand::SetRole { term: g.term, role },
                    ));
                }
            }
        }
        orders
    }

    fn election(&self, g: &Leadership, now: Timestamp, handover: bool) -> Option<Command> {
        // A candidate must have reported recently, not merely within the timeout that
        // declared the leader dead: a replica that died since must not be promoted.
        let fresh = self.election_timeout / 5;
        let candidate = self
            .members
            .iter()
            .filter(|m| m.replica.group() == g.group && Self::heard_within(m, now, fresh))
            .filter(|m| !self.is_drained(m.replica.host()) && !self.is_sidelined(m.replica.node))
            .filter_map(|m| m.last_report.as_ref().map(|r| (r.vv.sum(), m.replica.node)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, node)| node);
        match candidate {
            Some(node) => Some(Command::Promote {
                group: g.group,
                node,
                from_term: g.term,
            }),
            // A drained leader keeps leading until someone can take over.
            None if handover => None,
            None if g.leader.is_some() => Some(Command::Demote { group: g.group }),
            None => None,
        }
    }

    /// Records what a committed promotion or demotion decided, for failover timings.
    pub(super) fn record_decision(&mut self, command: &Command, at_ns: i64) {
        match command {
            Command::Promote { group, node, .. } => {
                let term = self.group(*group).map_or(0, |g| g.term);
                tracing::info!(shard = group.shard.0, tenant = %group.tenant, node = node.0, term, "promoted a new leader");
                self.decisions.push(Decision::Promote {
                    shard: group.shard,
                    node: *node,
                    term,
                    at_ns,
                });
            }
            Command::Demote { group } => self.decisions.push(Decision::Leaderless {
                shard: group.shard,
                at_ns,
            }),
            _ => {}
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
