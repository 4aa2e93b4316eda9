//! The replicated control plane on the simulator: one Raft voter per region, talking over
//! the seeded network (latency, jitter, loss, partitions), each persisting its records to
//! its own simulated disk, and crashing and restarting from it. Replicas of one group sit
//! one per region beside the voters: they send heartbeats to the voters they can reach and
//! take the roles the Raft leader orders.
//!
//! It checks, as it runs, what consensus promises: at most one Raft leader per Raft term,
//! at most one replica-group leader per group term (in the committed planes and among the
//! replicas themselves), and committed logs that never diverge.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use super::network::{LinkConfig, Network, PartitionId};
use super::rng::SimRng;
use crate::control::consensus::{
    ControlRecord, ControlVoter, ProposalId, VoterOutputs, VoterSpec, decode_message,
    encode_message,
};
use crate::control::{Command, ControlPlane, GroupId, LoggedCommand};
use crate::error::{Result, TidalError};
use crate::event::{TenantId, VersionVector};
use crate::node::{ControlCommand, NodeReport, NodeRole};
use crate::schema::{NodeId, RegionId, ShardId, Timestamp};

/// The shape and timings of a simulated control plane.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    pub seed: u64,
    /// One voter and one replica per region.
    pub regions: u16,
    pub link: LinkConfig,
    pub tick: Duration,
    pub heartbeat_ticks: usize,
    pub election_ticks: usize,
    /// How long the control plane waits on a silent replica-group leader.
    pub group_election_timeout: Duration,
    pub snapshot_every: u64,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            seed: 1,
            regions: 3,
            link: LinkConfig::default(),
            tick: Duration::from_millis(10),
            heartbeat_ticks: 2,
            election_ticks: 10,
            group_election_timeout: Duration::from_millis(300),
            snapshot_every: 64,
        }
    }
}

struct SimVoter {
    region: RegionId,
    spec: VoterSpec,
    voter: Option<ControlVoter>,
    /// What the voter persisted; it survives crashes.
    disk: Vec<ControlRecord>,
}

/// A data replica, reduced to what the control plane sees of it.
struct SimReplica {
    node: NodeId,
    region: RegionId,
    up: bool,
    term: u64,
    role: NodeRole,
}

/// A Raft message in flight: delivery time, sequence (ties go in sending order), the
/// voter it goes to, and its bytes.
type InFlight = (i64, u64, usize, Vec<u8>);

/// The replicated control plane under simulation.
pub struct SimControlQuorum {
    now: Timestamp,
    rng: SimRng,
    net: Network,
    cfg: QuorumConfig,
    initial: ControlPlane,
    voters: Vec<SimVoter>,
    replicas: Vec<SimReplica>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    next_tick: i64,
    /// The Raft leader of each Raft term, as seen so far.
    raft_leaders: BTreeMap<u64, u64>,
    /// The leader of each group term, in any voter's committed plane.
    group_leaders: BTreeMap<(GroupId, u64), NodeId>,
    /// Proposals made and not yet heard back.
    pending: BTreeMap<ProposalId, Command>,
    /// Proposals whose commands were applied without error, as their proposers heard.
    acknowledged: BTreeMap<ProposalId, Command>,
    violations: Vec<String>,
}

const GROUP: GroupId = GroupId {
    tenant: TenantId::DEFAULT,
    shard: ShardId(0),
};

