//! The sans-IO replica: `node.handle(now, input, &mut outputs)`.
//!
//! A node admits client writes, stamps and applies them, keeps the log its peers still
//! need, replicates, reconciles and follows the control plane's leadership orders. It never
//! reads a clock, spawns a thread or touches a file or socket: drivers hand it the time and
//! carry out its [`Outputs`]. The simulator and the tokio runtime run this same code.

mod admission;
mod escrow;
mod hard_state;
mod in_flight;
mod inbound;
mod lag;
mod log;
mod protocol;
mod reconcile;
mod replication;
pub mod routing;
mod shipping;
#[cfg(test)]
mod test_support;
mod unlogged;

pub use admission::ClientOp;
pub use hard_state::HardState;
pub use lag::{LagReading, ReplicationLagGauge, events_behind};
pub use log::{DEFAULT_MAX_RETAINED, DEFAULT_MAX_RETAINED_OWN, RetainedLog};
pub use unlogged::{SignalColumns, Times};

/// How far ahead of a node's clock a write's timestamp may be, unless configured: an
/// event far ahead would make its entity's score grow without bound when read before it.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(300);
pub use protocol::{
    ControlCommand, Input, LogRead, Message, NodeReport, Outputs, RequestId, WriteAck,
    WriteConcern, WriteRequest,
};
pub use reconcile::{LogRange, ReconcilePlan, ReconciliationEngine};
pub use routing::{NodeRole, RangeTable, RoutingStrategy, ShardRouter};

use std::sync::Arc;
use std::time::Duration;

use crate::crdt::{HlcTimestamp, HybridClock};
use crate::error::{Result, TidalError};
use crate::event::{ClientTag, Event, EventId, TenantId, VersionVector};
use crate::ledger::Ledger;
use crate::query::ReplicaAddr;
use crate::schema::{NodeId, RegionId, ShardId, Timestamp};
use crate::tenancy::TenantQuotas;

use inbound::EarlyRuns;
use replication::{Awaiting, Peer};

/// Another replica of this node's shard: its id, and the region it lives in (which names
/// it in degraded queries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerAddr {
    pub node: NodeId,
    pub region: RegionId,
}

impl PeerAddr {
    pub fn new(node: NodeId, region: RegionId) -> Self {
        PeerAddr { node, region }
    }
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    pub region: RegionId,
    pub shard: ShardId,
    pub role: NodeRole,
    pub tenant: TenantId,
    /// The other replicas of this shard.
    pub peers: Vec<PeerAddr>,
    /// How far ahead of the local clock a remote HLC may be before it is refused.
    pub max_clock_drift: Duration,
    /// How far ahead of the node's clock a client-given event timestamp may be.
    pub max_future_skew: Duration,
    /// How often the node tells its peers (and the control plane) its version vector.
    pub heartbeat_interval: Duration,
    /// A peer silent this long counts as unreachable: no eager pushes go to it, queries
    /// report it, and hearing from it again starts a reconciliation.
    pub peer_timeout: Duration,
    /// How long an unacknowledged push, or a gap a peer reports, may last before the node
    /// ships the events again (retransmission, and forwarding of other origins' events).
    pub repair_after: Duration,
    /// Bound on the retained log's events relayed from other origins (see [`RetainedLog`]).
    pub max_retained: usize,
    /// Bound on the retained log's own events, which no other replica can supply.
    pub max_retained_own: usize,
    /// Events per replication frame at most.
    pub max_frame_events: usize,
    /// The tenant's quotas, checked at admission; `None` admits without limits.
    pub quotas: Option<Arc<TenantQuotas>>,
    /// The replica of the group that starts with all the rights of the tenant's hard
    /// caps (see `escrow`); `None` names this one, as for a replica without peers. Every
    /// replica of a group must name the same one, or the caps do not hold.
    pub rights_home: Option<NodeId>,
    /// The peer that holds every event this replica's id may have originated before, in a
    /// replica of the group since deleted: a migration's target may sit on a process the
    /// tenant once left (replica ids are the processes'), and the migration's source holds
    /// all the old replica had. Until that peer has shown it holds no more of this id's
    /// events than this replica does, or has left the group, the replica originates none
    /// (no client write, no grant), or its new events would take ids the old ones hold.
    pub own_history_from: Option<NodeId>,
    /// Threads a large batch of events (a bulk write's chunk, a replicated frame) may be
    /// applied on, partitioned by entity, while that is timed faster than one thread. The
    /// events are still stamped and logged on one thread, in one order, and every count
    /// gives bit-identical state.
    pub ingest_threads: usize,
}

