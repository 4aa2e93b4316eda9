//! The replicated control plane in a server process: the same [`ControlVoter`] the
//! simulator drives, here on the wall clock, its Raft messages carried by the peer
//! network and its log kept in `data_dir/control`.
//!
//! Every process sends its replicas' heartbeats to every voter, so whichever voter leads
//! hears the whole cluster (as far as the network lets it). The Raft leader alone turns
//! what it hears into failover commands, and its orders go back over the same links. A
//! process that is not a voter only reports and takes orders.
//!
//! The plane names replicas by one id each, while a process hosts one replica of each of
//! its tenants under its own node id; [`ReplicaIds`] maps between the two. A tenant
//! registered while the cluster runs is opened by the processes the plane places it on,
//! on the Raft leader's [`HostOrder`]s.

mod migrations;
mod voters;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use super::control_admin::ControlHost;
use super::control_admin::{ADMIN_TIMEOUT, AdminRequest, Proposal};
use super::control_status::ControlStatus;
use super::majority::{LatestVerdict, Verdict};
use super::migration_steps::{MigrationPace, StoppedSource, migrate_command};
use super::peers::{ControlFrame, ControlInbox, PeerNetwork};
use super::placement::{
    HostOrder, ReplicaIds, ReplicaOpener, host_orders, initial_plane, place_command,
};
use super::service::ClientService;
use crate::control::consensus::{
    ControlStore, ControlVoter, ProposalId, VoterOutputs, VoterSpec, decode_message, encode_message,
};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::{ControlCommand, NodeReport};
use crate::schema::{NodeId, RegionId, ShardId, Timestamp};
use crate::wal::RealFs;

/// How a process takes part in the control plane.
#[derive(Clone, Debug)]
pub struct ControlSpec {
    /// The processes whose voters replicate the control plane's log.
    pub voters: Vec<NodeId>,
    /// Every process of the cluster, with its region.
    pub nodes: Vec<(NodeId, RegionId)>,
    /// Every region's name, indexed by region id, as operators name them.
    pub region_names: Vec<String>,
    pub shard: ShardId,
    /// Every hosted tenant, the default one first.
    pub tenants: Vec<TenantId>,
    /// One Raft tick.
    pub tick: Duration,
    pub heartbeat_ticks: usize,
    pub election_ticks: usize,
    /// How long a silent replica-group leader keeps its place.
    pub group_election_timeout: Duration,
    pub dir: PathBuf,
    pub snapshot_every: u64,
}

/// Heartbeats of this process's replicas, as their report sinks queue them.
pub type LocalReports = mpsc::UnboundedReceiver<(TenantId, NodeReport)>;

/// Starts the control host of this process on the current runtime.
pub fn start(
    spec: ControlSpec,
    network: PeerNetwork,
    service: Arc<ClientService>,
    reports: LocalReports,
    opener: ReplicaOpener,
    stopped: watch::Receiver<bool>,
) -> Result<ControlHost> {
    let me = network.local_id();
    // Every process runs the Raft member: the configured voters vote, the others follow
    // the committed log as learners (and can be made voters).
    let voters = raft_ids(&spec.voters);
    let learners: Vec<u64> = (spec.nodes.iter())
        .filter(|(n, _)| !spec.voters.contains(n))
        .map(|(n, _)| raft_id(*n))
        .collect();
    let plane = initial_plane(&spec)?;
    let store = ControlStore::open(RealFs::shared(), &spec.dir, &voters, &learners)?;
    let vspec = VoterSpec {
        id: raft_id(me),
        voters,
        learners,
        heartbeat_ticks: spec.heartbeat_ticks,
        election_ticks: spec.election_ticks,
        seed: rand_u64(),
        snapshot_every: spec.snapshot_every,
        run: rand_u64(),
    };
    let voter = Some((ControlVoter::start(&vspec, plane, store.records())?, store));
    let status = Arc::new(Mutex::new(ControlStatus::default()));
    let inbox = network.attach_control();
    let (admin, admin_rx) = mpsc::channel(64);
    let handle = ControlHost::new(status.clone(), admin, spec.shard, spec.region_names.clone());
    let ids = (voter.as_ref()).map_or_else(ReplicaIds::default, |(v, _)| ReplicaIds::of(v.plane()));
    let host = Host {
        me,
        spec,
        ids,
        ids_applied: 0,
        opener,
        migrating: MigrationPace::default(),
        network,
        service,
        voter,
        status,
        pending: BTreeMap::new(),
        unclaimed: Vec::new(),
        verdict: LatestVerdict::default(),
        ticks: 0,
        leaderless: Vec::new(),
        voter_changes: Vec::new(),
    };
    tokio::spawn(host.run(inbox, reports, admin_rx, stopped));
    Ok(handle)
}

