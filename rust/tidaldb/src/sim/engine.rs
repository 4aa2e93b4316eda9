//! The simulation loop: a virtual clock, one queue of scheduled happenings (message
//! deliveries and the periodic tick), and the driver that carries out each node's outputs.
//! Single-threaded and seeded, so a run is a pure function of its configuration.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::disk::SimDisk;
use super::fs::SimFs;
use super::network::Network;
use super::rng::SimRng;
use crate::control::ControlPlane;
use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::ClientTag;
use crate::ledger::Ledger;
use crate::node::{
    ClientOp, Input, LogRead, Message, Node, NodeConfig, Outputs, RequestId, WriteAck,
    WriteConcern, WriteRequest,
};
use crate::schema::{NodeId, RegionId, Schema, Timestamp};

pub use crate::cluster::MAX_NODES;

/// When a simulated node syncs its disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimDurability {
    /// After every handled input that wrote something.
    #[default]
    Immediate,
    /// Every so often, on the tick; a crash can lose what was written since.
    Every(Duration),
}

#[derive(Clone, Debug)]
enum Happening {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: Message,
    },
    Tick,
}

#[derive(Debug)]
struct Scheduled {
    at: i64,
    seq: u64,
    what: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One simulated machine: its configuration, its disk, and its node while it is up.
#[derive(Debug)]
pub(crate) struct SimNode {
    pub cfg: NodeConfig,
    pub node: Option<Node>,
    pub disk: SimDisk,
    last_sync: i64,
    /// A commit made for a read-back that the node has not yet been told of with
    /// `Synced`; the next periodic sync tells it.
    synced_untold: bool,
    /// Collected after a migration: down for good, its disk wiped.
    pub retired: bool,
}

impl SimNode {
    /// A new replica on a freshly formatted disk.
    /// A machine whose disk already holds `node`'s state (a rebuilt replica).
    pub(super) fn recovered(cfg: NodeConfig, node: Node, disk: SimDisk, now: Timestamp) -> Self {
        SimNode {
            node: Some(node),
            cfg,
            disk,
            last_sync: now.as_nanos(),
            synced_untold: false,
            retired: false,
        }
    }

