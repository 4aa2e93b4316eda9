//! The control plane: topology, tenants and their placement, the leader of each replica
//! group, drained hosts, migrations, and health.
//!
//! It is a deterministic state machine over [`Command`]s. Everything that changes its
//! state (a tenant registered, a replica added or removed, a leader promoted, a host
//! drained, a migration step) is a command, validated and then appended to the command
//! log, so replaying the log onto the initial control plane rebuilds the same state: the
//! seam where a consensus engine will later replicate it across machines. Heartbeat
//! reports are observations, not commands: they feed health, lag and elections.

pub mod consensus;
mod election;
mod health;
mod migration;
mod placement;
#[cfg(test)]
mod tests;

pub use health::{ClusterHealth, RegionHealth, RegionStatus, ReplicaHealth, TenantStatus};
pub use migration::{MigrationRecord, MigrationState};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TidalError};
use crate::event::{TenantId, VersionVector};
use crate::node::{LagReading, NodeReport, ReplicationLagGauge};
use crate::schema::{NodeId, RegionId, ShardId, Timestamp};
use crate::tenancy::{ClusterTopology, ShardAssignment, TenantConfig, TenantRouter};

/// One replica: a tenant's copy of a shard, on the host `(region, shard)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub node: NodeId,
    pub region: RegionId,
    pub shard: ShardId,
    pub tenant: TenantId,
}

impl Replica {
    pub fn host(&self) -> ShardAssignment {
        ShardAssignment {
            shard_id: self.shard,
            region_id: self.region,
        }
    }

    pub fn group(&self) -> GroupId {
        GroupId {
            tenant: self.tenant,
            shard: self.shard,
        }
    }
}

/// A replica group: every copy of one tenant's shard. Leadership and terms are per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId {
    pub tenant: TenantId,
    pub shard: ShardId,
}

/// Everything that changes the control plane's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    RegisterTenant(TenantConfig),
    /// A replica joins its group; `lead` makes it the leader of a group that has none.
    AddReplica {
        replica: Replica,
        lead: bool,
    },
    RemoveReplica(NodeId),
    /// `node` leads its group in the term after `from_term`. Refused unless the group is
    /// still in `from_term`: a promotion decided on a stale view, or twice, changes nothing.
    Promote {
        group: GroupId,
        node: NodeId,
        from_term: u64,
    },
    /// The group has no replica fit to lead.
    Demote {
        group: GroupId,
    },
    /// Stop routing to a host and move its leaderships away.
    Drain(ShardAssignment),
    Rejoin(ShardAssignment),
    BeginMigration {
        tenant: TenantId,
        source: ShardAssignment,
        target: ShardAssignment,
    },
    AdvanceMigration {
        tenant: TenantId,
        to: MigrationState,
        target_node: Option<NodeId>,
    },
    /// Registers a tenant and its replica group in one step: all of it or nothing.
    PlaceTenant {
        config: TenantConfig,
        replicas: Vec<Replica>,
        lead: Option<NodeId>,
    },
}

