//! The replication protocol of a [`Node`]: push, acks, heartbeats, repair, reconciliation,
//! snapshots and term fencing.
//!
//! - Our own events go to every reachable peer as soon as they are durable (`Synced`).
//! - A peer acknowledges with its durable version vector once what it received is durable.
//! - Heartbeats carry the version vector too. What a peer still lacks after `repair_after`
//!   is shipped again: our own events (a lost push) and other origins' events (the peer
//!   cannot hear their origin, as under a one-way partition).
//! - A peer heard again after a silence, or asking explicitly, gets a reconciliation plan.

use std::sync::Arc;

use smallvec::SmallVec;

use super::reconcile::{LogRange, ReconcilePlan, ReconciliationEngine};
use super::{Message, Node, NodeReport, NodeRole, Outputs, RequestId, WriteAck};
use crate::event::{EventId, VersionVector};
use crate::schema::{NodeId, Timestamp};
use crate::wal::{decode_frame, encode_frame, snapshot};

/// What this node knows about one peer.
#[derive(Debug)]
pub(super) struct Peer {
    pub id: NodeId,
    /// The peer's durable version vector as last reported; reports only raise it, because
    /// a peer never loses what it has made durable.
    pub acked: VersionVector,
    /// Our own events pushed to the peer so far (acknowledged or not).
    sent_own: u64,
    last_heard: Option<Timestamp>,
    /// When the acknowledged own seq last moved, or nothing was outstanding.
    last_progress: Option<Timestamp>,
    /// Per other origin: since when the peer has reported lacking events we have.
    lacking: SmallVec<[(NodeId, Timestamp); 4]>,
    /// A received push is acknowledged once it is durable.
    ack_owed: bool,
    last_snapshot_sent: Option<Timestamp>,
}

impl Peer {
    pub fn new(id: NodeId) -> Self {
        Peer {
            id,
            acked: VersionVector::new(),
            sent_own: 0,
            last_heard: None,
            last_progress: None,
            lacking: SmallVec::new(),
            ack_owed: false,
            last_snapshot_sent: None,
        }
    }

    pub fn reachable(&self, now: Timestamp, timeout: std::time::Duration) -> bool {
        self.last_heard
            .is_some_and(|t| now.as_nanos() - t.as_nanos() <= timeout.as_nanos() as i64)
    }
}

/// A `Replicated(k)` write waiting for `k` peers to make it durable.
#[derive(Debug)]
pub(super) struct Awaiting {
    pub req: RequestId,
    pub first: EventId,
    pub count: usize,
    pub k: u8,
}

fn elapsed_ns(now: Timestamp, since: Timestamp) -> i64 {
    now.as_nanos() - since.as_nanos()
}

