//! Shipping events to a peer: eager pushes of our own events, reconciliation plans, and
//! full resyncs by snapshot, sent and received.
//!
//! Each peer's [`InFlight`](super::in_flight::InFlight) remembers what is in flight, so that
//! overlapping requests do not ship the same events twice.

use std::sync::Arc;

use smallvec::SmallVec;

use super::reconcile::{LogRange, ReconcilePlan, ReconciliationEngine};
use super::replication::elapsed_ns;
use super::{Message, Node, Outputs};
use crate::event::VersionVector;
use crate::schema::Timestamp;
use crate::wal::{encode_frame, snapshot};

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

    /// Ships `ranges` from the log to peer `i` in frames of at most `max_frame_events`, or
    /// the whole state when some of them have left the log.
    pub(super) fn ship_ranges(
        &mut self,
        now: Timestamp,
        i: usize,
        ranges: &[LogRange],
        out: &mut Outputs,
    ) {
        let ranges: SmallVec<[LogRange; 4]> =
            ranges.iter().filter(|r| !r.is_empty()).copied().collect();
        if ranges.is_empty() {
            return;
        }
        if !ranges
            .iter()
            .all(|r| self.log.covers(r.origin, r.after, r.upto))
        {
            self.send_snapshot(now, i, out);
            return;
        }
        let peer = &mut self.peers[i];
        for r in &ranges {
            peer.in_flight.shipped(r.origin, r.upto, &peer.acked, now);
        }
        let to = peer.id;
        let events = ReconciliationEngine::gather(&self.log, &ranges);
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
            ReconcilePlan::Ranges(ranges) => self.ship_ranges(now, i, &ranges, out),
            ReconcilePlan::Snapshot { .. } => self.send_snapshot(now, i, out),
        }
    }

    /// A full resync of peer `i`: our whole state. Sent at most once per `repair_after`,
    /// and only once our own events in it are durable (they must never leave before).
    pub(super) fn send_snapshot(&mut self, now: Timestamp, i: usize, out: &mut Outputs) {
        let me = self.cfg.id;
        let recent = self.peers[i]
            .last_snapshot_sent
            .is_some_and(|t| elapsed_ns(now, t) < self.cfg.repair_after.as_nanos() as i64);
        if recent || self.durable.get(me) < self.ledger.version_vector().get(me) {
            return;
        }
        let state = match snapshot::encode_state(&self.ledger, self.clock.last()) {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(node = me.0, error = %e, "could not encode a snapshot for a peer");
                return;
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

    /// Installs a peer's snapshot when it holds events we lack: its state, plus the events
    /// of ours it lacks, replayed from our log. Refused, with nothing changed, when our log
    /// no longer holds those.
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
                tracing::warn!(node = self.cfg.id.0, from = from.0, error = %e, "peer snapshot not installed")
            }
        }
    }
}
