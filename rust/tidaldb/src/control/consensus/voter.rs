//! One voter of the control plane's Raft group.

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, Entry, EntryType, HardState, Message, Snapshot};
use raft::{Config, RawNode, StateRole};

use super::log::{ControlLog, ControlRecord, StoredEntry, StoredSnapshot};
use super::proposal::{Proposal, ProposalId};
use super::{corrupt, raft_logger};
use crate::control::{Command, ControlPlane, GroupId, LoggedCommand};
use crate::error::{Result, TidalError};
use crate::node::{ControlCommand, NodeReport};
use crate::schema::{NodeId, Timestamp};

/// How one voter takes part.
#[derive(Clone, Debug)]
pub struct VoterSpec {
    /// This voter's Raft id: at least 1, and one of `voters` or `learners`.
    pub id: u64,
    /// The group's first configuration.
    pub voters: Vec<u64>,
    /// Members of the first configuration that follow the log without a vote (a learner
    /// can be made a voter by a configuration change).
    pub learners: Vec<u64>,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Ticks a follower waits for the leader before it campaigns: a fresh draw in
    /// `[election_ticks, 2 * election_ticks)` whenever the voter's term or role changes,
    /// so that two candidates that tied once do not tie again. raft-rs would draw from a
    /// thread-local generator, which would make the simulator unrepeatable; the voter
    /// draws from `seed` instead and overrides raft-rs's draw.
    pub election_ticks: usize,
    /// Seeds this voter's election timeouts: from the simulator's seed, or at random in
    /// the runtime.
    pub seed: u64,
    /// Entries applied past the last snapshot before the log is compacted into a new one.
    pub snapshot_every: u64,
    /// Distinct for every start of this voter (the driver draws it), so proposals of an
    /// earlier run are never taken for this run's.
    pub run: u64,
}

/// What one call asked the driver to do. Records go to stable storage, in order,
/// before any message is sent: a vote or an acknowledged entry must survive a crash.
#[derive(Debug, Default)]
pub struct VoterOutputs {
    pub records: Vec<ControlRecord>,
    pub messages: Vec<Message>,
    /// Proposals of this voter whose commands were applied (or refused when applied).
    pub outcomes: Vec<(ProposalId, Result<()>)>,
}

/// A voter: raft-rs's `RawNode` over the control plane's command log, and the plane that
/// the committed commands built.
pub struct ControlVoter {
    id: u64,
    run: u64,
    pub(super) raw: RawNode<ControlLog>,
    /// The plane before any command: snapshots are replayed onto it.
    initial: ControlPlane,
    plane: ControlPlane,
    applied: u64,
    next_seq: u64,
    snapshot_every: u64,
    /// Failover commands proposed and not yet applied, by group, so that a leader ticking
    /// faster than its log commits does not propose the same promotion again.
    failover_in_flight: BTreeMap<GroupId, Command>,
    /// Operators' commands proposed here and not yet applied, with the (leader, term)
    /// they were handed to. raft-rs drops a proposal forwarded to a leader that then
    /// dies or is deposed, without a word; one still waiting when the leadership changes
    /// is proposed again under its own id (see `repropose_after_a_leader_change`).
    awaiting: BTreeMap<ProposalId, Awaiting>,
    election_ticks: usize,
    /// The state of the generator that draws election timeouts (splitmix64).
    timeout_draws: u64,
    /// Term, role and leader when the election timeout was last drawn.
    drawn_for: (u64, StateRole, u64),
}

/// An operator's command waiting to be applied.
#[derive(Clone, Debug)]
struct Awaiting {
    proposal: Proposal,
    handed_to: (u64, u64),
}

