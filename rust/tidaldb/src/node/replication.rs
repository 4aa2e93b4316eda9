//! The replication protocol of a [`Node`]: push, acks, heartbeats, repair, reconciliation,
//! snapshots and term fencing.
//!
//! - Our own events go to every reachable peer as soon as they are durable (`Synced`).
//! - A peer acknowledges with its durable version vector once what it received is durable.
//! - Heartbeats carry the version vector too. What a peer still lacks after `repair_after`
//!   is shipped again: our own events (a lost push) and other origins' events (the peer
//!   cannot hear their origin, as under a one-way partition).
//! - A peer heard again after a silence, or asking explicitly, gets a reconciliation plan.

use smallvec::SmallVec;

use super::in_flight::InFlight;
use super::reconcile::LogRange;
use super::{Message, Node, NodeReport, NodeRole, Outputs, RequestId, WriteAck};
use crate::event::{EventId, VersionVector};
use crate::schema::{NodeId, RegionId, Timestamp};

/// What this node knows about one peer.
#[derive(Debug)]
pub(super) struct Peer {
    pub id: NodeId,
    pub region: RegionId,
    /// The peer's durable version vector as last reported; reports only raise it, because
    /// a peer never loses what it has made durable.
    pub acked: VersionVector,
    /// What is shipped and not yet acknowledged, per origin.
    pub in_flight: InFlight,
    pub last_heard: Option<Timestamp>,
    /// Per other origin: since when the peer has reported lacking events we have.
    lacking: SmallVec<[(NodeId, Timestamp); 4]>,
    /// A received push is acknowledged once it is durable.
    pub ack_owed: bool,
    pub last_snapshot_sent: Option<Timestamp>,
    /// The term in which we last re-sent everything in flight after a `Fenced`.
    resent_for_term: u64,
}

impl Peer {
    pub fn new(id: NodeId, region: RegionId) -> Self {
        Peer {
            id,
            region,
            acked: VersionVector::new(),
            in_flight: InFlight::default(),
            last_heard: None,
            lacking: SmallVec::new(),
            ack_owed: false,
            last_snapshot_sent: None,
            resent_for_term: 0,
        }
    }

    /// Where shipping `origin`'s events to this peer resumes: past what it acknowledged
    /// and past what is in flight.
    pub fn ship_after(&self, origin: NodeId) -> u64 {
        self.in_flight.ship_after(origin, &self.acked)
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
    /// The events that must be held: `count` from `first`, of `first.origin`.
    pub first: EventId,
    pub count: usize,
    pub k: u8,
    /// The reply once they are.
    pub ack: WriteAck,
}

pub(super) fn elapsed_ns(now: Timestamp, since: Timestamp) -> i64 {
    now.as_nanos() - since.as_nanos()
}

impl Node {
    pub(super) fn peer_index(&self, id: NodeId) -> Option<usize> {
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
            // Expected for messages still in flight from a replica that a migration has
            // just retired; anything else would also show up as lag.
            tracing::debug!(
                node = self.cfg.id.0,
                from = from.0,
                kind = msg.kind(),
                "message from a node that is not a peer; dropped"
            );
            return;
        };
        let was_reachable = self.peers[i].reachable(now, self.cfg.peer_timeout);
        let term = msg.term();
        if term < self.term {
            // A rights request is answered in any term: the giver decides from rights only
            // it can give, so a stale sender cannot make it give what it lacks. (A replica
            // that has not yet heard the current term asks as soon as it is written to.)
            if let Message::RightsRequest { kind, need, .. } = msg {
                self.on_rights_request(now, i, kind, need, out);
                return;
            }
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
        // Only a current message counts as hearing from the peer: a fenced one must not
        // make the next look like a continuing conversation (it starts a reconciliation).
        self.peers[i].last_heard = Some(now);
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
            Message::Fenced { .. } => self.on_fenced(now, i, out),
            Message::RightsRequest { kind, need, .. } => {
                self.on_rights_request(now, i, kind, need, out)
            }
        }
    }

    /// The peer refused what we sent in an older term. Everything in flight to it then
    /// was dropped, so ship it again now, in our current term, rather than waiting for
    /// `repair_after`: a leader handover would otherwise stall that long. Once per term,
    /// because one refusal arrives for every frame that was in flight.
    fn on_fenced(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let peer = &mut self.peers[i];
        if peer.resent_for_term >= self.term {
            return;
        }
        peer.resent_for_term = self.term;
        peer.in_flight
            .expire(&peer.acked, now, std::time::Duration::ZERO);
        if peer.ship_after(me) < self.durable.get(me) {
            self.push_own(now, i, out);
        }
    }