impl SimControlQuorum {
    pub fn new(cfg: QuorumConfig) -> Result<Self> {
        if cfg.regions == 0 || cfg.election_ticks < 2 {
            return Err(TidalError::InvalidArgument {
                name: "quorum",
                reason: "at least one region and two election ticks".into(),
            });
        }
        let mut rng = SimRng::new(cfg.seed);
        let initial = ControlPlane::single_group(cfg.regions, cfg.group_election_timeout);
        let ids: Vec<u64> = (1..=u64::from(cfg.regions)).collect();
        let mut voters = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let spec = VoterSpec {
                id,
                voters: ids.clone(),
                learners: Vec::new(),
                heartbeat_ticks: cfg.heartbeat_ticks,
                election_ticks: cfg.election_ticks,
                seed: rng.next_u64(),
                snapshot_every: cfg.snapshot_every,
                run: rng.next_u64(),
            };
            let voter = ControlVoter::start(&spec, initial.clone(), &[])?;
            voters.push(SimVoter {
                region: RegionId(i as u16),
                spec,
                voter: Some(voter),
                disk: Vec::new(),
            });
        }
        let replicas = initial
            .replicas()
            .map(|r| SimReplica {
                node: r.node,
                region: r.region,
                up: true,
                term: 1,
                role: if r.node == NodeId(0) {
                    NodeRole::Leader
                } else {
                    NodeRole::Follower
                },
            })
            .collect();
        let now = Timestamp::from_nanos(crate::sim::DEFAULT_START_NS)?;
        Ok(SimControlQuorum {
            now,
            net: Network::new(cfg.link),
            rng,
            initial,
            voters,
            replicas,
            in_flight: BinaryHeap::new(),
            seq: 0,
            next_tick: now.as_nanos(),
            cfg,
            raft_leaders: BTreeMap::new(),
            group_leaders: BTreeMap::new(),
            pending: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            violations: Vec::new(),
        })
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn regions(&self) -> u16 {
        self.cfg.regions
    }

    /// Lets `d` of virtual time pass.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now.as_nanos().saturating_add(d.as_nanos() as i64);
        loop {
            let next_msg = self.in_flight.peek().map(|Reverse((at, ..))| *at);
            let next = match next_msg {
                Some(at) if at < self.next_tick => at,
                _ => self.next_tick,
            };
            if next > end {
                break;
            }
            if let Ok(t) = Timestamp::from_nanos(next.max(self.now.as_nanos())) {
                self.now = t;
            }
            if next_msg == Some(next) && next < self.next_tick {
                if let Some(Reverse((_, _, to, bytes))) = self.in_flight.pop() {
                    self.deliver(to, &bytes);
                }
            } else {
                self.tick();
                self.next_tick += self.cfg.tick.as_nanos() as i64;
            }
        }
        if let Ok(t) = Timestamp::from_nanos(end) {
            self.now = self.now.max(t);
        }
    }

    fn tick(&mut self) {
        self.heartbeats();
        for i in 0..self.voters.len() {
            let now = self.now;
            self.with_voter(i, |v, out| v.tick(now, out));
        }
        self.orders();
        self.check();
    }

    /// Each replica that is up reports to every voter it can reach.
    fn heartbeats(&mut self) {
        let mut vv = VersionVector::new();
        vv.advance(NodeId(0), (self.now.as_nanos() / 1_000_000) as u64);
        for r in &self.replicas {
            if !r.up {
                continue;
            }
            let report = NodeReport {
                node: r.node,
                term: r.term,
                role: r.role,
                vv: vv.clone(),
                entities: 0,
                behind_log: Vec::new(),
            };
            for v in &mut self.voters {
                if let Some(voter) = v.voter.as_mut()
                    && !self.net.blocked(r.region, v.region)
                {
                    voter.observe(self.now, report.clone());
                }
            }
        }
    }

    /// The orders of every voter that believes it leads reach the replicas it can reach;
    /// a replica takes an order only for a term newer than its own, as the node does.
    fn orders(&mut self) {
        for v in &self.voters {
            let Some(voter) = v.voter.as_ref() else {
                continue;
            };
            for (node, order) in voter.orders(self.now) {
                let ControlCommand::SetRole { term, role } = order else {
                    continue;
                };
                if let Some(r) = self.replicas.iter_mut().find(|r| r.node == node)
                    && r.up
                    && !self.net.blocked(v.region, r.region)
                    && (term > r.term || (term == r.term && role != r.role))
                {
                    r.term = term;
                    r.role = role;
                }
            }
        }
    }

    fn deliver(&mut self, to: usize, bytes: &[u8]) {
        let msg = match decode_message(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.violations
                    .push(format!("a message did not decode: {e}"));
                return;
            }
        };
        self.with_voter(to, |v, out| v.step(msg, out));
    }

    /// Runs `f` on voter `i` if it is up, then persists and sends what it produced.
    fn with_voter(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut ControlVoter, &mut VoterOutputs) -> Result<()>,
    ) {
        let mut out = VoterOutputs::default();
        let Some(voter) = self.voters[i].voter.as_mut() else {
            return;
        };
        if let Err(e) = f(voter, &mut out) {
            self.violations
                .push(format!("voter {} failed: {e}", self.voters[i].spec.id));
        }
        self.carry_out(i, out);
    }

    fn carry_out(&mut self, i: usize, out: VoterOutputs) {
        self.voters[i].disk.extend(out.records);
        for (id, result) in out.outcomes {
            if let Some(command) = self.pending.remove(&id)
                && result.is_ok()
            {
                self.acknowledged.insert(id, command);
            }
        }
        let from = self.voters[i].region;
        for msg in out.messages {
            let to = msg.to as usize - 1;
            let Some(to_region) = self.voters.get(to).map(|v| v.region) else {
                continue;
            };
            let bytes = match encode_message(&msg) {
                Ok(b) => b,
                Err(e) => {
                    self.violations
                        .push(format!("a message did not encode: {e}"));
                    continue;
                }
            };
            for delay in self.net.delays(&mut self.rng, from, to_region) {
                self.seq += 1;
                let at = self.now.as_nanos() + delay.as_nanos() as i64;
                self.in_flight
                    .push(Reverse((at, self.seq, to, bytes.clone())));
            }
        }
    }
}