impl std::fmt::Debug for ControlVoter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlVoter")
            .field("id", &self.id)
            .field("term", &self.raw.raft.term)
            .field("leader", &self.raw.raft.leader_id)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl ControlVoter {
    /// A voter from what it persisted (`records`, empty on first start), over `initial`,
    /// the plane every voter of the cluster starts from.
    pub fn start(
        spec: &VoterSpec,
        initial: ControlPlane,
        records: &[ControlRecord],
    ) -> Result<Self> {
        let member = spec.voters.contains(&spec.id) || spec.learners.contains(&spec.id);
        if spec.id == 0 || !member {
            return Err(TidalError::InvalidArgument {
                name: "voter",
                reason: format!(
                    "voter {} is not one of the voters {:?} or learners {:?}",
                    spec.id, spec.voters, spec.learners
                ),
            });
        }
        let log = ControlLog::recover(&spec.voters, &spec.learners, records)?;
        let snapshot = log.stored_snapshot().clone();
        let plane = replay(&initial, &snapshot)?;
        let config = Config {
            id: spec.id,
            election_tick: spec.election_ticks,
            heartbeat_tick: spec.heartbeat_ticks,
            min_election_tick: spec.election_ticks,
            max_election_tick: 2 * spec.election_ticks,
            // Committed entries past the snapshot are handed out again and re-applied.
            applied: snapshot.index,
            // A leader that cannot hear a quorum steps down, and a partitioned voter
            // cannot disrupt the group with term bumps when it comes back.
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Config::default()
        };
        config.validate().map_err(raft_error)?;
        let raw = RawNode::new(&config, log, &raft_logger::logger(spec.id)).map_err(raft_error)?;
        let mut voter = ControlVoter {
            id: spec.id,
            run: spec.run,
            raw,
            initial,
            plane,
            applied: snapshot.index,
            next_seq: 0,
            snapshot_every: spec.snapshot_every.max(1),
            failover_in_flight: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            election_ticks: spec.election_ticks,
            timeout_draws: spec.seed,
            drawn_for: (u64::MAX, StateRole::Follower, u64::MAX),
        };
        voter.redraw_election_timeout();
        // Re-applies the committed entries past the snapshot, so the plane is current
        // from the start. Nothing new is decided here: it only reads what was persisted.
        let mut replayed = VoterOutputs::default();
        voter.process_ready(&mut replayed)?;
        debug_assert!(
            replayed.messages.is_empty()
                && !replayed
                    .records
                    .iter()
                    .any(|r| matches!(r, ControlRecord::Entries(_))),
            "a restart only re-applies what it persisted"
        );
        Ok(voter)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The plane as the commands applied here built it, with this voter's observations.
    pub fn plane(&self) -> &ControlPlane {
        &self.plane
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The Raft term this voter is in.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The leader this voter knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&id| id != 0)
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn committed(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// One tick of the clock. A leader also proposes the failover its heartbeats call for.
    pub fn tick(&mut self, now: Timestamp, out: &mut VoterOutputs) -> Result<()> {
        let was_leader = self.is_leader();
        self.raw.tick();
        self.redraw_election_timeout();
        if was_leader && !self.is_leader() {
            self.failover_in_flight.clear();
        }
        if self.is_leader() {
            for command in self.plane.failover_commands(now) {
                let Some(group) = failover_group(&command) else {
                    continue;
                };
                if self.failover_in_flight.get(&group) == Some(&command) {
                    continue;
                }
                if self.submit(now, command.clone()).is_ok() {
                    self.failover_in_flight.insert(group, command);
                }
            }
        }
        self.repropose_after_a_leader_change(out);
        self.process_ready(out)
    }

    /// Proposes again, under the same id, each operator's command still waiting when the
    /// leadership has changed since it was handed over; a command that is not idempotent
    /// is failed instead, since the first proposal may yet commit. Applying an idempotent
    /// command twice changes nothing the first did not, and the caller hears the first.
    fn repropose_after_a_leader_change(&mut self, out: &mut VoterOutputs) {
        let now = (self.raw.raft.leader_id, self.raw.raft.term);
        if now.0 == raft::INVALID_ID {
            return;
        }
        let stale: Vec<ProposalId> = (self.awaiting.iter())
            .filter(|(_, a)| a.handed_to != now)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let Some(mut waiting) = self.awaiting.remove(&id) else {
                continue;
            };
            if !waiting.proposal.logged.command.is_idempotent() {
                out.outcomes.push((
                    id,
                    Err(TidalError::Unavailable(
                        "the control-plane leader changed while the command was in flight; \
                         it may still commit: read the control status before sending it again"
                            .into(),
                    )),
                ));
                continue;
            }
            let sent = (waiting.proposal.encode()).and_then(|bytes| {
                (self.raw.propose(Vec::new(), bytes))
                    .map_err(|e| TidalError::Unavailable(format!("the proposal was dropped: {e}")))
            });
            match sent {
                Ok(()) => {
                    waiting.handed_to = now;
                    self.awaiting.insert(id, waiting);
                }
                Err(e) => out.outcomes.push((id, Err(e))),
            }
        }
    }

    /// A message from another voter.
    pub fn step(&mut self, msg: Message, out: &mut VoterOutputs) -> Result<()> {
        let was_leader = self.is_leader();
        // A message raft-rs refuses (from an unknown peer, say) changes nothing.
        if let Err(e) = self.raw.step(msg) {
            tracing::debug!(voter = self.id, error = %e, "a raft message was refused");
        }
        self.redraw_election_timeout();
        if was_leader && !self.is_leader() {
            self.failover_in_flight.clear();
        }
        self.process_ready(out)
    }

    /// A replica's heartbeat, heard by this voter.
    pub fn observe(&mut self, at: Timestamp, report: NodeReport) {
        self.plane.observe(at, report);
    }

    /// The roles replicas must take, from the leader only: a voter that is not leading
    /// may hold a stale plane, and its orders could contradict the leader's.
    pub fn orders(&self, now: Timestamp) -> Vec<(NodeId, ControlCommand)> {
        if self.is_leader() {
            self.plane.role_orders(now)
        } else {
            Vec::new()
        }
    }

    /// Draws a new election timeout when the term, role or leader changed (raft-rs has
    /// just drawn one of its own then, from a generator the simulator cannot seed).
    fn redraw_election_timeout(&mut self) {
        let now = (
            self.raw.raft.term,
            self.raw.raft.state,
            self.raw.raft.leader_id,
        );
        if now == self.drawn_for {
            return;
        }
        self.drawn_for = now;
        // splitmix64: tiny, and good enough to spread timeouts.
        self.timeout_draws = self.timeout_draws.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.timeout_draws;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let ticks = self.election_ticks + (z % self.election_ticks as u64) as usize;
        debug_assert!(ticks >= self.election_ticks && ticks < 2 * self.election_ticks);
        self.raw.raft.set_randomized_election_timeout(ticks);
    }

    /// Proposes `command`. It is checked against this voter's plane first, so bad input
    /// never enters the log (at a follower, a conflict with the state is left to the
    /// log, whose refusal changes nothing); it takes effect once committed, and its
    /// outcome comes back in [`VoterOutputs::outcomes`]. A follower forwards it to the
    /// leader; with no leader known it is refused as `Unavailable`.
    pub fn propose(
        &mut self,
        now: Timestamp,
        command: Command,
        out: &mut VoterOutputs,
    ) -> Result<ProposalId> {
        let mut trial = self.plane.clone();
        if let Err(refused) = trial.apply(now, command.clone()) {
            // A follower's plane may lag the log (a rejoin committed a moment ago), so a
            // refusal that depends on the state (a Conflict) is left to the committed log,
            // where every voter decides it alike and a refused command changes nothing.
            // Bad input (an unknown host, a bad argument) is refused here and now.
            if self.is_leader() || !matches!(refused, TidalError::Conflict(_)) {
                return Err(refused);
            }
        }
        let proposal = self.submit(now, command)?;
        let id = proposal.id;
        let handed_to = (self.raw.raft.leader_id, self.raw.raft.term);
        self.awaiting.insert(
            id,
            Awaiting {
                proposal,
                handed_to,
            },
        );
        self.process_ready(out)?;
        Ok(id)
    }

    fn submit(&mut self, now: Timestamp, command: Command) -> Result<Proposal> {
        if self.leader().is_none() {
            return Err(TidalError::Unavailable(
                "the control plane has no leader this voter knows of (an election is \
                 under way, or this voter is cut off from the majority); retry"
                    .into(),
            ));
        }
        self.next_seq += 1;
        let id = ProposalId {
            voter: self.id,
            run: self.run,
            seq: self.next_seq,
        };
        let proposal = Proposal {
            id,
            logged: LoggedCommand {
                at_ns: now.as_nanos(),
                command,
            },
        };
        self.raw
            .propose(Vec::new(), proposal.encode()?)
            .map_err(|e| TidalError::Unavailable(format!("the proposal was dropped: {e}")))?;
        Ok(proposal)
    }

    /// Carries out everything raft-rs has ready: messages out, snapshots and committed
    /// entries applied, new entries and hard state recorded.
    pub(super) fn process_ready(&mut self, out: &mut VoterOutputs) -> Result<()> {
        while self.raw.has_ready() {
            let mut ready = self.raw.ready();
            out.messages.extend(ready.take_messages());
            if !ready.snapshot().is_empty() {
                self.install_snapshot(ready.snapshot(), out)?;
            }
            self.apply_entries(ready.take_committed_entries(), out)?;
            if !ready.entries().is_empty() {
                self.raw.mut_store().append(ready.entries())?;
                let stored = ready
                    .entries()
                    .iter()
                    .map(StoredEntry::from_entry)
                    .collect();
                out.records.push(ControlRecord::Entries(stored));
            }
            if let Some(hs) = ready.hs() {
                self.record_hard_state(hs.clone(), out);
            }
            out.messages.extend(ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                let mut hs = self.raw.store().hard_state().clone();
                hs.commit = commit;
                self.record_hard_state(hs, out);
            }
            out.messages.extend(light.take_messages());
            self.apply_entries(light.take_committed_entries(), out)?;
            self.raw.advance_apply();
        }
        self.compact_if_due(out)
    }

    fn record_hard_state(&mut self, hs: HardState, out: &mut VoterOutputs) {
        out.records.push(ControlRecord::HardState {
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
        });
        self.raw.mut_store().set_hard_state(hs);
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, out: &mut VoterOutputs) -> Result<()> {
        for entry in entries {
            debug_assert!(
                entry.index == self.applied + 1,
                "entries are applied in order, once"
            );
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {}
                EntryType::EntryNormal => self.apply_proposal(&entry, out)?,
                EntryType::EntryConfChange => {
                    let mut cc = ConfChange::default();
                    cc.merge_from_bytes(&entry.data)
                        .map_err(|e| corrupt(entry.index, format!("a conf change: {e}")))?;
                    let cs = self.raw.apply_conf_change(&cc).map_err(raft_error)?;
                    self.raw.mut_store().set_conf_state(cs);
                }
                EntryType::EntryConfChangeV2 => {
                    let mut cc = ConfChangeV2::default();
                    cc.merge_from_bytes(&entry.data)
                        .map_err(|e| corrupt(entry.index, format!("a conf change: {e}")))?;
                    let cs = self.raw.apply_conf_change(&cc).map_err(raft_error)?;
                    self.raw.mut_store().set_conf_state(cs);
                }
            }
            self.applied = entry.index;
        }
        Ok(())
    }

    fn apply_proposal(&mut self, entry: &Entry, out: &mut VoterOutputs) -> Result<()> {
        let proposal = Proposal::decode(&entry.data, entry.index)?;
        let at = Timestamp::from_nanos(proposal.logged.at_ns)
            .map_err(|e| corrupt(entry.index, format!("a command's time: {e}")))?;
        if let Some(group) = failover_group(&proposal.logged.command) {
            self.failover_in_flight.remove(&group);
        }
        // Every voter applies the same commands to the same state, so a command refused
        // here is refused everywhere, and changes nothing anywhere.
        let result = self.plane.apply(at, proposal.logged.command);
        if let Err(e) = &result {
            tracing::debug!(voter = self.id, index = entry.index, error = %e, "a committed control command was refused");
        }
        // The caller hears the first application; a re-proposal's second one is silent.
        if self.awaiting.remove(&proposal.id).is_some() {
            out.outcomes.push((proposal.id, result));
        }
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot, out: &mut VoterOutputs) -> Result<()> {
        let stored = StoredSnapshot::from_snapshot(snapshot);
        let mut plane = replay(&self.initial, &stored)?;
        plane.adopt_observations(&self.plane);
        self.plane = plane;
        self.applied = stored.index;
        self.failover_in_flight.clear();
        self.raw.mut_store().install(stored.clone());
        out.records.push(ControlRecord::Snapshot(stored));
        Ok(())
    }

    /// Folds the applied entries into a snapshot once enough have gathered, so the log
    /// (in memory and on disk) stays bounded.
    fn compact_if_due(&mut self, out: &mut VoterOutputs) -> Result<()> {
        let base = self.raw.store().stored_snapshot();
        if self.applied < base.index + self.snapshot_every {
            return Ok(());
        }
        let term = raft::Storage::term(self.raw.store(), self.applied).map_err(raft_error)?;
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let data = postcard::to_stdvec(self.plane.command_log()).map_err(|e| {
            TidalError::InvalidArgument {
                name: "control plane",
                reason: format!("its command log does not encode: {e}"),
            }
        })?;
        let snapshot = StoredSnapshot {
            index: self.applied,
            term,
            voters: conf.voters,
            learners: conf.learners,
            voters_outgoing: conf.voters_outgoing,
            learners_next: conf.learners_next,
            auto_leave: conf.auto_leave,
            data,
        };
        self.raw.mut_store().install(snapshot.clone());
        out.records.push(ControlRecord::Snapshot(snapshot));
        Ok(())
    }
}