    fn on_peer_vv(&mut self, now: Timestamp, i: usize, vv: &VersionVector, out: &mut Outputs) {
        let me = self.cfg.id;
        if vv.get(me) <= self.ledger.version_vector().get(me) {
            let peer = self.peers[i].id;
            self.own_history_unconfirmed.retain(|n| *n != peer);
        }
        let peer = &mut self.peers[i];
        let before = peer.acked.clone();
        peer.acked.merge(vv);
        peer.in_flight.acknowledged(&before, &peer.acked, now);
        // A peer catching up on our events from the durable log gets the next chunk as
        // soon as it acknowledges one, rather than on the next tick.
        let progressed = peer.acked.get(me) > before.get(me);
        let next = peer.ship_after(me) + 1;
        let from_disk = self.log.first_retained(me).is_none_or(|f| f > next);
        if progressed && from_disk && next <= self.durable.get(me) {
            self.push_own(now, i, out);
        }
        self.release_replicated(out);
    }

    /// Replies to `Replicated(k)` writes that `k` peers now hold durably.
    pub(super) fn release_replicated(&mut self, out: &mut Outputs) {
        let peers = &self.peers;
        self.awaiting.retain(|w| {
            let (origin, last) = (w.first.origin, w.first.seq + w.count as u64 - 1);
            let holders = peers.iter().filter(|p| p.acked.get(origin) >= last).count();
            if holders >= usize::from(w.k) {
                out.replies.push((w.req, Ok(w.ack)));
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
            if peer.reachable(now, self.cfg.peer_timeout)
                && peer.ship_after(me) < self.durable.get(me)
            {
                self.push_own(now, i, out);
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
        if let Some(all) = self.acked_by_all() {
            self.log.trim(&all);
        }
        self.early.purge(self.ledger.version_vector());
    }

    /// What every peer has acknowledged; `None` without peers.
    fn acked_by_all(&self) -> Option<VersionVector> {
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
        acked_by_all
    }

    /// Per origin, the highest seq every peer has acknowledged: a driver may drop durable
    /// log records only up to it, because events past it are what a peer may still have
    /// to be sent (see [`Outputs::log_reads`]). A peer not heard from since this node
    /// started counts as having nothing, so after a restart nothing is dropped until every
    /// peer has reported. Without peers nothing is needed: everything may go.
    pub fn needed_by_peers(&self) -> Option<VersionVector> {
        self.acked_by_all()
    }

    fn heartbeat(&mut self, now: Timestamp, out: &mut Outputs) {
        let vv = self.durable.clone();
        let mut behind_log = Vec::new();
        for p in &self.peers {
            out.messages.push((
                p.id,
                Message::Heartbeat {
                    term: self.term,
                    vv: vv.clone(),
                    role: self.role,
                },
            ));
            // The time of the oldest event the peer lacks, if the log still holds every
            // origin's next one; otherwise the gauge estimates it from its reports.
            let lacking: Vec<Option<u64>> = self
                .ledger
                .version_vector()
                .iter()
                .filter(|(o, seq)| p.acked.get(*o) < *seq)
                .map(|(o, _)| self.log.get(o, p.acked.get(o) + 1).map(|e| e.hlc.wall_ns))
                .collect();
            // A peer heard from that lacks events no longer in memory needs a resync.
            if p.last_heard.is_some() && lacking.iter().any(Option::is_none) {
                behind_log.push(p.id);
            }
            let oldest = lacking
                .iter()
                .copied()
                .collect::<Option<Vec<u64>>>()
                .and_then(|times| times.into_iter().min())
                .and_then(|ns| Timestamp::from_nanos(ns as i64).ok());
            self.lag
                .record(p.id, self.ledger.version_vector(), &p.acked, oldest, now);
        }
        out.reports.push(NodeReport {
            node: self.cfg.id,
            term: self.term,
            role: self.role,
            vv,
            entities: self.ledger.distinct_entities(),
            behind_log,
        });
    }

    /// Ships again what a reachable peer still lacks after `repair_after`.
    fn repair(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let grace = self.cfg.repair_after.as_nanos() as i64;
        let peer = &mut self.peers[i];
        // Shipped but unacknowledged for too long: presume it lost and ship it again.
        peer.in_flight
            .expire(&peer.acked, now, self.cfg.repair_after);
        if peer.ship_after(me) < self.durable.get(me) {
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
                        after: peer.ship_after(o),
                        upto: seq,
                    });
                }
                _ => {}
            }
        }
        self.ship_ranges(now, i, &overdue, out);
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