fn raft_id(node: NodeId) -> u64 {
    u64::from(node.0) + 1
}

fn raft_ids(nodes: &[NodeId]) -> Vec<u64> {
    nodes.iter().map(|n| raft_id(*n)).collect()
}

/// Seeds each voter's election timeout and run id differently: the runtime needs no
/// replay, only voters that do not all time out together.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Timestamp::now().as_nanos() as u128);
    h.finish()
}

struct Host {
    me: NodeId,
    spec: ControlSpec,
    /// The committed plane's replica ids, refreshed as commands apply.
    ids: ReplicaIds,
    /// The applied index `ids` was derived at.
    ids_applied: u64,
    opener: ReplicaOpener,
    migrating: MigrationPace,
    network: PeerNetwork,
    service: Arc<ClientService>,
    voter: Option<(ControlVoter, ControlStore)>,
    status: Arc<Mutex<ControlStatus>>,
    /// Operators' proposals awaiting their outcome.
    pending: BTreeMap<ProposalId, oneshot::Sender<Result<()>>>,
    /// Outcomes of the last voter step that no caller awaited yet: a proposal that
    /// commits within its own step (a lone voter) has its outcome before its id is known.
    unclaimed: Vec<(ProposalId, Result<()>)>,
    /// The Raft leader's latest verdict on the regions.
    verdict: LatestVerdict,
    ticks: u64,
    /// Operators' commands that arrived while no Raft leader was known (an election under
    /// way): proposed once one is, or failed at their deadline.
    leaderless: Vec<(Proposal, oneshot::Sender<Result<()>>, std::time::Instant)>,
    /// Changes of voters awaiting their application here.
    voter_changes: Vec<voters::VoterChange>,
}

/// How often, in Raft ticks, the Raft leader sends its verdict on the regions.
const VERDICT_EVERY_TICKS: u64 = 5;

/// How often, in Raft ticks, the Raft leader repeats its orders to host the tenants
/// registered while the cluster ran: a process that restarted, or missed the first one,
/// opens its replica within this.
const HOST_ORDERS_EVERY_TICKS: u64 = 10;

/// How often, in Raft ticks, the Raft leader takes the next steps of running migrations.
const MIGRATION_EVERY_TICKS: u64 = 2;