/// The default of [`NodeConfig::ingest_threads`]: every core the process may use.
pub fn default_ingest_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: NodeId(0),
            region: RegionId(0),
            shard: ShardId(0),
            role: NodeRole::Single,
            tenant: TenantId::DEFAULT,
            peers: Vec::new(),
            max_clock_drift: HybridClock::DEFAULT_MAX_DRIFT,
            max_future_skew: DEFAULT_MAX_FUTURE_SKEW,
            heartbeat_interval: Duration::from_millis(50),
            peer_timeout: Duration::from_millis(500),
            repair_after: Duration::from_millis(200),
            max_retained: DEFAULT_MAX_RETAINED,
            max_retained_own: DEFAULT_MAX_RETAINED_OWN,
            max_frame_events: 1 << 16,
            quotas: None,
            rights_home: None,
            own_history_from: None,
            ingest_threads: default_ingest_threads(),
        }
    }
}

#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    clock: HybridClock,
    ledger: Ledger,
    log: RetainedLog,
    peers: Vec<Peer>,
    term: u64,
    role: NodeRole,
    /// Refuses client writes for good (see [`ControlCommand::StopServing`]).
    stopped_serving: bool,
    /// The peer yet to show it holds no more of this replica's own events than it does (see
    /// [`NodeConfig::own_history_from`]); it originates no event until none is left.
    own_history_unconfirmed: Vec<NodeId>,
    /// What the driver has confirmed durable; only this much of our own events leaves the
    /// node, so a crash that loses the unsynced tail never reuses a seq a peer has seen.
    durable: VersionVector,
    awaiting: Vec<Awaiting>,
    /// Pushed runs that arrived ahead of a gap.
    early: EarlyRuns,
    last_heartbeat: Option<Timestamp>,
    lag: ReplicationLagGauge,
    asks: escrow::RightsAsks,
}

impl Node {
    /// A node over a (possibly recovered) ledger; `clock_floor` is the newest HLC in it.
    /// Everything in `ledger` counts as durable.
    pub fn new(cfg: NodeConfig, mut ledger: Ledger, clock_floor: HlcTimestamp) -> Self {
        ledger.set_apply_threads(cfg.ingest_threads);
        let mut clock = HybridClock::new(cfg.id, cfg.max_clock_drift);
        clock.observe(clock_floor);
        let peers = cfg
            .peers
            .iter()
            .filter(|p| p.node != cfg.id)
            .map(|p| Peer::new(p.node, p.region))
            .collect();
        Node {
            log: RetainedLog::new(cfg.id, cfg.max_retained, cfg.max_retained_own),
            durable: ledger.version_vector().clone(),
            role: cfg.role,
            term: 0,
            stopped_serving: false,
            own_history_unconfirmed: cfg
                .own_history_from
                .filter(|from| *from != cfg.id && cfg.peers.iter().any(|p| p.node == *from))
                .into_iter()
                .collect(),
            peers,
            clock,
            ledger,
            awaiting: Vec::new(),
            early: EarlyRuns::default(),
            last_heartbeat: None,
            lag: ReplicationLagGauge::new(),
            asks: escrow::RightsAsks::default(),
            cfg,
        }
    }

    /// Restarts from `state` (the last term and membership the node persisted) as a
    /// follower: the control plane decides whether it leads again. Its in-memory log
    /// died with it; what peers lack is read back from its durable log, and
    /// reconciliation with every peer starts on the first tick.
    fn rejoin(&mut self, state: Option<HardState>) {
        if self.role == NodeRole::Leader {
            self.role = NodeRole::Follower;
        }
        let Some(state) = state else { return };
        self.term = self.term.max(state.term);
        self.stopped_serving |= state.stopped_serving;
        self.cfg.peers.clear();
        self.peers.clear();
        for p in state.peers {
            self.add_peer(p);
        }
    }

    /// A new replica joins the group (a migration's target). Hearing from it starts a
    /// reconciliation, which ships it our log, or a snapshot when the log was trimmed.
    fn add_peer(&mut self, peer: PeerAddr) {
        if peer.node != self.cfg.id && !self.peers.iter().any(|p| p.id == peer.node) {
            self.peers.push(Peer::new(peer.node, peer.region));
            self.cfg.peers.push(peer);
        }
    }

    /// A replica leaves the group (a migration's source, once collected).
    fn remove_peer(&mut self, node: NodeId) {
        self.own_history_unconfirmed.retain(|n| *n != node);
        self.peers.retain(|p| p.id != node);
        self.cfg.peers.retain(|p| p.node != node);
        self.early.forget_origin(node);
    }