impl Command {
    /// Whether applying it a second time changes nothing the first did not (and is not
    /// refused), so that a proposal that may have been lost can safely be made again.
    pub fn is_idempotent(&self) -> bool {
        matches!(self, Command::Drain(_) | Command::Rejoin(_))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedCommand {
    pub at_ns: i64,
    pub command: Command,
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
    /// Events per second over the last full second of reports.
    throughput: f64,
    rate_mark: Option<(Timestamp, u64)>,
}

#[derive(Clone, Debug, Serialize)]
struct Leadership {
    group: GroupId,
    leader: Option<NodeId>,
    term: u64,
}

#[derive(Clone, Debug)]
pub struct ControlPlane {
    members: Vec<Member>,
    groups: Vec<Leadership>,
    election_timeout: Duration,
    lag: ReplicationLagGauge,
    decisions: Vec<Decision>,
    started: Option<Timestamp>,
    router: TenantRouter,
    drained: BTreeSet<ShardAssignment>,
    migrations: BTreeMap<TenantId, MigrationRecord>,
    log: Vec<LoggedCommand>,
}

impl ControlPlane {
    /// The default tenant's `replicas` (every host of the topology), and each shard's
    /// first leader; every group starts in term 1.
    pub fn new(
        replicas: Vec<Replica>,
        leaders: &[(ShardId, NodeId)],
        election_timeout: Duration,
    ) -> Self {
        let mut hosts: Vec<ShardAssignment> = replicas.iter().map(Replica::host).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut router = TenantRouter::new(ClusterTopology { shards: hosts });
        if let Err(e) = router.register_tenant(TenantConfig::default_tenant()) {
            tracing::error!(error = %e, "the default tenant could not be placed");
        }
        let mut cp = ControlPlane {
            members: Vec::new(),
            groups: Vec::new(),
            election_timeout,
            lag: ReplicationLagGauge::new(),
            decisions: Vec::new(),
            started: None,
            router,
            drained: BTreeSet::new(),
            migrations: BTreeMap::new(),
            log: Vec::new(),
        };
        for replica in replicas {
            let lead = leaders.contains(&(replica.shard, replica.node));
            cp.add_replica(replica, lead);
        }
        cp
    }

    /// The default tenant's one group: shard 0 with a replica in each of `regions`
    /// regions (node `i` in region `i`), node 0 leading. The smallest plane a consensus
    /// test or a simulated quorum needs.
    pub fn single_group(regions: u16, election_timeout: Duration) -> Self {
        let replicas = (0..regions)
            .map(|i| Replica {
                node: NodeId(i),
                region: RegionId(i),
                shard: ShardId(0),
                tenant: TenantId::DEFAULT,
            })
            .collect();
        ControlPlane::new(replicas, &[(ShardId(0), NodeId(0))], election_timeout)
    }

    /// Validates and carries out `command`, then logs it. A refused command changes
    /// nothing and is not logged.
    pub fn apply(&mut self, now: Timestamp, command: Command) -> Result<()> {
        match &command {
            Command::RegisterTenant(cfg) => self.router.register_tenant(cfg.clone())?,
            Command::AddReplica { replica, lead } => {
                self.check_new_replica(replica)?;
                self.add_replica(*replica, *lead);
            }
            Command::RemoveReplica(node) => {
                let Some(i) = self.members.iter().position(|m| m.replica.node == *node) else {
                    return Err(TidalError::NotFound(format!("no replica {}", node.0)));
                };
                let group = self.members[i].replica.group();
                self.members.remove(i);
                if let Some(g) = self.group_mut(group)
                    && g.leader == Some(*node)
                {
                    g.leader = None;
                }
            }
            Command::Promote {
                group,
                node,
                from_term,
            } => {
                let member = self.member(*node).map(|m| m.replica.group());
                if member != Some(*group) {
                    return Err(TidalError::InvalidArgument {
                        name: "node",
                        reason: format!(
                            "node {} is not a replica of tenant {}'s shard {}",
                            node.0, group.tenant, group.shard.0
                        ),
                    });
                }
                let Some(g) = self.group_mut(*group) else {
                    return Err(TidalError::NotFound(format!(
                        "no replica group for tenant {}'s shard {}",
                        group.tenant, group.shard.0
                    )));
                };
                if g.term != *from_term {
                    return Err(TidalError::Conflict(format!(
                        "the promotion ends term {from_term}, but the group is in term {}",
                        g.term
                    )));
                }
                g.term += 1;
                g.leader = Some(*node);
            }
            Command::Demote { group } => {
                if let Some(g) = self.group_mut(*group) {
                    g.leader = None;
                }
            }
            Command::Drain(host) | Command::Rejoin(host) => {
                if !self.router.topology().contains(*host) {
                    return Err(TidalError::NotFound(format!(
                        "no host of shard {} in region {}",
                        host.shard_id.0, host.region_id.0
                    )));
                }
                if matches!(command, Command::Drain(_)) {
                    self.check_one_drain_at_a_time(*host)?;
                    self.drained.insert(*host);
                } else {
                    self.drained.remove(host);
                }
            }
            Command::BeginMigration {
                tenant,
                source,
                target,
            } => self.begin_migration(*tenant, *source, *target)?,
            Command::AdvanceMigration {
                tenant,
                to,
                target_node,
            } => self.advance_migration(now, *tenant, *to, *target_node)?,
            Command::PlaceTenant {
                config,
                replicas,
                lead,
            } => self.place_tenant_whole(config, replicas, *lead)?,
        }
        self.record_decision(&command, now.as_nanos());
        self.log.push(LoggedCommand {
            at_ns: now.as_nanos(),
            command,
        });
        Ok(())
    }

    /// Hosts are drained one at a time: with two drained at once, a group of three could
    /// be left with one host that may lead, and a rolling upgrade never needs more.
    /// Draining the host that is drained already is a no-op, so a retry is safe.
    fn check_one_drain_at_a_time(&self, host: ShardAssignment) -> Result<()> {
        match self.drained.iter().find(|d| **d != host) {
            None => Ok(()),
            Some(other) => Err(TidalError::Conflict(format!(
                "the host of shard {} in region {} is drained already; rejoin it before \
                 draining another (hosts are drained one at a time)",
                other.shard_id.0, other.region_id.0
            ))),
        }
    }

    fn add_replica(&mut self, replica: Replica, lead: bool) {
        self.members.push(Member {
            replica,
            last_heard: None,
            last_report: None,
            throughput: 0.0,
            rate_mark: None,
        });
        let group = replica.group();
        match self.group_mut(group) {
            Some(g) => {
                if lead && g.leader.is_none() {
                    g.leader = Some(replica.node);
                }
            }
            None => {
                self.groups.push(Leadership {
                    group,
                    leader: lead.then_some(replica.node),
                    term: 1,
                });
                self.groups.sort_by_key(|g| g.group);
            }
        }
    }

    fn group_mut(&mut self, group: GroupId) -> Option<&mut Leadership> {
        self.groups.iter_mut().find(|g| g.group == group)
    }

    fn group(&self, group: GroupId) -> Option<&Leadership> {
        self.groups.iter().find(|g| g.group == group)
    }

    pub fn election_timeout(&self) -> Duration {
        self.election_timeout
    }

    /// Every command applied so far, in order.
    pub fn command_log(&self) -> &[LoggedCommand] {
        &self.log
    }

    pub fn router(&self) -> &TenantRouter {
        &self.router
    }

    pub fn replicas(&self) -> impl Iterator<Item = Replica> + '_ {
        self.members.iter().map(|m| m.replica)
    }

    pub fn replica(&self, node: NodeId) -> Option<Replica> {
        self.member(node).map(|m| m.replica)
    }

    /// The tenant's replica on `host`.
    pub fn replica_on(&self, tenant: TenantId, host: ShardAssignment) -> Option<Replica> {
        self.replicas()
            .find(|r| r.tenant == tenant && r.host() == host)
    }

    fn member(&self, node: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.replica.node == node)
    }

