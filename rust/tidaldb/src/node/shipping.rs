//! Shipping events to a peer: eager pushes of our own events, reconciliation plans, events
//! read back from the durable log, and full resyncs by snapshot, sent and received.
//!
//! Each peer's [`InFlight`](super::in_flight::InFlight) remembers what is in flight, so that
//! overlapping requests do not ship the same events twice.
//!
//! Events that have left the in-memory log are read back from the driver's durable log, a
//! chunk of at most `max_frame_events` at a time and at most [`READ_WINDOW_FRAMES`] chunks
//! unacknowledged per peer and origin, so a catch-up of any length holds bounded memory.

use std::sync::Arc;

use smallvec::SmallVec;

use super::reconcile::{LogRange, ReconcilePlan, ReconciliationEngine};
use super::replication::elapsed_ns;
use super::{LogRead, Message, Node, Outputs};
use crate::event::{Event, VersionVector};
use crate::schema::Timestamp;
use crate::wal::{encode_frame, snapshot};

/// Chunks read back from the durable log that may be unacknowledged per peer and origin:
/// enough to keep the link busy for a round trip, few enough to bound memory.
const READ_WINDOW_FRAMES: u64 = 2;

impl Node {
    /// Pushes our own durable events that peer `i` has neither acknowledged nor in flight.
    pub(super) fn push_own(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let range = LogRange {
            origin: me,
            after: self.peers[i].ship_after(me),
            upto: self.durable.get(me),
        };
        self.ship_ranges(now, i, &[range], out);
    }

    /// Ships `ranges` to peer `i` in frames of at most `max_frame_events`: from the
    /// in-memory log where it holds them, otherwise read back from the durable log.
    pub(super) fn ship_ranges(
        &mut self,
        now: Timestamp,
        i: usize,
        ranges: &[LogRange],
        out: &mut Outputs,
    ) {
        let mut from_memory: SmallVec<[LogRange; 4]> = SmallVec::new();
        for r in ranges.iter().filter(|r| !r.is_empty()) {
            match self.log.first_retained(r.origin) {
                Some(first) if first <= r.after + 1 => {
                    // The run may end short of `upto` after a snapshot install made the
                    // version vector jump; the rest can only be on disk, if anywhere.
                    let last = self.log.range(r.origin, r.after, r.upto).last();
                    let last = last.map_or(r.after, |e| e.id.seq);
                    from_memory.push(LogRange { upto: last, ..*r });
                    if last < r.upto {
                        self.read_back(now, i, LogRange { after: last, ..*r }, None, out);
                    }
                }
                first => self.read_back(now, i, *r, first, out),
            }
        }
        from_memory.retain(|r| !r.is_empty());
        if from_memory.is_empty() {
            return;
        }
        let peer = &mut self.peers[i];
        for r in &from_memory {
            peer.in_flight.shipped(r.origin, r.upto, &peer.acked, now);
        }
        let events = ReconciliationEngine::gather(&self.log, &from_memory);
        self.send_frames(now, i, &events, out);
    }

    /// Asks the driver for the next chunk of `range` from its durable log, up to the
    /// in-memory log's first event of the origin (`first`), unless enough read-back
    /// events are already unacknowledged. The chunk counts as in flight from now on.
    fn read_back(
        &mut self,
        now: Timestamp,
        i: usize,
        range: LogRange,
        first: Option<u64>,
        out: &mut Outputs,
    ) {
        let chunk = self.cfg.max_frame_events.max(1) as u64;
        let peer = &mut self.peers[i];
        let unacked = peer
            .ship_after(range.origin)
            .saturating_sub(peer.acked.get(range.origin));
        if unacked >= READ_WINDOW_FRAMES * chunk {
            return;
        }
        let upto = range
            .upto
            .min(range.after + chunk)
            .min(first.map_or(u64::MAX, |f| f - 1));
        let read = LogRead {
            peer: peer.id,
            origin: range.origin,
            after: range.after,
            upto,
        };
        if read.is_empty() {
            return;
        }
        peer.in_flight
            .shipped(read.origin, read.upto, &peer.acked, now);
        out.log_reads.push(read);
    }

    /// The driver read back (part of) a range the node asked for: ship it. What the
    /// durable log no longer holds reaches the peer by snapshot instead.
    pub(super) fn on_log_read(
        &mut self,
        now: Timestamp,
        read: LogRead,
        events: &[Event],
        out: &mut Outputs,
    ) {
        let Some(i) = self.peer_index(read.peer) else {
            return; // the peer left the group meanwhile
        };
        // Only the consecutive run asked for; anything else is the driver's mistake.
        let usable = events
            .iter()
            .zip(read.after + 1..=read.upto)
            .take_while(|(e, seq)| e.id.origin == read.origin && e.id.seq == *seq)
            .count();
        debug_assert_eq!(
            usable,
            events.len(),
            "a log read returned events not asked for"
        );
        self.send_frames(now, i, &events[..usable], out);
        if usable < read.len() {
            tracing::info!(
                node = self.cfg.id.0,
                peer = read.peer.0,
                origin = read.origin.0,
                missing_from = read.after + 1 + usable as u64,
                "the durable log no longer holds events a peer lacks; it needs a snapshot"
            );
            self.send_snapshot(now, i, out);
        }
    }