impl Node {
    fn peer_index(&self, id: NodeId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    pub(super) fn on_message(
        &mut self,
        now: Timestamp,
        from: NodeId,
        msg: Message,
        out: &mut Outputs,
    ) {
        let Some(i) = self.peer_index(from) else {
            tracing::warn!(
                node = self.cfg.id.0,
                from = from.0,
                kind = msg.kind(),
                "message from a node that is not a peer; dropped"
            );
            return;
        };
        let was_reachable = self.peers[i].reachable(now, self.cfg.peer_timeout);
        self.peers[i].last_heard = Some(now);
        let term = msg.term();
        if term < self.term {
            if !matches!(msg, Message::Fenced { .. }) {
                tracing::debug!(
                    node = self.cfg.id.0,
                    from = from.0,
                    term,
                    current = self.term,
                    kind = msg.kind(),
                    "stale term; fenced"
                );
                out.messages
                    .push((from, Message::Fenced { term: self.term }));
            }
            return;
        }
        if term > self.term {
            self.term = term;
            if self.role == NodeRole::Leader {
                tracing::info!(
                    node = self.cfg.id.0,
                    term,
                    "a later term exists; stepping down"
                );
                self.role = NodeRole::Follower;
            }
        }
        if !was_reachable {
            // Reconnected (or first contact): ask for what we lack.
            out.messages.push((
                from,
                Message::SyncRequest {
                    term: self.term,
                    vv: self.durable.clone(),
                },
            ));
        }
        match msg {
            Message::Push { frame, .. } => self.on_push(now, i, &frame, out),
            Message::Ack { vv, .. } | Message::Heartbeat { vv, .. } => {
                self.on_peer_vv(now, i, &vv, out)
            }
            Message::SyncRequest { vv, .. } => {
                self.on_peer_vv(now, i, &vv, out);
                self.reconcile_with(now, i, out);
            }
            Message::Snapshot { state, .. } => self.on_snapshot(now, i, &state, out),
            Message::Fenced { .. } => {}
        }
    }

    fn on_push(&mut self, now: Timestamp, i: usize, frame: &[u8], out: &mut Outputs) {
        let from = self.peers[i].id;
        let events = match decode_frame(frame) {
            Ok((_, events)) => events,
            Err(e) => {
                tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "damaged push dropped; the sender will retransmit");
                return;
            }
        };
        if let Some(e) = events.iter().find(|e| e.tenant != self.cfg.tenant) {
            tracing::warn!(node = self.cfg.id.0, from = from.0, tenant = %e.tenant, "push of another tenant dropped");
            return;
        }
        if let Some(newest) = events.iter().map(|e| e.hlc).max()
            && let Err(e) = self.clock.update(newest, now)
        {
            tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "push refused");
            return;
        }
        let before = out.persist.len();
        for run in events.chunk_by(|a, b| a.id.origin == b.id.origin && b.id.seq == a.id.seq + 1) {
            let next = self.ledger.version_vector().get(run[0].id.origin) + 1;
            let fresh = run
                .iter()
                .position(|e| e.id.seq >= next)
                .map_or(&[][..], |p| &run[p..]);
            if let Err(e) = self
                .ledger
                .apply_batch_collect(fresh, Some(&mut out.persist))
            {
                tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "invalid events in a push; the rest of it dropped");
                break;
            }
        }
        for e in &out.persist[before..] {
            self.log.push(e);
        }
        if out.persist.len() > before {
            self.peers[i].ack_owed = true;
        } else {
            out.messages.push((
                from,
                Message::Ack {
                    term: self.term,
                    vv: self.durable.clone(),
                },
            ));
        }
    }

    fn on_peer_vv(&mut self, now: Timestamp, i: usize, vv: &VersionVector, out: &mut Outputs) {
        let me = self.cfg.id;
        let peer = &mut self.peers[i];
        if vv.get(me) > peer.acked.get(me) || peer.acked.get(me) >= peer.sent_own {
            peer.last_progress = Some(now);
        }
        peer.acked.merge(vv);
        self.release_replicated(out);
    }

    /// Replies to `Replicated(k)` writes that `k` peers now hold durably.
    fn release_replicated(&mut self, out: &mut Outputs) {
        let me = self.cfg.id;
        let peers = &self.peers;
        self.awaiting.retain(|w| {
            let last = w.first.seq + w.count as u64 - 1;
            let holders = peers.iter().filter(|p| p.acked.get(me) >= last).count();
            if holders >= usize::from(w.k) {
                out.replies.push((
                    w.req,
                    Ok(WriteAck::Applied {
                        first: w.first,
                        count: w.count,
                    }),
                ));
                false
            } else {
                true
            }
        });
    }

    pub(super) fn on_synced(&mut self, now: Timestamp, out: &mut Outputs) {
        self.durable.clone_from(self.ledger.version_vector());
        let (me, term) = (self.cfg.id, self.term);
        for i in 0..self.peers.len() {
            if std::mem::take(&mut self.peers[i].ack_owed) {
                let vv = self.durable.clone();
                out.messages
                    .push((self.peers[i].id, Message::Ack { term, vv }));
            }
            // Eager push of our own durable events, to peers we can hear.
            let peer = &self.peers[i];
            if peer.reachable(now, self.cfg.peer_timeout) && peer.sent_own < self.durable.get(me) {
                self.push_own(now, i, out);
            }
        }
    }

    fn push_own(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let range = LogRange {
            origin: me,
            after: self.peers[i].sent_own.max(self.peers[i].acked.get(me)),
            upto: self.durable.get(me),
        };
        if range.is_empty() {
            return;
        }
        if !self.log.covers(me, range.after, range.upto) {
            self.send_snapshot(now, i, out);
            return;
        }
        self.ship(now, self.peers[i].id, &[range], out);
        if self.peers[i].acked.get(me) >= self.peers[i].sent_own {
            self.peers[i].last_progress = Some(now);
        }
        self.peers[i].sent_own = range.upto;
    }

    /// Sends the events of `ranges` in frames of at most `max_frame_events`.
    fn ship(&self, now: Timestamp, to: NodeId, ranges: &[LogRange], out: &mut Outputs) {
        let events = ReconciliationEngine::gather(&self.log, ranges);
        for chunk in events.chunks(self.cfg.max_frame_events.max(1)) {
            let frame = encode_frame(
                chunk,
                self.cfg.shard,
                self.cfg.region,
                now.as_nanos() as u64,
            );
            out.messages.push((
                to,
                Message::Push {
                    term: self.term,
                    frame: Arc::from(frame),
                },
            ));
        }
    }

    /// Ships everything the peer lacks, per its last report: events from the log, or the
    /// whole state when they have left it. Our own events go only as far as they are durable.
    fn reconcile_with(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let mut mine = self.ledger.version_vector().clone();
        let own_durable = self.durable.get(me);
        let mut capped = VersionVector::new();
        for (o, seq) in mine.iter() {
            capped.advance(o, if o == me { seq.min(own_durable) } else { seq });
        }
        mine = capped;
        match ReconciliationEngine::plan(&mine, &self.log, &self.peers[i].acked) {
            ReconcilePlan::UpToDate => {}
            ReconcilePlan::Ranges(ranges) => {
                self.ship(now, self.peers[i].id, &ranges, out);
                let own = mine.get(me);
                let peer = &mut self.peers[i];
                peer.sent_own = peer.sent_own.max(own);
            }
            ReconcilePlan::Snapshot { .. } => self.send_snapshot(now, i, out),
        }
    }

    fn send_snapshot(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let recent = self.peers[i]
            .last_snapshot_sent
            .is_some_and(|t| elapsed_ns(now, t) < self.cfg.repair_after.as_nanos() as i64);
        // A snapshot holds every applied event; ours must be durable before they leave.
        if recent || self.durable.get(me) < self.ledger.version_vector().get(me) {
            return;
        }
        match snapshot::encode_state(&self.ledger, self.clock.last()) {
            Ok(state) => {
                let vv = self.ledger.version_vector().clone();
                let peer = &mut self.peers[i];
                peer.last_snapshot_sent = Some(now);
                peer.sent_own = peer.sent_own.max(vv.get(me));
                tracing::info!(
                    node = me.0,
                    to = peer.id.0,
                    bytes = state.len(),
                    "shipping a snapshot: the peer lacks events no longer in the log"
                );
                out.messages.push((
                    peer.id,
                    Message::Snapshot {
                        term: self.term,
                        vv,
                        state: Arc::from(state),
                    },
                ));
            }
            Err(e) => {
                tracing::error!(node = me.0, error = %e, "could not encode a snapshot for a peer")
            }
        }
    }

    fn on_snapshot(&mut self, now: Timestamp, i: usize, state: &[u8], out: &mut Outputs) {
        let from = self.peers[i].id;
        let installed =
            snapshot::decode_state(state, snapshot::CURRENT_VERSION, self.ledger.schema())
                .and_then(|(ledger, clock)| {
                    if self
                        .ledger
                        .version_vector()
                        .dominates(ledger.version_vector())
                    {
                        return Ok(false);
                    }
                    let rebuilt = ReconciliationEngine::rebuild(
                        ledger,
                        self.ledger.version_vector(),
                        &self.log,
                    )?;
                    self.clock.update(clock, now)?;
                    self.ledger = rebuilt;
                    Ok(true)
                });
        match installed {
            Ok(true) => {
                tracing::info!(
                    node = self.cfg.id.0,
                    from = from.0,
                    "installed a peer's snapshot"
                );
                out.install_snapshot = true;
                self.peers[i].ack_owed = true;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "peer snapshot not installed")
            }
        }
    }

    pub(super) fn on_tick(&mut self, now: Timestamp, out: &mut Outputs) {
        let due = self
            .last_heartbeat
            .is_none_or(|t| elapsed_ns(now, t) >= self.cfg.heartbeat_interval.as_nanos() as i64);
        if due {
            self.last_heartbeat = Some(now);
            self.heartbeat(now, out);
        }
        for i in 0..self.peers.len() {
            if self.peers[i].reachable(now, self.cfg.peer_timeout) {
                self.repair(now, i, out);
            }
        }
        let mut acked_by_all: Option<VersionVector> = None;
        for p in &self.peers {
            acked_by_all = Some(match acked_by_all {
                None => p.acked.clone(),
                Some(all) => {
                    let mut min = VersionVector::new();
                    for (o, s) in all.iter() {
                        min.advance(o, s.min(p.acked.get(o)));
                    }
                    min
                }
            });
        }
        if let Some(all) = acked_by_all {
            self.log.trim(&all);
        }
    }

    fn heartbeat(&mut self, now: Timestamp, out: &mut Outputs) {
        let vv = self.durable.clone();
        for p in &self.peers {
            out.messages.push((
                p.id,
                Message::Heartbeat {
                    term: self.term,
                    vv: vv.clone(),
                    role: self.role,
                },
            ));
            let oldest = self
                .ledger
                .version_vector()
                .iter()
                .filter(|(o, seq)| p.acked.get(*o) < *seq)
                .filter_map(|(o, _)| self.log.get(o, p.acked.get(o) + 1))
                .map(|e| e.hlc.wall_ns)
                .min()
                .and_then(|ns| Timestamp::from_nanos(ns as i64).ok());
            self.lag
                .record(p.id, self.ledger.version_vector(), &p.acked, oldest, now);
        }
        out.reports.push(NodeReport {
            node: self.cfg.id,
            term: self.term,
            role: self.role,
            vv,
        });
    }

    /// Ships again what a reachable peer still lacks after `repair_after`.
    fn repair(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let grace = self.cfg.repair_after.as_nanos() as i64;
        let peer = &mut self.peers[i];
        // Our own events: a push (or its ack) was lost.
        if peer.acked.get(me) < peer.sent_own
            && peer
                .last_progress
                .is_none_or(|t| elapsed_ns(now, t) >= grace)
        {
            peer.sent_own = peer.acked.get(me);
            peer.last_progress = Some(now);
        }
        if peer.sent_own < self.durable.get(me) {
            self.push_own(now, i, out);
        }
        // Other origins' events the peer has lacked for a while: forward them.
        let mut overdue: SmallVec<[LogRange; 4]> = SmallVec::new();
        let peer = &mut self.peers[i];
        for (o, seq) in self.ledger.version_vector().iter() {
            if o == me || o == peer.id {
                continue;
            }
            let lacks = peer.acked.get(o) < seq;
            let since = peer.lacking.iter().position(|(x, _)| *x == o);
            match (lacks, since) {
                (false, Some(k)) => {
                    peer.lacking.swap_remove(k);
                }
                (true, None) => peer.lacking.push((o, now)),
                (true, Some(k)) if elapsed_ns(now, peer.lacking[k].1) >= grace => {
                    peer.lacking[k].1 = now;
                    overdue.push(LogRange {
                        origin: o,
                        after: peer.acked.get(o),
                        upto: seq,
                    });
                }
                _ => {}
            }
        }
        if overdue.is_empty() {
            return;
        }
        if overdue
            .iter()
            .all(|r| self.log.covers(r.origin, r.after, r.upto))
        {
            let to = self.peers[i].id;
            self.ship(now, to, &overdue, out);
        } else {
            self.send_snapshot(now, i, out);
        }
    }

    /// Asks every peer for what this node lacks and ships them what they lack: the
    /// explicit reconciliation after a partition heals.
    pub(super) fn reconcile_all(&mut self, now: Timestamp, out: &mut Outputs) {
        for i in 0..self.peers.len() {
            let to = self.peers[i].id;
            out.messages.push((
                to,
                Message::SyncRequest {
                    term: self.term,
                    vv: self.durable.clone(),
                },
            ));
            self.reconcile_with(now, i, out);
        }
    }
}