/// The group a failover command is about.
fn failover_group(command: &Command) -> Option<GroupId> {
    match command {
        Command::Promote { group, .. } | Command::Demote { group } => Some(*group),
        _ => None,
    }
}

/// The plane a snapshot describes: its commands replayed onto `initial`.
fn replay(initial: &ControlPlane, snapshot: &StoredSnapshot) -> Result<ControlPlane> {
    let mut plane = initial.clone();
    if snapshot.data.is_empty() {
        return Ok(plane);
    }
    let commands: Vec<LoggedCommand> = postcard::from_bytes(&snapshot.data)
        .map_err(|e| corrupt(snapshot.index, format!("a snapshot does not decode: {e}")))?;
    for logged in commands {
        let at = Timestamp::from_nanos(logged.at_ns)
            .map_err(|e| corrupt(snapshot.index, format!("a command's time: {e}")))?;
        plane.apply(at, logged.command).map_err(|e| {
            corrupt(
                snapshot.index,
                format!("a snapshot's command does not replay: {e}"),
            )
        })?;
    }
    Ok(plane)
}

pub(super) fn raft_error(e: raft::Error) -> TidalError {
    match e {
        raft::Error::Store(s) => corrupt(0, format!("raft storage: {s}")),
        other => TidalError::Unavailable(format!("raft: {other}")),
    }
}