    /// Sends `events` to peer `i` as Push frames of at most `max_frame_events`.
    fn send_frames(&self, now: Timestamp, i: usize, events: &[Event], out: &mut Outputs) {
        let to = self.peers[i].id;
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

    /// Ships what peer `i` lacks per its last report and what is already in flight. Our
    /// own events go only as far as they are durable. Events of a third origin that we can
    /// hear are left to that origin, which pushes them itself; if the peer cannot hear it,
    /// forwarding in `repair` ships them after `repair_after`.
    pub(super) fn reconcile_with(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let peer_id = self.peers[i].id;
        let mut mine = VersionVector::new();
        let mut theirs = VersionVector::new();
        for (origin, seq) in self.ledger.version_vector().iter() {
            let upto = if origin == me {
                seq.min(self.durable.get(me))
            } else {
                seq
            };
            let origin_pushes_itself = origin != me
                && origin != peer_id
                && self
                    .peer_index(origin)
                    .is_some_and(|k| self.peers[k].reachable(now, self.cfg.peer_timeout));
            mine.advance(origin, upto);
            let after = if origin_pushes_itself {
                upto
            } else {
                self.peers[i].ship_after(origin)
            };
            theirs.advance(origin, after);
        }
        match ReconciliationEngine::plan(&mine, &self.log, &theirs) {
            ReconcilePlan::UpToDate => {}
            ReconcilePlan::ReadBack { missing }
                if self.snapshot_is_cheaper(i, &missing) && self.send_snapshot(now, i, out) => {}
            ReconcilePlan::Ranges(ranges) | ReconcilePlan::ReadBack { missing: ranges } => {
                self.ship_ranges(now, i, &ranges, out)
            }
        }
    }

    /// True when peer `i` holds nothing we lack (a new replica, a migration's target, a
    /// replica that was away while we wrote) and lacks more than one read window: our
    /// state then brings it up to date in one message, where reading our log back would
    /// take a round trip per window. A peer with events of its own is caught up from the
    /// log instead: it could not install a state that lacks them.
    fn snapshot_is_cheaper(&self, i: usize, missing: &[LogRange]) -> bool {
        let window = READ_WINDOW_FRAMES * self.cfg.max_frame_events.max(1) as u64;
        let lacking: u64 = missing.iter().map(|r| r.upto - r.after).sum();
        lacking > window && self.ledger.version_vector().dominates(&self.peers[i].acked)
    }

    /// A full resync of peer `i`: our whole state. Sent at most once per `repair_after`,
    /// only once our own events in it are durable (they must never leave before), and only
    /// while we hold every event the peer reported durable: it can then install it by
    /// replaying just its latest events. Until then the peer pushes us what it has, from
    /// its own durable log if need be.
    /// Returns whether it was sent.
    pub(super) fn send_snapshot(&mut self, now: Timestamp, i: usize, out: &mut Outputs) -> bool {
        let me = self.cfg.id;
        let recent = self.peers[i]
            .last_snapshot_sent
            .is_some_and(|t| elapsed_ns(now, t) < self.cfg.repair_after.as_nanos() as i64);
        let holds_theirs = self.ledger.version_vector().dominates(&self.peers[i].acked);
        if recent || !holds_theirs || self.durable.get(me) < self.ledger.version_vector().get(me) {
            return false;
        }
        let state = match snapshot::encode_state(&self.ledger, self.clock.last()) {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(node = me.0, error = %e, "could not encode a snapshot for a peer");
                return false;
            }
        };
        let vv = self.ledger.version_vector().clone();
        let peer = &mut self.peers[i];
        peer.last_snapshot_sent = Some(now);
        for (origin, seq) in vv.iter() {
            peer.in_flight.shipped(origin, seq, &peer.acked, now);
        }
        tracing::info!(
            node = me.0,
            to = peer.id.0,
            bytes = state.len(),
            "shipping a snapshot of the whole state to a peer"
        );
        out.messages.push((
            peer.id,
            Message::Snapshot {
                term: self.term,
                vv,
                state: Arc::from(state),
            },
        ));
        true
    }

    /// Installs a peer's snapshot when it holds events we lack: its state, plus the events
    /// of ours it lacks, replayed from our in-memory log. The sender only ships one once
    /// it holds everything we reported durable, so those are our latest few; should the
    /// log not hold them all, nothing changes and our pushes bring the sender up to date
    /// before its next snapshot.
    pub(super) fn on_snapshot(
        &mut self,
        now: Timestamp,
        i: usize,
        state: &[u8],
        out: &mut Outputs,
    ) {
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
                    let mut rebuilt = ReconciliationEngine::rebuild(
                        ledger,
                        self.ledger.version_vector(),
                        &self.log,
                    )?;
                    self.clock.update(clock, now)?;
                    rebuilt.set_apply_threads(self.cfg.ingest_threads);
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
                // Runs held for a gap the snapshot filled can apply now.
                let before = out.persist.len();
                if let Err(e) = self.drain_early(&mut out.persist) {
                    tracing::warn!(node = self.cfg.id.0, error = %e, "held events refused after a snapshot install");
                }
                for e in &out.persist[before..] {
                    self.log.push(e);
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(node = self.cfg.id.0, from = from.0, error = %e, "peer snapshot not installed yet")
            }
        }
    }
}