impl Host {
    async fn run(
        mut self,
        mut inbox: ControlInbox,
        mut reports: LocalReports,
        mut admin: mpsc::Receiver<AdminRequest>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(self.spec.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = ticks.tick() => self.tick(),
                Some((from, tenant, frame)) = inbox.recv() => self.heard(from, tenant, frame),
                Some((tenant, report)) = reports.recv() => self.report(tenant, report),
                Some((command, reply)) = admin.recv() => self.propose(command, reply),
            }
        }
    }

    /// An operator's command: checked and proposed here (a follower forwards it to the
    /// Raft leader); the reply waits for this voter to apply it.
    fn propose(&mut self, proposal: Proposal, reply: oneshot::Sender<Result<()>>) {
        let votes = (self.voter.as_ref()).is_some_and(|(v, _)| v.voters().contains(&v.id()));
        if !votes {
            let voters: Vec<String> = (self.voter.as_ref())
                .map(|(v, _)| v.voters())
                .unwrap_or_default()
                .iter()
                .map(|v| (v - 1).to_string())
                .collect();
            let _ = reply.send(Err(TidalError::Unavailable(format!(
                "node {} is not a control-plane voter; send admin commands to one of nodes {}",
                self.me.0,
                voters.join(", ")
            ))));
            return;
        }
        let leader_known = self
            .voter
            .as_ref()
            .is_some_and(|(v, _)| v.leader().is_some());
        if !leader_known {
            let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
            self.leaderless.push((proposal, reply, deadline));
            return;
        }
        if let Proposal::Voters { node, add } = proposal {
            self.change_voters(node, add, reply);
            return;
        }
        let command = match (proposal, self.voter.as_ref()) {
            (Proposal::Ready(command), _) => Ok(command),
            (Proposal::Voters { .. }, _) => Err(TidalError::Unavailable(
                "a change of voters is not a command".into(),
            )),
            (Proposal::Register(config), Some((v, _))) => {
                place_command(&self.spec, v.plane(), config)
            }
            (Proposal::Migrate { tenant, from, to }, Some((v, _))) => {
                migrate_command(v.plane(), tenant, from, to)
            }
            (_, None) => Err(TidalError::Unavailable(
                "this node's voter has stopped".into(),
            )),
        };
        let command = match command {
            Ok(command) => command,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let now = Timestamp::now();
        let mut proposed = None;
        self.with_voter(|v, out| {
            proposed = Some(v.propose(now, command, out));
            Ok(())
        });
        match proposed {
            Some(Ok(id)) => match self.unclaimed.iter().position(|(u, _)| *u == id) {
                // Committed and applied within the proposal (a voter alone in its group).
                Some(i) => {
                    let (_, result) = self.unclaimed.swap_remove(i);
                    let _ = reply.send(result);
                }
                None => {
                    self.pending.insert(id, reply);
                }
            },
            Some(Err(e)) => {
                let _ = reply.send(Err(e));
            }
            None => {
                let _ = reply.send(Err(TidalError::Unavailable(
                    "this node's voter has stopped".into(),
                )));
            }
        }
    }

    fn tick(&mut self) {
        self.answer_voter_changes();
        // Callers that gave up no longer wait for their outcome.
        self.pending.retain(|_, reply| !reply.is_closed());
        let now = Timestamp::now();
        self.with_voter(|v, out| v.tick(now, out));
        self.propose_leaderless();
        let orders = match &self.voter {
            Some((v, _)) => v.orders(now),
            None => Vec::new(),
        };
        for (replica, order) in orders {
            self.order(replica, order);
        }
        self.ticks += 1;
        if self.ticks.is_multiple_of(VERDICT_EVERY_TICKS) {
            self.send_verdict(now);
        }
        if self.ticks.is_multiple_of(HOST_ORDERS_EVERY_TICKS) {
            self.send_host_orders();
        }
        if self.ticks.is_multiple_of(MIGRATION_EVERY_TICKS) {
            self.run_migrations(now);
        }
        self.publish_status();
    }

    /// Proposes the commands that waited for an election, once it has a winner; fails
    /// those whose caller would time out anyway.
    fn propose_leaderless(&mut self) {
        if self.leaderless.is_empty() {
            return;
        }
        let leader_known = self
            .voter
            .as_ref()
            .is_some_and(|(v, _)| v.leader().is_some());
        let waiting = std::mem::take(&mut self.leaderless);
        for (proposal, reply, deadline) in waiting {
            if reply.is_closed() {
                continue;
            }
            if leader_known {
                self.propose(proposal, reply);
            } else if std::time::Instant::now() >= deadline {
                let _ = reply.send(Err(TidalError::Unavailable(
                    "the control plane elected no leader in time: is a majority of voters \
                     up and reachable?"
                        .into(),
                )));
            } else {
                self.leaderless.push((proposal, reply, deadline));
            }
        }
    }

    /// The Raft leader tells every process what it sees of the regions.
    fn send_verdict(&mut self, now: Timestamp) {
        let Some((voter, _)) = self.voter.as_ref().filter(|(v, _)| v.is_leader()) else {
            return;
        };
        let verdict = Verdict::of(voter.plane(), now, voter.term(), self.me);
        for &(node, _) in &self.spec.nodes {
            if node != self.me {
                let frame = ControlFrame::Verdict(verdict.clone());
                self.network.send_control(node, TenantId::DEFAULT, frame);
            }
        }
        self.verdict.hear(verdict);
    }

    /// The Raft leader tells each process which registered tenants it must host.
    fn send_host_orders(&mut self) {
        let Some((voter, _)) = self.voter.as_ref().filter(|(v, _)| v.is_leader()) else {
            return;
        };
        for (process, tenant, order) in host_orders(voter.plane(), &self.spec.tenants) {
            if process == self.me {
                self.host(&order);
            } else {
                let frame = ControlFrame::Host(order);
                self.network.send_control(process, tenant, frame);
            }
        }
    }

    fn send_order(&self, process: NodeId, tenant: TenantId, order: ControlCommand) {
        if process == self.me {
            self.obey(tenant, order);
        } else {
            self.network
                .send_control(process, tenant, ControlFrame::Order(order));
        }
    }

    fn send_frame(&mut self, process: NodeId, tenant: TenantId, frame: ControlFrame) {
        if process == self.me {
            self.heard(process, tenant, frame);
        } else {
            self.network.send_control(process, tenant, frame);
        }
    }

    /// Opens the ordered replica unless this process hosts it already.
    fn host(&self, order: &HostOrder) {
        let tenant = order.config.tenant_id;
        if self.service.hosts(tenant) {
            return;
        }
        match self.opener.open(order) {
            Ok(()) => tracing::info!(
                tenant = tenant.0,
                "hosting a replica the control plane placed here"
            ),
            Err(e) => {
                tracing::error!(tenant = tenant.0, error = %e, "the replica the control plane placed here did not open")
            }
        }
    }

    fn heard(&mut self, from: NodeId, tenant: TenantId, frame: ControlFrame) {
        match frame {
            ControlFrame::Raft(bytes) => match decode_message(&bytes) {
                Ok(msg) => self.with_voter(|v, out| v.step(msg, out)),
                Err(e) => tracing::warn!(peer = from.0, error = %e, "a bad raft message"),
            },
            ControlFrame::Report(report) => self.observe(from, tenant, report),
            ControlFrame::Order(command) => self.obey(tenant, command),
            ControlFrame::Verdict(verdict) => self.verdict.hear(verdict),
            ControlFrame::Host(order) => self.host(&order),
            ControlFrame::Retire {
                hand_over_to,
                migration,
            } => self.stop_serving(from, tenant, hand_over_to, migration),
            ControlFrame::Retired { migration, vv } => {
                let answer = StoppedSource {
                    process: from,
                    migration,
                    vv,
                };
                self.migrating.source_stopped(tenant, answer)
            }
            ControlFrame::Delete { migration } => self.delete(tenant, migration),
        }
    }

    /// Deletes this process's copy of a migrated tenant, open or not: a process that
    /// restarted after the source left the plane does not open the tenant again, but its
    /// files are still there to delete.
    fn delete(&self, tenant: TenantId, migration: u64) {
        if tenant == TenantId::DEFAULT {
            return;
        }
        match self.opener.delete(tenant, migration) {
            Ok(false) => {}
            Ok(true) => tracing::info!(
                tenant = tenant.0,
                "deleted the replica a migration moved away"
            ),
            Err(e) => {
                tracing::error!(tenant = tenant.0, error = %e, "deleting a migrated replica failed")
            }
        }
    }

    /// A local replica's heartbeat goes to every voter, this process's own included.
    fn report(&mut self, tenant: TenantId, report: NodeReport) {
        // To the voters of the configuration applied here: a learner made a voter may
        // lead, and needs the heartbeats to decide failover.
        let voters: Vec<NodeId> = match &self.voter {
            Some((v, _)) => v
                .voters()
                .iter()
                .map(|id| NodeId((id - 1) as u16))
                .collect(),
            None => self.spec.voters.clone(),
        };
        for voter in voters {
            if voter == self.me {
                self.observe(self.me, tenant, report.clone());
            } else {
                self.network
                    .send_control(voter, tenant, ControlFrame::Report(report.clone()));
            }
        }
    }

    fn observe(&mut self, from: NodeId, tenant: TenantId, mut report: NodeReport) {
        let Some((voter, _)) = self.voter.as_mut() else {
            return;
        };
        let Some(id) = self.ids.replica(from, tenant) else {
            return;
        };
        report.node = id;
        report.behind_log = report
            .behind_log
            .iter()
            .filter_map(|n| self.ids.replica(*n, tenant))
            .collect();
        voter.observe(Timestamp::now(), report);
    }

    /// Sends the leader's order to the process that hosts the replica.
    fn order(&self, replica: NodeId, order: ControlCommand) {
        if let Some((process, tenant)) = self.ids.process(replica) {
            self.send_order(process, tenant, order);
        }
    }

    fn obey(&self, tenant: TenantId, order: ControlCommand) {
        if let Some(db) = self.service.replica(tenant)
            && let Err(e) = db.apply_control(order)
        {
            tracing::warn!(tenant = tenant.0, error = %e, "an order of the control plane failed");
        }
    }

    /// Runs `f` on the voter, then persists its records and sends its messages, in that
    /// order: a vote or an acknowledgement must be durable before anyone hears of it.
    fn with_voter(&mut self, f: impl FnOnce(&mut ControlVoter, &mut VoterOutputs) -> Result<()>) {
        let Some((voter, store)) = self.voter.as_mut() else {
            return;
        };
        let mut out = VoterOutputs::default();
        let stepped = f(voter, &mut out);
        if let Err(e) = stepped {
            tracing::error!(error = %e, "the control-plane voter failed a step");
        }
        if let Err(e) = store.append(&out.records) {
            // Without its records on disk the voter must not speak: a vote it forgot
            // after a crash could elect two leaders in one term.
            tracing::error!(error = %e, "the control log could not be written; this voter stops");
            self.voter = None;
            return;
        }
        let applied_more = voter.applied() != self.ids_applied;
        if applied_more {
            self.ids = ReplicaIds::of(voter.plane());
            self.ids_applied = voter.applied();
        }
        for msg in out.messages {
            let to = NodeId((msg.to.saturating_sub(1)) as u16);
            match encode_message(&msg) {
                Ok(bytes) => {
                    self.network
                        .send_control(to, TenantId::DEFAULT, ControlFrame::Raft(bytes))
                }
                Err(e) => tracing::error!(error = %e, "a raft message did not encode"),
            }
        }
        if applied_more {
            // An operator who reads the status after the reply sees the command, and a
            // tenant just placed is opened without waiting for the next round of orders.
            self.publish_status();
            self.send_host_orders();
        }
        self.unclaimed.clear();
        for (id, result) in out.outcomes {
            match self.pending.remove(&id) {
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => self.unclaimed.push((id, result)),
            }
        }
    }

    fn publish_status(&self) {
        // Three election timeouts without a verdict: this process has lost the majority.
        let stale_after = self.spec.tick * (3 * self.spec.election_ticks) as u32;
        let majority = self.verdict.view(stale_after, &self.spec.region_names);
        let voter = self.voter.as_ref().map(|(v, _)| v);
        let status = ControlStatus::of(voter, &self.ids, &self.spec, majority);
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }
}
