//! How replicas reach each other. The node's protocol already survives lost, duplicated
//! and reordered messages (it retransmits and reconciles), so a transport only has to try:
//! `send` is fire-and-forget and may drop anything.
//!
//! [`InProcessTransportFactory`] wires replicas in one process over channels, with injected
//! partitions for tests; [`PeerNetwork`](super::net::PeerNetwork) carries the same
//! messages between processes over TCP.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use tokio::sync::mpsc::{self, Receiver, UnboundedReceiver, UnboundedSender, error::TryRecvError};

use crate::node::Message;
use crate::schema::NodeId;

/// Carries messages from one replica to its peers.
///
/// The driver calls `send` while it holds its database's lock, so that messages leave in
/// the order the node produced them; an implementation must therefore never block (queue
/// the message and return) and must never call back into the database.
pub trait Transport: Send + Sync {
    /// Queues `msg` for `to`. Delivery is best effort: the message may be lost.
    fn send(&self, to: NodeId, msg: Message);

    /// The node this transport sends for; the receiver sees it as the sender.
    fn local_id(&self) -> NodeId;
}

/// Messages addressed to one replica, as `(sender, message)`. The database's driver task
/// owns it once the database is open.
#[derive(Debug)]
pub struct Inbox {
    rx: InboxRx,
}

/// In-process links queue without bound (the sender is in this process and drops nothing);
/// a network link reads into a bounded queue, so a slow replica pushes back on the socket.
#[derive(Debug)]
enum InboxRx {
    Unbounded(UnboundedReceiver<(NodeId, Message)>),
    Bounded(Receiver<(NodeId, Message)>),
}

impl Inbox {
    /// Wraps the receiving end of a channel that some transport feeds.
    pub fn from_receiver(rx: UnboundedReceiver<(NodeId, Message)>) -> Inbox {
        Inbox {
            rx: InboxRx::Unbounded(rx),
        }
    }

    /// Wraps a bounded channel: senders wait while the replica catches up.
    pub fn from_bounded(rx: Receiver<(NodeId, Message)>) -> Inbox {
        Inbox {
            rx: InboxRx::Bounded(rx),
        }
    }

    /// The next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<(NodeId, Message)> {
        match &mut self.rx {
            InboxRx::Unbounded(rx) => rx.recv().await,
            InboxRx::Bounded(rx) => rx.recv().await,
        }
    }

    /// A message already queued, without waiting. `Err(true)` means the inbox is closed.
    pub(crate) fn try_recv(&mut self) -> Result<(NodeId, Message), bool> {
        let got = match &mut self.rx {
            InboxRx::Unbounded(rx) => rx.try_recv(),
            InboxRx::Bounded(rx) => rx.try_recv(),
        };
        got.map_err(|e| e == TryRecvError::Disconnected)
    }
}

/// One blocked direction, or a node cut off from everyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    OneWay { from: NodeId, to: NodeId },
    Isolate(NodeId),
}

impl Cut {
    fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        match *self {
            Cut::OneWay { from: f, to: t } => f == from && t == to,
            Cut::Isolate(n) => n == from || n == to,
        }
    }
}

#[derive(Default)]
struct Router {
    routes: RwLock<HashMap<NodeId, UnboundedSender<(NodeId, Message)>>>,
    /// Active partitions by id. Each handle removes only its own entry, so overlapping
    /// partitions heal independently, and a handle outliving `heal_all` heals nothing new.
    partitions: RwLock<HashMap<u64, Vec<Cut>>>,
    next_partition: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

impl Router {
    fn deliver(&self, from: NodeId, to: NodeId, msg: Message) {
        let cut = self
            .partitions
            .read()
            .map_or(true, |p| p.values().flatten().any(|c| c.blocks(from, to)));
        let sent = !cut
            && self
                .routes
                .read()
                .ok()
                .and_then(|r| r.get(&to).map(|tx| tx.send((from, msg)).is_ok()))
                .unwrap_or(false);
        let counter = if sent { &self.delivered } else { &self.dropped };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn add(self: &Arc<Self>, cuts: Vec<Cut>) -> PartitionHandle {
        let id = self.next_partition.fetch_add(1, Ordering::Relaxed);
        match self.partitions.write() {
            Ok(mut p) => {
                p.insert(id, cuts);
            }
            // Only a panic inside this module can poison the lock, and nothing in it panics.
            Err(_) => tracing::error!("partition table poisoned; partition not injected"),
        }
        PartitionHandle {
            router: Arc::downgrade(self),
            id,
        }
    }
}

/// Connects replicas of one process over channels, and injects partitions between them.
/// Clones share the same network.
#[derive(Clone, Default)]
pub struct InProcessTransportFactory {
    router: Arc<Router>,
}

impl fmt::Debug for InProcessTransportFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessTransportFactory")
            .field("delivered", &self.delivered())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl InProcessTransportFactory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches `node` to the network. Connecting the same id again replaces its inbox:
    /// messages then go to the new one only, as after a restart.
    pub fn connect(&self, node: NodeId) -> (InProcessTransport, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        match self.router.routes.write() {
            Ok(mut r) => {
                r.insert(node, tx);
            }
            Err(_) => tracing::error!(node = node.0, "route table poisoned; node not connected"),
        }
        (
            InProcessTransport {
                router: self.router.clone(),
                me: node,
            },
            Inbox::from_receiver(rx),
        )
    }