/// Faults and operations, for schedules.
impl SimControlQuorum {
    /// Proposes `command` at voter `i` (0-based). Refusals (bad input, no leader known)
    /// come back at once and change nothing.
    pub fn propose(&mut self, i: usize, command: Command) -> Result<ProposalId> {
        let now = self.now;
        let mut out = VoterOutputs::default();
        let Some(voter) = self.voters.get_mut(i).and_then(|v| v.voter.as_mut()) else {
            return Err(TidalError::Unavailable(format!("voter {} is down", i + 1)));
        };
        let result = voter.propose(now, command.clone(), &mut out);
        if let Ok(id) = &result {
            self.pending.insert(*id, command);
        }
        self.carry_out(i, out);
        result
    }

    /// Cuts `region` off from every other region, both ways.
    pub fn isolate(&mut self, region: RegionId) -> Vec<PartitionId> {
        (0..self.cfg.regions)
            .map(RegionId)
            .filter(|&r| r != region)
            .map(|r| self.net.partition(region, r, false))
            .collect()
    }

    pub fn partition(&mut self, a: RegionId, b: RegionId, one_way: bool) -> PartitionId {
        self.net.partition(a, b, one_way)
    }

    pub fn heal_all(&mut self) {
        self.net.heal_all();
    }

    /// Stops voter `i` as a crash would; what it persisted stays on its disk.
    pub fn crash_voter(&mut self, i: usize) {
        if let Some(v) = self.voters.get_mut(i) {
            v.voter = None;
        }
    }

    /// Starts a crashed voter from its disk.
    pub fn restart_voter(&mut self, i: usize) -> Result<()> {
        let Some(v) = self.voters.get_mut(i) else {
            return Ok(());
        };
        if v.voter.is_none() {
            v.spec.run = self.rng.next_u64();
            v.voter = Some(ControlVoter::start(&v.spec, self.initial.clone(), &v.disk)?);
        }
        Ok(())
    }

    /// Stops or starts the replica in `region`; a restarted replica comes back as a
    /// follower of the term it knew.
    pub fn set_replica_up(&mut self, region: RegionId, up: bool) {
        if let Some(r) = self.replicas.iter_mut().find(|r| r.region == region) {
            if up && !r.up {
                r.role = NodeRole::Follower;
            }
            r.up = up;
        }
    }