    fn start(seed: u64, cfg: NodeConfig, schema: &Arc<Schema>, now: Timestamp) -> Result<Self> {
        let disk = SimDisk::format(disk_seed(seed, cfg.id), &cfg, schema)?;
        Ok(SimNode {
            node: Some(Node::new(
                cfg.clone(),
                Ledger::new(schema.clone()),
                HlcTimestamp::default(),
            )),
            cfg,
            disk,
            last_sync: now.as_nanos(),
            synced_untold: false,
            retired: false,
        })
    }
}

/// Each disk draws its faults from its own stream, so that they do not shift the
/// network's draws (and a run without disk faults replays as it did before).
pub(super) fn disk_seed(seed: u64, node: NodeId) -> u64 {
    seed ^ (u64::from(node.0) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Counters for a run, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Commits (or hard-state writes) that failed, each leaving its node refusing writes
    /// until a restart.
    pub disk_write_failures: u64,
    /// Restarts refused because the disk's data was damaged (`Corruption`).
    pub corruptions_detected: u64,
    /// Unsynced tails that crashes lost or tore.
    pub torn_tails: u64,
    /// Crashes that lost data a lying fsync had reported durable.
    pub lying_fsync_losses: u64,
    /// Replicas wiped and rebuilt from a peer's state after their disk lost data.
    pub replicas_rebuilt: u64,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub events_lost_in_crashes: u64,
    /// Full resyncs: a node replaced its state with a peer's snapshot.
    pub snapshots_installed: u64,
    /// Events read back from a disk for a peer that lacked them after they had left the
    /// node's in-memory log.
    pub events_read_back: u64,
}

#[derive(Debug)]
pub(crate) struct Sim {
    pub now: Timestamp,
    pub rng: SimRng,
    pub net: Network,
    pub nodes: Vec<SimNode>,
    pub control: ControlPlane,
    pub schema: Arc<Schema>,
    pub durability: SimDurability,
    pub tick_every: Duration,
    pub stats: SimStats,
    /// The run's seed, from which each disk's own fault stream is derived.
    pub(super) seed: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    replies: FxHashMap<RequestId, Result<WriteAck>>,
    next_request: RequestId,
    spare: Vec<Outputs>,
}

impl Sim {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        start: Timestamp,
        seed: u64,
        net: Network,
        configs: Vec<NodeConfig>,
        control: ControlPlane,
        schema: Arc<Schema>,
        durability: SimDurability,
        tick_every: Duration,
    ) -> Result<Self> {
        let nodes = configs
            .into_iter()
            .map(|cfg| SimNode::start(seed, cfg, &schema, start))
            .collect::<Result<_>>()?;
        let mut sim = Sim {
            seed,
            now: start,
            rng: SimRng::new(seed),
            net,
            nodes,
            control,
            schema,
            durability,
            tick_every: tick_every.max(Duration::from_micros(100)),
            stats: SimStats::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            replies: FxHashMap::default(),
            next_request: 1,
            spare: Vec::new(),
        };
        sim.schedule(Duration::ZERO, Happening::Tick);
        Ok(sim)
    }

    fn schedule(&mut self, after: Duration, what: Happening) {
        self.seq += 1;
        let at = self.now.as_nanos().saturating_add(after.as_nanos() as i64);
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            what,
        }));
    }

    pub fn region_of(&self, node: NodeId) -> RegionId {
        self.nodes
            .get(node.0 as usize)
            .map_or(RegionId(u16::MAX), |n| n.cfg.region)
    }

    /// Runs the next happening; false when nothing is scheduled (never, while ticking).
    pub fn step(&mut self) -> bool {
        let Some(Reverse(next)) = self.queue.pop() else {
            return false;
        };
        if let Ok(t) = Timestamp::from_nanos(next.at.max(self.now.as_nanos())) {
            self.now = t;
        }
        match next.what {
            Happening::Deliver { from, to, msg } => self.deliver(from, to, msg),
            Happening::Tick => self.tick(),
        }
        true
    }

    /// Runs every happening due up to `deadline`, then sets the clock to it and returns
    /// true; or stops before a happening when `pause` says so, with the clock at the last
    /// happening run, and returns false.
    pub fn run_until_paused(&mut self, deadline: Timestamp, pause: impl Fn() -> bool) -> bool {
        while self
            .queue
            .peek()
            .is_some_and(|Reverse(s)| s.at <= deadline.as_nanos())
        {
            if pause() {
                return false;
            }
            self.step();
        }
        self.now = self.now.max(deadline);
        true
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Message) {
        let up = self
            .nodes
            .get(to.0 as usize)
            .is_some_and(|n| n.node.is_some());
        // A partition cut while the message was in flight drops it too.
        if !up || self.net.blocked(self.region_of(from), self.region_of(to)) {
            self.stats.messages_dropped += 1;
            return;
        }
        self.stats.messages_delivered += 1;
        self.drive(to, Input::Peer { from, msg });
    }

    fn tick(&mut self) {
        let now = self.now.as_nanos();
        for i in 0..self.nodes.len() {
            let id = NodeId(i as u16);
            if self.nodes[i].node.is_none() {
                continue;
            }
            self.drive(id, Input::Tick);
            if let SimDurability::Every(every) = self.durability
                && now - self.nodes[i].last_sync >= every.as_nanos() as i64
            {
                self.nodes[i].last_sync = now;
                if self.nodes[i].disk.has_uncommitted() || self.nodes[i].synced_untold {
                    self.nodes[i].synced_untold = false;
                    if self.nodes[i].disk.commit().is_ok() {
                        self.drive(id, Input::Synced);
                    } else {
                        self.stats.disk_write_failures += 1;
                    }
                }
            }
        }
        // Reports were heard as each node made them (see `drive`), so none is queued.
        let orders = crate::cluster::control_round(&mut self.control, self.now, []);
        for (node, cmd) in orders {
            self.drive(node, Input::Control(cmd));
        }
        self.schedule(self.tick_every, Happening::Tick);
    }

    /// Hands one input to a node that is up, and carries out what it asks for.
    pub fn drive(&mut self, id: NodeId, input: Input<'_>) {
        let mut out = self.spare.pop().unwrap_or_default();
        out.clear();
        let now = self.now;
        let Some(sim_node) = self.nodes.get_mut(id.0 as usize) else {
            return;
        };
        let Some(node) = sim_node.node.as_mut() else {
            self.spare.push(out);
            return;
        };
        node.handle(now, input, &mut out);
        let was_failed = sim_node.disk.failed.is_some();
        let wrote = !out.persist.is_empty() || out.install_snapshot;
        // As the runtime does: the hard state before anything is sent, then the events,
        // then the snapshot that covers them. A node whose disk failed writes nothing more.
        let mut stored = match out.hard_state.take() {
            Some(state) => sim_node.disk.store_hard_state(&state),
            None => Ok(()),
        };
        if wrote && stored.is_ok() {
            stored = sim_node.disk.append(&out.persist);
        }
        if out.install_snapshot && stored.is_ok() {
            self.stats.snapshots_installed += 1;
            let needed = node.needed_by_peers();
            stored = (sim_node.disk).install_snapshot(node.ledger(), node.clock(), needed.as_ref());
        }
        // A snapshot install is durable at once (it is written and synced as a whole), so
        // the node learns it under either policy.
        let sync_now =
            (wrote && self.durability == SimDurability::Immediate) || out.install_snapshot;
        if sync_now && stored.is_ok() {
            stored = sim_node.disk.commit();
        }
        let failed = stored.is_err() && !was_failed;
        if failed {
            self.stats.disk_write_failures += 1;
        }
        let refused = sim_node.disk.failed.clone();
        for (to, msg) in out.messages.drain(..) {
            self.send(id, to, msg);
        }
        for (req, result) in out.replies.drain(..) {
            // A write is acknowledged only if it reached the disk as the policy promises.
            let result = match (&refused, result) {
                (Some(why), Ok(_)) => Err(TidalError::Unavailable(format!(
                    "the write could not be made durable ({why}); the replica refuses \
                     writes until it restarts"
                ))),
                (_, result) => result,
            };
            self.replies.insert(req, result);
        }
        for report in out.reports.drain(..) {
            self.control.observe(now, report);
        }
        let reads = std::mem::take(&mut out.log_reads);
        self.spare.push(out);
        self.serve_log_reads(id, &reads);
        if sync_now && stored.is_ok() {
            self.drive(id, Input::Synced);
        }
    }

    /// Reads back from the node's disk what it asked for and hands it in, one bounded
    /// chunk (one request) at a time.
    fn serve_log_reads(&mut self, id: NodeId, reads: &[LogRead]) {
        for &read in reads {
            let Some(n) = self.nodes.get_mut(id.0 as usize) else {
                return;
            };
            // Only committed batches can be read back, so pending ones are committed first,
            // as the runtime does.
            if n.disk.has_uncommitted() {
                match n.disk.commit() {
                    Ok(()) => n.synced_untold = true,
                    Err(_) => self.stats.disk_write_failures += 1,
                }
            }
            let events = n
                .disk
                .read_origin_range(read.origin, read.after, read.upto, read.len())
                .unwrap_or_else(|e| {
                    tracing::warn!(node = id.0, error = %e, "could not read the log back");
                    Vec::new()
                });
            self.stats.events_read_back += events.len() as u64;
            self.drive(
                id,
                Input::LogRead {
                    read,
                    events: &events,
                },
            );
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.stats.messages_sent += 1;
        let (rf, rt) = (self.region_of(from), self.region_of(to));
        let delays = self.net.delays(&mut self.rng, rf, rt);
        if delays.is_empty() {
            self.stats.messages_dropped += 1;
        }
        for delay in delays {
            self.schedule(
                delay,
                Happening::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// A client write to one node. Waits (in virtual time, up to `timeout`) for the reply
    /// when the write concern asks for replicas.
    pub fn submit(
        &mut self,
        node: NodeId,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
        timeout: Duration,
    ) -> Result<WriteAck> {
        if self
            .nodes
            .get(node.0 as usize)
            .is_none_or(|n| n.node.is_none())
        {
            return Err(TidalError::Unavailable(format!(
                "node {} is down; restart it or write to another replica",
                node.0
            )));
        }
        if let Some(why) = self
            .nodes
            .get(node.0 as usize)
            .and_then(|n| n.disk.failed.as_ref())
        {
            return Err(TidalError::Unavailable(format!(
                "node {} refuses writes: an earlier WAL write failed ({why}); restart it to \
                 recover from its log",
                node.0
            )));
        }
        let id = self.next_request;
        self.next_request += 1;
        let request = WriteRequest {
            id,
            ops,
            concern,
            tag,
        };
        self.drive(node, Input::Write(request));
        let deadline = self
            .now
            .as_nanos()
            .saturating_add(timeout.as_nanos() as i64);
        loop {
            if let Some(reply) = self.replies.remove(&id) {
                return reply;
            }
            if self.now.as_nanos() >= deadline || !self.step() {
                self.drive(node, Input::Cancel(id));
                return Err(TidalError::Timeout(format!(
                    "a {concern} write to node {} was not acknowledged within {} s of \
                     virtual time; it may still be applied",
                    node.0,
                    timeout.as_secs_f64()
                )));
            }
        }
    }

    pub fn node(&self, id: NodeId) -> Result<&Node> {
        self.nodes
            .get(id.0 as usize)
            .and_then(|n| n.node.as_ref())
            .ok_or_else(|| TidalError::Unavailable(format!("node {} is down", id.0)))
    }

    /// A new, empty node (a tenant's replica); its id is the next free one.
    pub fn add_node(&mut self, cfg: NodeConfig) -> Result<NodeId> {
        let id = cfg.id;
        let node = SimNode::start(self.seed, cfg, &self.schema, self.now)?;
        self.nodes.push(node);
        Ok(id)
    }

    /// The id the next `count` new nodes start at: node ids are 16-bit, so a simulation
    /// holds at most 65,536 replicas, and asking for more is refused, never wrapped.
    pub fn next_node_ids(&self, count: usize) -> Result<NodeId> {
        let first = self.nodes.len();
        if first + count.max(1) > MAX_NODES {
            return Err(TidalError::Unavailable(format!(
                "the simulation holds {first} replicas and node ids are 16-bit: there is \
                 no room for {count} more"
            )));
        }
        Ok(NodeId(first as u16))
    }

    /// Stops a node for good and wipes its disk: its data is collected.
    pub fn retire(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(id.0 as usize) {
            n.node = None;
            n.disk.fs = SimFs::new(0);
            n.retired = true;
        }
    }

    /// Stops a node. Its unsynced tail is lost when `lose_unsynced`. Returns the events lost.
    pub fn crash(&mut self, id: NodeId, lose_unsynced: bool) -> Result<usize> {
        let n = self
            .nodes
            .get_mut(id.0 as usize)
            .ok_or_else(|| TidalError::NotFound(format!("no node {}", id.0)))?;
        let Some(node) = n.node.take() else {
            return Err(TidalError::Unavailable(format!(
                "node {} is already down",
                id.0
            )));
        };
        // What was applied but not confirmed durable dies with the node when the page
        // cache does, or when the disk had failed (nothing more reached it).
        let lost = if lose_unsynced || n.disk.failed.is_some() {
            let applied = node.ledger().version_vector();
            let durable = node.durable();
            applied
                .iter()
                .map(|(o, seq)| seq - durable.get(o).min(seq))
                .sum::<u64>() as usize
        } else {
            0
        };
        let damage = n.disk.crash(lose_unsynced);
        self.stats.torn_tails += damage.torn_tails;
        self.stats.lying_fsync_losses += u64::from(damage.acknowledged_bytes_lost > 0);
        self.stats.events_lost_in_crashes += lost as u64;
        tracing::info!(node = id.0, lost, "node crashed");
        Ok(lost)
    }

    /// Starts a crashed node from its disk; it rejoins as a follower and catches up.
    pub fn restart(&mut self, id: NodeId) -> Result<()> {
        let schema = self.schema.clone();
        let n = self
            .nodes
            .get_mut(id.0 as usize)
            .ok_or_else(|| TidalError::NotFound(format!("no node {}", id.0)))?;
        if n.node.is_some() || n.retired {
            return Err(TidalError::Unavailable(format!(
                "node {} is already up, or was collected",
                id.0
            )));
        }
        let recovered = match n.disk.open(&n.cfg, &schema) {
            Ok(r) => r,
            Err(e) => {
                if matches!(
                    e,
                    TidalError::Corruption { .. } | TidalError::SchemaMismatch { .. }
                ) {
                    self.stats.corruptions_detected += 1;
                }
                tracing::error!(node = id.0, error = %e, "the node's disk does not recover");
                return Err(e);
            }
        };
        let node = Node::new(n.cfg.clone(), recovered.ledger, recovered.clock);
        let state = recovered.hard_state;
        n.node = Some(node);
        n.last_sync = self.now.as_nanos();
        self.drive(id, Input::Rejoin(state));
        tracing::info!(node = id.0, "node restarted");
        Ok(())
    }
}