    pub fn is_drained(&self, host: ShardAssignment) -> bool {
        self.drained.contains(&host)
    }

    /// The drained hosts, in order: at most one while hosts are drained one at a time.
    pub fn drained_hosts(&self) -> impl Iterator<Item = ShardAssignment> + '_ {
        self.drained.iter().copied()
    }

    /// Every tenant's latest migration, running or complete.
    pub fn migrations(&self) -> impl Iterator<Item = &MigrationRecord> + '_ {
        self.migrations.values()
    }

    /// A replica's latest heartbeat report and when it was heard.
    pub fn last_report(&self, node: NodeId) -> Option<(Timestamp, &NodeReport)> {
        let m = self.member(node)?;
        Some((m.last_heard?, m.last_report.as_ref()?))
    }

    pub fn migration(&self, tenant: TenantId) -> Option<&MigrationRecord> {
        self.migrations.get(&tenant)
    }

    /// Every decision so far.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// The default tenant's leader of `shard`.
    pub fn leader_of(&self, shard: ShardId) -> Option<NodeId> {
        self.leader_of_group(GroupId {
            tenant: TenantId::DEFAULT,
            shard,
        })
    }

    pub fn leader_of_group(&self, group: GroupId) -> Option<NodeId> {
        self.group(group).and_then(|g| g.leader)
    }

    /// The group's term; 0 for a group the plane does not know.
    pub fn group_term(&self, group: GroupId) -> u64 {
        self.group(group).map_or(0, |g| g.term)
    }

    pub fn term_of(&self, shard: ShardId) -> u64 {
        self.group(GroupId {
            tenant: TenantId::DEFAULT,
            shard,
        })
        .map_or(0, |g| g.term)
    }

    fn healthy(&self, m: &Member, now: Timestamp) -> bool {
        Self::heard_within(m, now, self.election_timeout)
    }

    fn heard_within(m: &Member, now: Timestamp, within: Duration) -> bool {
        m.last_heard
            .is_some_and(|t| now.as_nanos() - t.as_nanos() <= within.as_nanos() as i64)
    }

    /// True when the default tenant's `shard` has a leader that reported within the
    /// election timeout.
    pub fn has_live_leader(&self, shard: ShardId, now: Timestamp) -> bool {
        self.leader_of(shard)
            .and_then(|n| self.member(n))
            .is_some_and(|m| self.healthy(m, now))
    }

    /// Takes over what `other` has heard from replicas (their last heartbeats, lag and
    /// throughput), for a plane rebuilt from a snapshot that should not forget them.
    pub fn adopt_observations(&mut self, other: &ControlPlane) {
        for m in &mut self.members {
            if let Some(o) = other.member(m.replica.node) {
                m.last_heard = o.last_heard;
                m.last_report = o.last_report.clone();
                m.throughput = o.throughput;
                m.rate_mark = o.rate_mark;
            }
        }
        self.lag = other.lag.clone();
        self.started = other.started;
    }

    /// A node's heartbeat. Lag is measured against the union of what its group's healthy
    /// replicas have reported.
    pub fn observe(&mut self, now: Timestamp, report: NodeReport) {
        self.started.get_or_insert(now);
        let Some(i) = self
            .members
            .iter()
            .position(|m| m.replica.node == report.node)
        else {
            tracing::debug!(
                node = report.node.0,
                "report from a node outside the topology"
            );
            return;
        };
        let sum = report.vv.sum();
        let m = &mut self.members[i];
        match m.rate_mark {
            Some((at, mark)) if now.as_nanos() - at.as_nanos() >= 1_000_000_000 => {
                let secs = (now.as_nanos() - at.as_nanos()) as f64 / 1e9;
                m.throughput = sum.saturating_sub(mark) as f64 / secs;
                m.rate_mark = Some((now, sum));
            }
            Some(_) => {}
            None => m.rate_mark = Some((now, sum)),
        }
        m.last_heard = Some(now);
        m.last_report = Some(report);
        let group = m.replica.group();
        let reference = self.group_union(group, now);
        for m in self.members.iter().filter(|m| m.replica.group() == group) {
            if let Some(r) = &m.last_report {
                self.lag
                    .record(m.replica.node, &reference, &r.vv, None, now);
            }
        }
    }

    fn group_union(&self, group: GroupId, now: Timestamp) -> VersionVector {
        let mut union = VersionVector::new();
        for m in &self.members {
            if m.replica.group() == group
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

    /// Events the default tenant's replica of `shard` in `region` lags behind.
    pub fn lag_seqno(&self, region: RegionId, shard: ShardId) -> u64 {
        self.members
            .iter()
            .find(|m| {
                m.replica.tenant == TenantId::DEFAULT
                    && m.replica.region == region
                    && m.replica.shard == shard
            })
            .map_or(0, |m| self.lag_for(m.replica.node).events)
    }
}
