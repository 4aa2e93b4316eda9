//! The control plane: topology, the leader of each shard, health and lag.
//!
//! It is a deterministic state machine. Nodes report to it on every heartbeat; `tick`
//! decides failovers and answers with [`ControlCommand`]s for the driver to deliver. Every
//! decision is appended to a command log, the seam where a consensus engine will later
//! replicate the control plane across machines.

use std::time::Duration;

use serde::Serialize;

use crate::event::VersionVector;
use crate::node::{ControlCommand, LagReading, NodeReport, NodeRole, ReplicationLagGauge};
use crate::schema::{NodeId, RegionId, ShardId, Timestamp};

/// One replica in the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Replica {
    pub node: NodeId,
    pub region: RegionId,
    pub shard: ShardId,
}

/// A decision the control plane made, in the order made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Decision {
    Promote {
        shard: ShardId,
        node: NodeId,
        term: u64,
        at_ns: i64,
    },
    /// No healthy replica was left to promote.
    Leaderless { shard: ShardId, at_ns: i64 },
}

#[derive(Clone, Debug)]
struct Member {
    replica: Replica,
    last_heard: Option<Timestamp>,
    last_report: Option<NodeReport>,
}

#[derive(Clone, Debug)]
struct ShardLeadership {
    shard: ShardId,
    leader: Option<NodeId>,
    term: u64,
}

#[derive(Clone, Debug)]
pub struct ControlPlane {
    members: Vec<Member>,
    shards: Vec<ShardLeadership>,
    election_timeout: Duration,
    lag: ReplicationLagGauge,
    decisions: Vec<Decision>,
    started: Option<Timestamp>,
}

