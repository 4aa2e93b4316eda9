//! A tenant's hard caps across its replicas: each replica admits a write only within the
//! rights it holds of each capped quota (a bounded counter, see
//! [`BoundedCounter`](crate::crdt::BoundedCounter)), and asks a peer for more when it runs
//! short.
//!
//! - The replica named `rights_home` starts with all the rights; the others start with
//!   none and borrow on demand. Writes go to the home unless a client picks a region, so
//!   the common path never waits for a transfer.
//! - A replica short of rights refuses the write with `QuotaExceeded` (nothing written)
//!   and sends a [`Message::RightsRequest`] to the peer it believes holds the most spare
//!   rights. The refusal carries a `retry_after` while a request is out, and none when no
//!   peer is known to hold any.
//! - The peer grants part of its spare as an [`EventBody::Grant`] of its own, which
//!   replicates like any other event. Only the giver originates a grant, from rights it
//!   holds, so no replica can give what it lacks.

use std::time::Duration;

use super::replication::elapsed_ns;
use super::{Message, Node, Outputs};
use crate::error::{Result, TidalError};
use crate::event::{CapKind, EventBody};
use crate::schema::{NodeId, Timestamp};
use crate::tenancy::TenantUsage;

const KINDS: [CapKind; 2] = [CapKind::Entities, CapKind::Storage];

/// The rights requests this replica has out, one per capped quota at most.
#[derive(Debug, Default)]
pub(super) struct RightsAsks {
    /// Per [`KINDS`] entry: when a peer was asked, and the rights this replica had
    /// received by then (more received since means the request was answered).
    out: [Option<(Timestamp, u64)>; 2],
    /// The quota a refused write ran short of, and by how much: set while admitting,
    /// taken when the refusal is answered.
    pub shortfall: Option<(CapKind, u64)>,
}

fn slot(kind: CapKind) -> usize {
    match kind {
        CapKind::Entities => 0,
        CapKind::Storage => 1,
    }
}

impl Node {
    /// The replica of this group that started with the tenant's rights.
    fn rights_home(&self) -> NodeId {
        self.cfg.rights_home.unwrap_or(self.cfg.id)
    }

    /// The rights `node` started with: the whole cap at the home, none elsewhere.
    fn initial_rights(&self, node: NodeId, kind: CapKind) -> u64 {
        match self.cfg.quotas.as_ref().and_then(|q| q.rights_cap(kind)) {
            Some(cap) if node == self.rights_home() => cap,
            _ => 0,
        }
    }

    /// The `kind` rights `node` holds as far as this replica knows; `None` when the
    /// tenant has no such cap. Exact for this replica itself, except for grants to it
    /// still on their way, which only add.
    pub fn rights_of(&self, node: NodeId, kind: CapKind) -> Option<u64> {
        self.cfg.quotas.as_ref()?.rights_cap(kind)?;
        let counter = self.ledger.escrow().counter(kind);
        Some(counter.rights(node, self.initial_rights(node, kind)))
    }

    /// The tenant's quotas for a write of `events` events that claims `new_entities`
    /// entities: this replica's own view of the caps, then the rights it holds, then the
    /// rate. Runs before anything is applied, so a refused write leaves nothing behind and
    /// spends no rate tokens on a write a hard cap refuses.
    pub(super) fn check_quotas(
        &mut self,
        now: Timestamp,
        events: u64,
        new_entities: u64,
    ) -> Result<()> {
        let Some(q) = self.cfg.quotas.clone() else {
            return Ok(());
        };
        let usage = TenantUsage {
            entities: self.ledger.distinct_entities(),
            events: self.ledger.version_vector().sum(),
        };
        q.check_caps(usage, events, new_entities)?;
        for (kind, need) in [
            (CapKind::Entities, new_entities),
            (CapKind::Storage, events),
        ] {
            if let Some(held) = self.rights_of(self.cfg.id, kind)
                && held < need
            {
                self.asks.shortfall = Some((kind, need - held));
                return Err(q.breach(kind));
            }
        }
        q.spend_rate(now, events)
    }

    /// Every capped quota's rights at this replica are at least zero, as the counter's
    /// law requires after each of its own admissions and grants.
    pub(super) fn debug_check_rights(&self) {
        if cfg!(debug_assertions) {
            let me = self.cfg.id;
            for kind in KINDS {
                if self.rights_of(me, kind).is_some() {
                    let c = self.ledger.escrow().counter(kind);
                    let balance = c.balance(me, self.initial_rights(me, kind));
                    debug_assert!(balance >= 0, "{kind:?} rights overspent: {balance}");
                }
            }
        }
    }