    pub fn voter_is_up(&self, i: usize) -> bool {
        self.voters.get(i).is_some_and(|v| v.voter.is_some())
    }

    /// The voter (0-based) that leads in the highest term among voters that are up.
    pub fn raft_leader(&self) -> Option<usize> {
        self.voters
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.voter.as_ref().map(|v| (i, v)))
            .filter(|(_, v)| v.is_leader())
            .max_by_key(|(_, v)| v.term())
            .map(|(i, _)| i)
    }

    /// The group's leader in the committed plane of voter `i`.
    pub fn group_leader(&self, i: usize) -> Option<NodeId> {
        self.voters
            .get(i)?
            .voter
            .as_ref()?
            .plane()
            .leader_of_group(GROUP)
    }

    /// The replicas that believe they lead, with their terms.
    pub fn acting_leaders(&self) -> Vec<(NodeId, u64)> {
        self.replicas
            .iter()
            .filter(|r| r.up && r.role == NodeRole::Leader)
            .map(|r| (r.node, r.term))
            .collect()
    }

    /// Voter `i`'s applied commands.
    pub fn command_log(&self, i: usize) -> Option<&[LoggedCommand]> {
        Some(self.voters.get(i)?.voter.as_ref()?.plane().command_log())
    }

    /// Raft terms that had a leader, so far: how often leadership moved.
    pub fn raft_terms_led(&self) -> usize {
        self.raft_leaders.len()
    }

    /// Group terms that had a leader in some committed plane: how often failover promoted.
    pub fn group_terms_led(&self) -> usize {
        self.group_leaders.len()
    }

    pub fn acknowledged(&self) -> &BTreeMap<ProposalId, Command> {
        &self.acknowledged
    }

    /// Every broken promise seen so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Checks, after every tick, what must hold at every moment.
    fn check(&mut self) {
        let mut found = Vec::new();
        for v in &self.voters {
            let Some(voter) = v.voter.as_ref() else {
                continue;
            };
            if voter.is_leader() {
                let known = *self.raft_leaders.entry(voter.term()).or_insert(voter.id());
                if known != voter.id() {
                    found.push(format!(
                        "two Raft leaders in term {}: voters {known} and {}",
                        voter.term(),
                        voter.id()
                    ));
                }
            }
            // A demotion leaves its term leaderless; it never names a second leader.
            let plane = voter.plane();
            let term = plane.term_of(GROUP.shard);
            if let Some(leader) = plane.leader_of_group(GROUP) {
                let known = *self.group_leaders.entry((GROUP, term)).or_insert(leader);
                if known != leader {
                    found.push(format!(
                        "two group leaders in term {term}: {} and {}",
                        known.0, leader.0
                    ));
                }
            }
        }
        let mut acting: BTreeMap<u64, NodeId> = BTreeMap::new();
        for (node, term) in self.acting_leaders() {
            if let Some(other) = acting.insert(term, node) {
                found.push(format!(
                    "replicas {} and {} both lead in term {term}",
                    other.0, node.0
                ));
            }
        }
        // Committed logs never diverge: of any two voters, one's applied commands are a
        // prefix of the other's.
        let logs: Vec<&[LoggedCommand]> = (0..self.voters.len())
            .filter_map(|i| self.command_log(i))
            .collect();
        let diverged = logs.iter().zip(logs.iter().skip(1)).any(|(a, b)| {
            let n = a.len().min(b.len());
            a[..n] != b[..n]
        });
        if diverged {
            found.push("two voters applied different committed commands".into());
        }
        // Each broken promise once, with the time it was first seen.
        for f in found {
            if !self.violations.iter().any(|v| v.ends_with(&f)) {
                self.violations
                    .push(format!("at {} ns: {f}", self.now.as_nanos()));
            }
        }
    }
}