impl ControlPlane {
    /// `leaders` names each shard's first leader; every shard starts in term 1.
    pub fn new(
        replicas: Vec<Replica>,
        leaders: &[(ShardId, NodeId)],
        election_timeout: Duration,
    ) -> Self {
        let mut shards: Vec<ShardLeadership> = replicas
            .iter()
            .map(|r| r.shard)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|shard| ShardLeadership {
                shard,
                leader: leaders.iter().find(|(s, _)| *s == shard).map(|(_, n)| *n),
                term: 1,
            })
            .collect();
        shards.sort_by_key(|s| s.shard);
        ControlPlane {
            members: replicas
                .into_iter()
                .map(|replica| Member {
                    replica,
                    last_heard: None,
                    last_report: None,
                })
                .collect(),
            shards,
            election_timeout,
            lag: ReplicationLagGauge::new(),
            decisions: Vec::new(),
            started: None,
        }
    }

    pub fn election_timeout(&self) -> Duration {
        self.election_timeout
    }

    pub fn replicas(&self) -> impl Iterator<Item = Replica> + '_ {
        self.members.iter().map(|m| m.replica)
    }

    pub fn replica(&self, node: NodeId) -> Option<Replica> {
        self.member(node).map(|m| m.replica)
    }

    fn member(&self, node: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.replica.node == node)
    }

    /// Every decision so far.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    pub fn leader_of(&self, shard: ShardId) -> Option<NodeId> {
        self.shards
            .iter()
            .find(|s| s.shard == shard)
            .and_then(|s| s.leader)
    }

    pub fn term_of(&self, shard: ShardId) -> u64 {
        self.shards
            .iter()
            .find(|s| s.shard == shard)
            .map_or(0, |s| s.term)
    }

    fn healthy(&self, m: &Member, now: Timestamp) -> bool {
        Self::heard_within(m, now, self.election_timeout)
    }

    fn heard_within(m: &Member, now: Timestamp, within: Duration) -> bool {
        m.last_heard
            .is_some_and(|t| now.as_nanos() - t.as_nanos() <= within.as_nanos() as i64)
    }

    /// True when `shard` has a leader that has reported within the election timeout.
    pub fn has_live_leader(&self, shard: ShardId, now: Timestamp) -> bool {
        self.leader_of(shard)
            .and_then(|n| self.member(n))
            .is_some_and(|m| self.healthy(m, now))
    }

    /// A node's heartbeat. Lag is measured against the union of what the shard's healthy
    /// replicas have reported.
    pub fn observe(&mut self, now: Timestamp, report: NodeReport) {
        self.started.get_or_insert(now);
        let Some(i) = self
            .members
            .iter()
            .position(|m| m.replica.node == report.node)
        else {
            tracing::warn!(
                node = report.node.0,
                "report from a node outside the topology"
            );
            return;
        };
        self.members[i].last_heard = Some(now);
        self.members[i].last_report = Some(report);
        let shard = self.members[i].replica.shard;
        let reference = self.shard_union(shard, now);
        for m in self.members.iter().filter(|m| m.replica.shard == shard) {
            if let Some(r) = &m.last_report {
                self.lag
                    .record(m.replica.node, &reference, &r.vv, None, now);
            }
        }
    }

    fn shard_union(&self, shard: ShardId, now: Timestamp) -> VersionVector {
        let mut union = VersionVector::new();
        for m in &self.members {
            if m.replica.shard == shard
                && self.healthy(m, now)
                && let Some(r) = &m.last_report
            {
                union.merge(&r.vv);
            }
        }
        union
    }

    /// Lag of one replica, as of the last reports.
    pub fn lag_for(&self, node: NodeId) -> LagReading {
        self.lag.lag(node).unwrap_or_default()
    }

    /// Events the replica of `shard` in `region` lags behind, as of the last reports.
    pub fn lag_seqno(&self, region: RegionId, shard: ShardId) -> u64 {
        self.members
            .iter()
            .find(|m| m.replica.region == region && m.replica.shard == shard)
            .map_or(0, |m| self.lag_for(m.replica.node).events)
    }

    /// Failover and membership repair. A shard whose leader has been silent for the
    /// election timeout gets the most caught-up healthy replica (highest version vector
    /// sum, ties to the lowest NodeId) as leader, in a new term. Replicas that report a
    /// stale term or a wrong role are told their place.
    pub fn tick(&mut self, now: Timestamp) -> Vec<(NodeId, ControlCommand)> {
        let started = *self.started.get_or_insert(now);
        let mut commands = Vec::new();
        for s in 0..self.shards.len() {
            let shard = self.shards[s].shard;
            let leader_ok = self.shards[s]
                .leader
                .and_then(|n| self.member(n))
                .is_some_and(|m| self.healthy(m, now));
            let grace_over =
                now.as_nanos() - started.as_nanos() > self.election_timeout.as_nanos() as i64;
            if !leader_ok && grace_over {
                self.elect(s, now);
            }
            let (term, leader) = (self.shards[s].term, self.shards[s].leader);
            for m in self.members.iter().filter(|m| m.replica.shard == shard) {
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

    fn elect(&mut self, s: usize, now: Timestamp) {
        let shard = self.shards[s].shard;
        // A candidate must have reported recently, not merely within the timeout that
        // declared the leader dead: a replica that died since must not be promoted.
        let fresh = self.election_timeout / 5;
        let candidate = self
            .members
            .iter()
            .filter(|m| m.replica.shard == shard && Self::heard_within(m, now, fresh))
            .filter_map(|m| m.last_report.as_ref().map(|r| (r.vv.sum(), m.replica.node)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, node)| node);
        let at_ns = now.as_nanos();
        match candidate {
            Some(node) => {
                let term = self.shards[s].term + 1;
                self.shards[s].term = term;
                self.shards[s].leader = Some(node);
                tracing::info!(
                    shard = shard.0,
                    node = node.0,
                    term,
                    "promoted a new leader"
                );
                self.decisions.push(Decision::Promote {
                    shard,
                    node,
                    term,
                    at_ns,
                });
            }
            None => {
                if self.shards[s].leader.take().is_some() {
                    self.decisions.push(Decision::Leaderless { shard, at_ns });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn promotes_the_most_caught_up_healthy_replica_after_the_timeout() {
        let replicas = (0..3)
            .map(|i| Replica {
                node: NodeId(i),
                region: RegionId(i),
                shard: ShardId(0),
            })
            .collect();
        let mut cp = ControlPlane::new(
            replicas,
            &[(ShardId(0), NodeId(0))],
            Duration::from_millis(500),
        );
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