    /// Answers a write refusal: when it was for want of rights, asks a peer for them and
    /// says when a retry may pass.
    pub(super) fn after_refusal(
        &mut self,
        now: Timestamp,
        err: TidalError,
        out: &mut Outputs,
    ) -> TidalError {
        let Some((kind, need)) = self.asks.shortfall.take() else {
            return err;
        };
        match err {
            TidalError::QuotaExceeded(mut b) => {
                b.retry_after = self.ask_for_rights(now, kind, need, out);
                TidalError::QuotaExceeded(b)
            }
            other => other,
        }
    }

    /// Sends a rights request unless one is out and fresh. Returns how long until a
    /// retry may find the rights here, or `None` when no peer is known to hold any spare.
    fn ask_for_rights(
        &mut self,
        now: Timestamp,
        kind: CapKind,
        need: u64,
        out: &mut Outputs,
    ) -> Option<Duration> {
        let timeout = self.cfg.peer_timeout;
        // The peer with the most spare, preferring ones heard from lately; ties go to the
        // lowest id, so the choice is deterministic.
        let (peer, spare) = self
            .peers
            .iter()
            .map(|p| {
                let spare = self.spare_of(p.id, kind).unwrap_or(0);
                (
                    p.reachable(now, timeout),
                    spare,
                    std::cmp::Reverse(p.id),
                    p.id,
                )
            })
            .filter(|(_, spare, _, _)| *spare > 0)
            .max()
            .map(|(_, spare, _, id)| (id, spare))?;
        let wait = self.cfg.repair_after;
        let received = self.ledger.escrow().counter(kind).received(self.cfg.id);
        if let Some((at, before)) = self.asks.out[slot(kind)]
            && received == before
        {
            let waited = u64::try_from(elapsed_ns(now, at)).unwrap_or(0);
            let left = wait.saturating_sub(Duration::from_nanos(waited));
            if !left.is_zero() {
                return Some(left);
            }
        }
        tracing::debug!(
            node = self.cfg.id.0,
            peer = peer.0,
            ?kind,
            need,
            spare,
            "short of rights; asking a peer"
        );
        out.messages.push((
            peer,
            Message::RightsRequest {
                term: self.term,
                kind,
                need,
            },
        ));
        self.asks.out[slot(kind)] = Some((now, received));
        Some(wait)
    }

    /// The `kind` rights `node` may give away as far as this replica knows: what it
    /// holds, less the storage right the grant event itself spends where storage is
    /// capped. `None` when the tenant has no such cap.
    fn spare_of(&self, node: NodeId, kind: CapKind) -> Option<u64> {
        let held = self.rights_of(node, kind)?;
        match self.rights_of(node, CapKind::Storage) {
            Some(0) => Some(0),
            Some(_) if kind == CapKind::Storage => Some(held - 1),
            _ => Some(held),
        }
    }

    /// A peer is short of `kind` rights: give it what it needs, or half of the spare if
    /// that is more (so rights move towards where writes are in few transfers), never
    /// more than the spare.
    pub(super) fn on_rights_request(
        &mut self,
        now: Timestamp,
        i: usize,
        kind: CapKind,
        need: u64,
        out: &mut Outputs,
    ) {
        let spare = self.spare_of(self.cfg.id, kind).unwrap_or(0);
        let amount = need.max(spare.div_ceil(2)).min(spare);
        self.grant(now, self.peers[i].id, kind, amount, out);
    }

    /// Gives `to` every right this replica holds: a migration's source does so before it
    /// is collected, so that its rights are not lost with it.
    pub(super) fn hand_over_rights(&mut self, now: Timestamp, to: NodeId, out: &mut Outputs) {
        // Entities first: their grant spends a storage right, which the storage grant
        // would otherwise have given away.
        for kind in [CapKind::Entities, CapKind::Storage] {
            let amount = self.spare_of(self.cfg.id, kind).unwrap_or(0);
            self.grant(now, to, kind, amount, out);
        }
    }

    /// Originates a grant of `amount` (at most the spare) `kind` rights to `to`.
    fn grant(&mut self, now: Timestamp, to: NodeId, kind: CapKind, amount: u64, out: &mut Outputs) {
        let me = self.cfg.id;
        if amount == 0 || to == me || !self.own_history_unconfirmed.is_empty() {
            return;
        }
        debug_assert!(
            self.spare_of(self.cfg.id, kind)
                .is_some_and(|s| s >= amount),
            "a grant gives only rights the giver holds"
        );
        let event = self.next_event(now, 0, EventBody::Grant { kind, to, amount }, None);
        // Its seq is the next in order and its amount is not zero, so it applies.
        let _ = self.ledger.apply(&event);
        if !self.peers.is_empty() {
            self.log.push(&event);
        }
        out.persist.push(event);
        self.debug_check_rights();
        tracing::debug!(node = me.0, to = to.0, ?kind, amount, "rights granted");
    }
}