    /// The term and membership a restart must recover; see [`HardState`].
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            peers: self
                .cfg
                .peers
                .iter()
                .filter(|p| p.node != self.cfg.id)
                .copied()
                .collect(),
            stopped_serving: self.stopped_serving,
        }
    }

    pub fn peers(&self) -> &[PeerAddr] {
        &self.cfg.peers
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn clock(&self) -> HlcTimestamp {
        self.clock.last()
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether the node refuses client writes for good ([`ControlCommand::StopServing`]).
    pub fn stopped_serving(&self) -> bool {
        self.stopped_serving
    }

    pub fn role(&self) -> NodeRole {
        self.role
    }

    pub fn durable(&self) -> &VersionVector {
        &self.durable
    }

    pub fn retained_log(&self) -> &RetainedLog {
        &self.log
    }

    /// Lag of each peer as this node last measured it (on its heartbeats).
    pub fn lag_gauge(&self) -> &ReplicationLagGauge {
        &self.lag
    }

    /// Peers not heard from within `peer_timeout` as of `now`.
    pub fn unreachable_peers(&self, now: Timestamp) -> Vec<NodeId> {
        self.peers
            .iter()
            .filter(|p| !p.reachable(now, self.cfg.peer_timeout))
            .map(|p| p.id)
            .collect()
    }

    /// The replicas not heard from within `peer_timeout`, named for query stats: the
    /// writes they took since may be missing here.
    pub fn unreachable_replicas(&self, now: Timestamp) -> Vec<ReplicaAddr> {
        self.peers
            .iter()
            .filter(|p| !p.reachable(now, self.cfg.peer_timeout))
            .map(|p| ReplicaAddr {
                region: p.region,
                shard: self.cfg.shard,
            })
            .collect()
    }

    /// A peer's durable version vector as last reported to this node.
    pub fn peer_vv(&self, peer: NodeId) -> Option<&VersionVector> {
        self.peers.iter().find(|p| p.id == peer).map(|p| &p.acked)
    }

    /// Pushed events held because they arrived ahead of a gap.
    pub fn early_events(&self) -> usize {
        self.early.len()
    }

    /// Replicated writes still waiting for acknowledgements.
    pub fn awaiting_replication(&self) -> usize {
        self.awaiting.len()
    }

    /// The state machine's one entry point. Outputs are appended to `out`, which the
    /// driver drains (see [`Outputs`] for the order in which to carry them out).
    pub fn handle(&mut self, now: Timestamp, input: Input<'_>, out: &mut Outputs) {
        let (term, members, stopped) = (self.term, self.cfg.peers.len(), self.stopped_serving);
        self.dispatch(now, input, out);
        // Membership only grows or shrinks by one per input, so a changed count is a
        // changed membership; a changed term is a changed term.
        if self.term != term || self.cfg.peers.len() != members || self.stopped_serving != stopped {
            out.hard_state = Some(self.hard_state());
        }
    }

    fn dispatch(&mut self, now: Timestamp, input: Input<'_>, out: &mut Outputs) {
        debug_assert_eq!(
            self.peers.len(),
            self.cfg
                .peers
                .iter()
                .filter(|p| p.node != self.cfg.id)
                .count(),
            "the peer table and the configured membership name the same replicas"
        );
        match input {
            Input::Write(req) => match self.on_write(now, &req, out) {
                Ok(Some(ack)) => out.replies.push((req.id, Ok(ack))),
                Ok(None) => {}
                Err(e) => out.replies.push((req.id, Err(e))),
            },
            Input::Peer { from, msg } => self.on_message(now, from, msg, out),
            Input::Tick => self.on_tick(now, out),
            Input::Synced => self.on_synced(now, out),
            Input::Reconcile => self.reconcile_all(now, out),
            Input::Cancel(req) => self.awaiting.retain(|w| w.req != req),
            Input::LogRead { read, events } => self.on_log_read(now, read, events, out),
            Input::Control(ControlCommand::SetRole { term, role }) => {
                if term >= self.term {
                    self.term = term;
                    self.role = role;
                }
            }
            Input::Control(ControlCommand::AddPeer(peer)) => self.add_peer(peer),
            Input::Control(ControlCommand::RemovePeer(node)) => self.remove_peer(node),
            Input::Control(ControlCommand::HandOverRights(to)) => {
                self.hand_over_rights(now, to, out)
            }
            Input::Control(ControlCommand::StopServing) => self.stopped_serving = true,
            Input::Rejoin(state) => self.rejoin(state),
        }
    }

    /// Validates, stamps and applies a client write. `Ok(None)` means the reply waits for
    /// replicas to acknowledge. On error nothing has changed.
    fn on_write(
        &mut self,
        now: Timestamp,
        req: &WriteRequest<'_>,
        out: &mut Outputs,
    ) -> Result<Option<WriteAck>> {
        if !self.own_history_unconfirmed.is_empty() {
            return Err(TidalError::Unavailable(format!(
                "tenant {}'s replica on node {} is still catching up on the events its id \
                 originated before; its other replicas serve it",
                self.cfg.tenant.0, self.cfg.id.0
            )));
        }
        if self.stopped_serving {
            return Err(TidalError::Unavailable(format!(
                "tenant {}'s replica on node {} has stopped taking writes (the tenant moved \
                 away); its other replicas serve it",
                self.cfg.tenant.0, self.cfg.id.0
            )));
        }
        if let WriteConcern::Replicated(k) = req.concern
            && usize::from(k) > self.peers.len()
        {
            return Err(TidalError::InvalidArgument {
                name: "write_concern",
                reason: format!(
                    "write_concern={k} needs {k} other replicas; this shard has {}",
                    self.peers.len()
                ),
            });
        }
        if let Some(original) = req
            .tag
            .and_then(|t| self.ledger.clients().already_applied(t))
        {
            // A retry is acknowledged as the original would have been: under
            // `Replicated(k)`, only once k other replicas hold the original.
            let ack = WriteAck::Duplicate { original };
            return Ok(match req.concern {
                WriteConcern::Replicated(k) if k > 0 => {
                    self.awaiting.push(Awaiting {
                        req: req.id,
                        first: original,
                        count: 1,
                        k,
                        ack,
                    });
                    self.release_replicated(out);
                    None
                }
                _ => Some(ack),
            });
        }
        let first = EventId {
            origin: self.cfg.id,
            seq: self.ledger.version_vector().get(self.cfg.id) + 1,
        };
        let before = out.persist.len();
        if let Err(e) = self.stamp_and_apply(now, req.ops, req.tag, &mut out.persist) {
            return Err(self.after_refusal(now, e, out));
        }
        if !self.peers.is_empty() {
            for e in &out.persist[before..] {
                self.log.push(e);
            }
        }
        let count = req.ops.len();
        match req.concern {
            WriteConcern::Replicated(k) if k > 0 && count > 0 => {
                self.awaiting.push(Awaiting {
                    req: req.id,
                    first,
                    count,
                    k,
                    ack: WriteAck::Applied { first, count },
                });
                Ok(None)
            }
            _ => Ok(Some(WriteAck::Applied { first, count })),
        }
    }

    /// Checks `op` as admission would at `now`, without writing anything: how a client
    /// that splits one request over several replicas refuses it before any part lands.
    pub fn check_op(&self, now: Timestamp, op: ClientOp) -> Result<()> {
        admission::admit(&self.ledger, self.cfg.max_future_skew, now, op, false).map(|_| ())
    }

    /// Validates every op first, then stamps and applies them all: a request is written
    /// whole or not at all. The new events are appended to `events`.
    fn stamp_and_apply(
        &mut self,
        now: Timestamp,
        ops: &[ClientOp],
        tag: Option<ClientTag>,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let skew = self.cfg.max_future_skew;
        let claims = (self.cfg.quotas.as_ref()).is_some_and(|q| q.max_entities().is_some());
        if let [op] = ops {
            // The common single write, without a temporary vector.
            let body = admission::admit(&self.ledger, skew, now, *op, claims)?;
            self.check_quotas(now, 1, admission::claimed(&body))?;
            let event = self.next_event(now, 0, body, tag);
            // Admission validated the body, and the seq is the next in order.
            self.ledger.apply_next(&event);
            events.push(event);
            self.debug_check_rights();
            return Ok(());
        }
        let start = events.len();
        for (i, op) in ops.iter().enumerate() {
            match admission::admit(&self.ledger, skew, now, *op, claims) {
                Ok(body) => {
                    let event = self.next_event(now, i as u64, body, tag.filter(|_| i == 0));
                    events.push(event);
                }
                Err(e) => {
                    events.truncate(start);
                    return Err(e);
                }
            }
        }
        // Every op was valid; only now may the quotas spend anything on the batch.
        let claimed = admission::settle_claims(&mut events[start..]);
        if let Err(e) = self.check_quotas(now, ops.len() as u64, claimed) {
            events.truncate(start);
            return Err(e);
        }
        if let Err(e) = self.ledger.apply_batch(&events[start..]) {
            events.truncate(start);
            return Err(e);
        }
        self.debug_check_rights();
        Ok(())
    }

    fn next_event(
        &mut self,
        now: Timestamp,
        offset: u64,
        body: crate::event::EventBody,
        client: Option<ClientTag>,
    ) -> Event {
        Event {
            id: EventId {
                origin: self.cfg.id,
                seq: self.ledger.version_vector().get(self.cfg.id) + 1 + offset,
            },
            hlc: self.clock.now(now),
            tenant: self.cfg.tenant,
            body,
            client,
        }
    }
}
