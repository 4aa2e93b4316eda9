//! [`NodeRef`]: one replica of a cluster, with the embedded database's API, under either
//! driver.

use super::{Cluster, ClusterDriver};
use crate::error::Result;
use crate::event::{ClientTag, VersionVector};
use crate::ledger::WindowReading;
use crate::node::{ClientOp, NodeRole, WriteAck, WriteConcern};
use crate::query::{self, Results, Retrieve};
use crate::schema::{EntityId, NodeId, RegionId, Timestamp, Window};

/// A handle on one replica of a [`Cluster`].
#[derive(Clone, Debug)]
pub struct NodeRef<D> {
    cluster: Cluster<D>,
    id: NodeId,
}

impl<D: ClusterDriver> NodeRef<D> {
    pub(super) fn new(cluster: Cluster<D>, id: NodeId) -> Self {
        NodeRef { cluster, id }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn region(&self) -> RegionId {
        self.cluster
            .driver
            .view(|v| v.control().replica(self.id).map(|r| r.region))
            .unwrap_or(RegionId(u16::MAX))
    }

    pub fn role(&self) -> Result<NodeRole> {
        self.cluster.with_node(self.id, |n, _| Ok(n.role()))
    }

    pub fn term(&self) -> Result<u64> {
        self.cluster.with_node(self.id, |n, _| Ok(n.term()))
    }

    /// What this replica has made durable (its disk would survive a crash with it).
    pub fn durable(&self) -> Result<VersionVector> {
        self.cluster
            .with_node(self.id, |n, _| Ok(n.durable().clone()))
    }

    pub fn version_vector(&self) -> Result<VersionVector> {
        self.cluster
            .with_node(self.id, |n, _| Ok(n.ledger().version_vector().clone()))
    }

    /// Events held in this replica's in-memory retained log, and the most it may hold.
    pub fn retained_log_len(&self) -> Result<(usize, usize)> {
        self.cluster.with_node(self.id, |n, _| {
            let log = n.retained_log();
            Ok((log.len(), log.bound()))
        })
    }

    /// Events applied, summed over origins.
    pub fn applied_seqno(&self) -> Result<u64> {
        self.cluster
            .with_node(self.id, |n, _| Ok(n.ledger().version_vector().sum()))
    }

    pub fn write_signal(
        &self,
        signal: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        let signal = self.cluster.layout().schema.resolve(signal)?;
        let op = ClientOp::Signal {
            signal,
            entity,
            weight,
            ts,
        };
        self.cluster.driver.submit(self.id, &[op], concern, tag)
    }

    /// A local signal write stamped with the driver's time now.
    pub fn signal(&self, signal: &str, entity: EntityId, weight: f64) -> Result<WriteAck> {
        self.write_signal(signal, entity, weight, None, WriteConcern::Local, None)
    }

    /// `ts = None` stamps the hide with the driver's time now.
    pub fn hide_item(
        &self,
        user: EntityId,
        item: EntityId,
        ts: Option<Timestamp>,
    ) -> Result<WriteAck> {
        let op = ClientOp::Hide { user, item, ts };
        self.cluster
            .driver
            .submit(self.id, &[op], WriteConcern::Local, None)
    }

    pub fn unhide_item(
        &self,
        user: EntityId,
        item: EntityId,
        ts: Option<Timestamp>,
    ) -> Result<WriteAck> {
        let op = ClientOp::Unhide { user, item, ts };
        self.cluster
            .driver
            .submit(self.id, &[op], WriteConcern::Local, None)
    }

    /// The decayed score at `at` (default: the driver's time now).
    pub fn read_decay_score(
        &self,
        entity: EntityId,
        signal: &str,
        at: Option<Timestamp>,
    ) -> Result<f64> {
        let signal = self.cluster.layout().schema.resolve(signal)?;
        self.cluster.with_node(self.id, |n, now| {
            n.ledger().decay_score(signal, entity, at.unwrap_or(now))
        })
    }

    pub fn read_window(
        &self,
        entity: EntityId,
        signal: &str,
        window: Window,
    ) -> Result<WindowReading> {
        let signal = self.cluster.layout().schema.resolve(signal)?;
        self.cluster.with_node(self.id, |n, now| {
            n.ledger().window(signal, entity, window, now)
        })
    }

    pub fn is_hidden(&self, user: EntityId, item: EntityId) -> Result<bool> {
        self.cluster
            .with_node(self.id, |n, _| Ok(n.ledger().is_hidden(user, item)))
    }

    /// A query answered by this replica alone (its shard's candidates only).
    pub fn retrieve(&self, q: &Retrieve) -> Result<Results> {
        self.cluster.driver.view(|v| {
            let node = v.node(self.id)?;
            let shard = node.config().shard;
            let mut r = query::execute(node.ledger(), q, v.now(), shard)?;
            r.stats.replicas_unreachable = node.unreachable_replicas(v.now());
            r.stats.degraded = !r.stats.replicas_unreachable.is_empty();
            Ok(r)
        })
    }
}