    /// Drops every message between `a` and `b`, both ways, until the handle is dropped.
    pub fn inject_partition(&self, a: NodeId, b: NodeId) -> PartitionHandle {
        self.router.add(vec![
            Cut::OneWay { from: a, to: b },
            Cut::OneWay { from: b, to: a },
        ])
    }

    /// Drops every message from `from` to `to` (but not back) until the handle is dropped.
    pub fn inject_one_way(&self, from: NodeId, to: NodeId) -> PartitionHandle {
        self.router.add(vec![Cut::OneWay { from, to }])
    }

    /// Cuts `node` off from every other node, including ones connected later, until the
    /// handle is dropped.
    pub fn isolate(&self, node: NodeId) -> PartitionHandle {
        self.router.add(vec![Cut::Isolate(node)])
    }

    /// Heals every partition at once; handles still alive then heal nothing.
    pub fn heal_all(&self) {
        if let Ok(mut p) = self.router.partitions.write() {
            p.clear();
        }
    }

    /// Messages handed to an inbox so far.
    pub fn delivered(&self) -> u64 {
        self.router.delivered.load(Ordering::Relaxed)
    }

    /// Messages dropped so far: cut by a partition, or addressed to a node not connected.
    pub fn dropped(&self) -> u64 {
        self.router.dropped.load(Ordering::Relaxed)
    }
}

/// One node's end of an [`InProcessTransportFactory`] network.
#[derive(Clone)]
pub struct InProcessTransport {
    router: Arc<Router>,
    me: NodeId,
}

impl fmt::Debug for InProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessTransport")
            .field("local_id", &self.me)
            .finish_non_exhaustive()
    }
}

impl Transport for InProcessTransport {
    fn send(&self, to: NodeId, msg: Message) {
        self.router.deliver(self.me, to, msg);
    }

    fn local_id(&self) -> NodeId {
        self.me
    }
}

/// An injected partition; dropping it (or calling [`heal`](Self::heal)) heals it, so a
/// test cannot forget to.
#[must_use = "the partition heals as soon as its handle is dropped"]
#[derive(Debug)]
pub struct PartitionHandle {
    router: Weak<Router>,
    id: u64,
}

impl PartitionHandle {
    pub fn heal(self) {}
}

impl Drop for PartitionHandle {
    fn drop(&mut self) {
        if let Some(router) = self.router.upgrade()
            && let Ok(mut p) = router.partitions.write()
        {
            p.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fenced(term: u64) -> Message {
        Message::Fenced { term }
    }

    #[test]
    fn partitions_drop_messages_until_their_handle_is_dropped() {
        let net = InProcessTransportFactory::new();
        let (t0, mut in0) = net.connect(NodeId(0));
        let (t1, mut in1) = net.connect(NodeId(1));
        assert_eq!(t0.local_id(), NodeId(0));

        let one_way = net.inject_one_way(NodeId(0), NodeId(1));
        t0.send(NodeId(1), fenced(1));
        t1.send(NodeId(0), fenced(2));
        assert_eq!(in1.try_recv(), Err(false), "0 -> 1 is cut");
        assert_eq!(in0.try_recv(), Ok((NodeId(1), fenced(2))), "1 -> 0 is not");
        drop(one_way);

        let both = net.inject_partition(NodeId(1), NodeId(0));
        let overlapping = net.isolate(NodeId(1));
        t0.send(NodeId(1), fenced(3));
        t1.send(NodeId(0), fenced(4));
        both.heal();
        t0.send(NodeId(1), fenced(5));
        assert!(in0.try_recv().is_err() && in1.try_recv().is_err());
        drop(overlapping);
        t0.send(NodeId(1), fenced(6));
        assert_eq!(in1.try_recv(), Ok((NodeId(0), fenced(6))));

        let _forgotten = net.isolate(NodeId(0));
        net.heal_all();
        t1.send(NodeId(0), fenced(7));
        t1.send(NodeId(9), fenced(8));
        assert_eq!(in0.try_recv(), Ok((NodeId(1), fenced(7))));
        assert_eq!((net.delivered(), net.dropped()), (3, 5));
    }
}
