//! Replication between processes: the TCP implementation of [`Transport`].
//!
//! Each link is one-way. A node dials every peer and only *sends* on that connection; it
//! *receives* on the connections its peers dialed to it. So there is never a question of
//! which of two simultaneous connections wins, and a link can fail in one direction only,
//! as networks do.
//!
//! Sending never blocks the replica: a message goes into the peer's bounded queue, and a
//! full queue drops it (and counts the drop). The replication protocol retransmits what a
//! peer has not acknowledged, so a dropped message costs time, never data, and a slow or
//! absent peer cannot make this process's memory grow. Receiving pushes back instead: a
//! connection's reader waits while its replica's inbox is full.
//!
//! One process may host several tenants' replicas; every frame names its tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::frame::{self, Conn, Dialer, Hello, PEER_MAX_FRAME_BYTES, Welcome};
use super::tls::{Security, Stream};
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::{ControlCommand, Message, NodeReport};
use crate::runtime::transport::{Inbox, Transport};
use crate::schema::NodeId;

/// Messages queued for one peer at most; beyond that, sends are dropped.
pub const DEFAULT_QUEUE_LEN: usize = 4096;
/// Messages queued for one replica at most before the connection's reader waits.
const INBOX_LEN: usize = 4096;
/// A handshake or a connect that takes longer than this has failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer connection that carries nothing for this long is dead (a live peer heartbeats
/// many times a second): the reader closes it rather than wait on a half-open socket.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that does not take a frame for this long is treated as gone: the connection is
/// dropped and dialed again.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One peer: its node id and the `host:port` it listens on for replication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    pub node: NodeId,
    pub addr: String,
}

#[derive(Clone, Debug)]
pub struct PeerNetConfig {
    /// Every node and client of a cluster shares it; a connection naming another is refused.
    pub cluster_id: String,
    pub node: NodeId,
    pub peers: Vec<PeerAddress>,
    pub security: Security,
    /// Messages queued per peer at most (see [`DEFAULT_QUEUE_LEN`]).
    pub queue_len: usize,
}

/// What travels between processes: a replica's message, or the control plane's traffic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Payload {
    Replica(Message),
    Control(ControlFrame),
}

/// The control plane's traffic between processes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControlFrame {
    /// A Raft message between voters, in raft-rs's encoding.
    Raft(Vec<u8>),
    /// A replica's heartbeat, for the voters.
    Report(NodeReport),
    /// The Raft leader's order to a replica.
    Order(ControlCommand),
    /// The Raft leader's verdict on the regions, for every process's health answers.
    Verdict(super::majority::Verdict),
    /// The Raft leader's order to host a replica of a registered tenant.
    Host(super::placement::HostOrder),
    /// The frame's tenant is migrating away from this process (its `migration`th
    /// migration): stop serving it for good (clients fail over) but keep replicating, and
    /// hand its cap rights to `hand_over_to`. Answered with `Retired`.
    Retire {
        hand_over_to: NodeId,
        migration: u64,
    },
    /// The answer to `Retire`: the replica's version vector right after it stopped, which
    /// holds every write it acknowledged.
    Retired {
        migration: u64,
        vv: crate::event::VersionVector,
    },
    /// The frame's tenant has migrated away (its `migration`th migration): delete this
    /// process's copy.
    Delete { migration: u64 },
}

/// A frame between processes: the tenant whose replica group it belongs to (the control
/// plane's Raft traffic names the default tenant), and what it carries.
#[derive(Serialize, Deserialize)]
struct Envelope {
    tenant: TenantId,
    payload: Payload,
}

/// Control frames that reached this process, with their sender and tenant.
pub type ControlInbox = mpsc::Receiver<(NodeId, TenantId, ControlFrame)>;

/// What a link has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub received: AtomicU64,
    pub connected: AtomicBool,
}

/// A copy of one peer's [`LinkStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkReading {
    pub peer: NodeId,
    pub sent: u64,
    pub dropped: u64,
    pub received: u64,
    pub connected: bool,
}

struct Outbound {
    tx: mpsc::Sender<(TenantId, Payload)>,
    stats: Arc<LinkStats>,
}

struct Inner {
    cluster_id: String,
    node: NodeId,
    security: Security,
    outbound: HashMap<NodeId, Outbound>,
    inboxes: RwLock<HashMap<TenantId, mpsc::Sender<(NodeId, Message)>>>,
    control: RwLock<Option<mpsc::Sender<(NodeId, TenantId, ControlFrame)>>>,
    stop: watch::Sender<bool>,
}

/// This process's end of the replication network. Clones share it.
#[derive(Clone)]
pub struct PeerNetwork {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PeerNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerNetwork")
            .field("node", &self.inner.node)
            .field("links", &self.links())
            .finish_non_exhaustive()
    }
}

impl PeerNetwork {
    /// Starts dialing every peer on `runtime`. Messages reach this node once
    /// [`listen`](Self::listen) runs on its replication port.
    pub fn start(config: PeerNetConfig, runtime: &tokio::runtime::Handle) -> PeerNetwork {
        let (stop, _) = watch::channel(false);
        let mut outbound = HashMap::new();
        let mut dialers = Vec::new();
        for peer in config.peers.iter().filter(|p| p.node != config.node) {
            let (tx, rx) = mpsc::channel(config.queue_len.max(1));
            let stats = Arc::new(LinkStats::default());
            outbound.insert(
                peer.node,
                Outbound {
                    tx,
                    stats: stats.clone(),
                },
            );
            dialers.push((peer.clone(), rx, stats));
        }
        let inner = Arc::new(Inner {
            cluster_id: config.cluster_id,
            node: config.node,
            security: config.security,
            outbound,
            inboxes: RwLock::new(HashMap::new()),
            control: RwLock::new(None),
            stop,
        });
        for (peer, rx, stats) in dialers {
            runtime.spawn(dial_forever(inner.clone(), peer, rx, stats));
        }
        PeerNetwork { inner }
    }

    /// The transport and inbox of this node's replica of `tenant`.
    pub fn attach(&self, tenant: TenantId) -> (Arc<dyn Transport>, Inbox) {
        let (tx, rx) = mpsc::channel(INBOX_LEN);
        if let Ok(mut inboxes) = self.inner.inboxes.write() {
            inboxes.insert(tenant, tx);
        }
        let transport = TenantLink {
            inner: self.inner.clone(),
            tenant,
        };
        (Arc::new(transport), Inbox::from_bounded(rx))
    }

    /// Where control frames for this process arrive from now on.
    pub fn attach_control(&self) -> ControlInbox {
        let (tx, rx) = mpsc::channel(INBOX_LEN);
        if let Ok(mut control) = self.inner.control.write() {
            *control = Some(tx);
        }
        rx
    }

    /// Queues a control frame for `to`; like every send, it may be dropped.
    pub fn send_control(&self, to: NodeId, tenant: TenantId, frame: ControlFrame) {
        self.inner.enqueue(to, tenant, Payload::Control(frame));
    }

    pub fn local_id(&self) -> NodeId {
        self.inner.node
    }

    /// Accepts peers' connections until [`shutdown`](Self::shutdown).
    pub async fn listen(&self, listener: TcpListener) {
        let mut stop = self.inner.stop.subscribe();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, from)) => {
                        let inner = self.inner.clone();
                        tokio::spawn(async move {
                            if let Err(reason) = receive(inner, tcp).await {
                                tracing::warn!(%from, %reason, "closed a replication connection");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a replication connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    /// Stops dialing and accepting; connections close as their tasks notice.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Every link's counters, by peer id.
    pub fn links(&self) -> Vec<LinkReading> {
        let mut links: Vec<LinkReading> = self
            .inner
            .outbound
            .iter()
            .map(|(peer, out)| LinkReading {
                peer: *peer,
                sent: out.stats.sent.load(Ordering::Relaxed),
                dropped: out.stats.dropped.load(Ordering::Relaxed),
                received: out.stats.received.load(Ordering::Relaxed),
                connected: out.stats.connected.load(Ordering::Relaxed),
            })
            .collect();
        links.sort_by_key(|l| l.peer);
        links
    }
}

/// The [`Transport`] of one tenant's replica.
struct TenantLink {
    inner: Arc<Inner>,
    tenant: TenantId,
}

impl Inner {
    fn enqueue(&self, to: NodeId, tenant: TenantId, payload: Payload) {
        let Some(out) = self.outbound.get(&to) else {
            tracing::debug!(peer = to.0, "no address for this peer; message dropped");
            return;
        };
        if out.tx.try_send((tenant, payload)).is_err() {
            out.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Transport for TenantLink {
    fn send(&self, to: NodeId, msg: Message) {
        self.inner.enqueue(to, self.tenant, Payload::Replica(msg));
    }

    fn local_id(&self) -> NodeId {
        self.inner.node
    }
}

/// Keeps one peer's link up: dial, hand over, send what is queued; after any failure,
/// wait with jittered exponential backoff and dial again.
async fn dial_forever(
    inner: Arc<Inner>,
    peer: PeerAddress,
    mut queue: mpsc::Receiver<(TenantId, Payload)>,
    stats: Arc<LinkStats>,
) {
    let mut stop = inner.stop.subscribe();
    let mut backoff = Backoff::new((u64::from(inner.node.0) << 32) | u64::from(peer.node.0));
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        match dial(&inner, &peer).await {
            Ok(mut conn) => {
                tracing::info!(peer = peer.node.0, addr = %peer.addr, "replication link up");
                failures = 0;
                backoff.reset();
                stats.connected.store(true, Ordering::Relaxed);
                let ended = pump(&mut conn, &mut queue, &stats, &mut stop).await;
                stats.connected.store(false, Ordering::Relaxed);
                match ended {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(peer = peer.node.0, error = %e, "replication link down")
                    }
                }
            }
            Err(e) => {
                failures += 1;
                // Loud once, then quiet while the peer stays away.
                if failures == 1 {
                    tracing::warn!(peer = peer.node.0, addr = %peer.addr, error = %e, "cannot reach peer; retrying with backoff");
                } else {
                    tracing::debug!(peer = peer.node.0, error = %e, failures, "still cannot reach peer");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Connects to a peer, secures the connection and introduces this node.
async fn dial(inner: &Inner, peer: &PeerAddress) -> Result<Conn<Stream>> {
    let connect = async {
        let tcp = TcpStream::connect(&peer.addr)
            .await
            .map_err(TidalError::io(format!("connecting to {}", peer.addr)))?;
        let _ = tcp.set_nodelay(true);
        let stream = inner
            .security
            .connect(host_of(&peer.addr), tcp)
            .await
            .map_err(TidalError::io(format!("TLS handshake with {}", peer.addr)))?;
        let mut conn = frame::framed(stream);
        let hello = Hello::new(&inner.cluster_id, Dialer::Peer(inner.node));
        frame::send(&mut conn, &hello).await?;
        match frame::recv::<_, Welcome>(&mut conn).await? {
            Some(Welcome::Ok { node }) if node == peer.node => Ok(conn),
            Some(Welcome::Ok { node }) => Err(TidalError::InvalidArgument {
                name: "peers",
                reason: format!(
                    "{} is node {}, not node {} as configured",
                    peer.addr, node.0, peer.node.0
                ),
            }),
            Some(Welcome::Refused(reason)) => Err(TidalError::Unavailable(format!(
                "{} refused this node: {reason}",
                peer.addr
            ))),
            None => Err(TidalError::Unavailable(format!(
                "{} closed the connection during the handshake",
                peer.addr
            ))),
        }
    };
    let mut conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect)
        .await
        .map_err(|_| TidalError::Timeout(format!("handshake with {} timed out", peer.addr)))??;
    frame::open_up(&mut conn, PEER_MAX_FRAME_BYTES);
    Ok(conn)
}

/// Sends queued messages until the link fails (`Err`) or the network stops (`Ok`).
/// Messages that are already queued go out together, in one flush.
async fn pump(
    conn: &mut Conn<Stream>,
    queue: &mut mpsc::Receiver<(TenantId, Payload)>,
    stats: &LinkStats,
    stop: &mut watch::Receiver<bool>,
) -> Result<()> {
    loop {
        let first = tokio::select! {
            _ = stop.changed() => return Ok(()),
            m = queue.recv() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let sent = batch.len() as u64;
        let write = async {
            for (tenant, payload) in batch {
                let body = frame::encode(&Envelope { tenant, payload })?;
                conn.feed(body)
                    .await
                    .map_err(TidalError::io("sending to a peer"))?;
            }
            SinkExt::<bytes::Bytes>::flush(conn)
                .await
                .map_err(TidalError::io("sending to a peer"))
        };
        tokio::time::timeout(SEND_TIMEOUT, write)
            .await
            .map_err(|_| TidalError::Timeout("the peer took no data for 10 s".into()))??;
        stats.sent.fetch_add(sent, Ordering::Relaxed);
    }
}

/// Serves one connection a peer dialed: checks its hello, then hands every frame to the
/// replica of the tenant it names. Returns why the connection ended.
async fn receive(inner: Arc<Inner>, tcp: TcpStream) -> std::result::Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, inner.security.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let mut conn = frame::framed(stream);
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, frame::recv::<_, Hello>(&mut conn))
        .await
        .map_err(|_| "no hello within 5 s".to_string())?
        .map_err(|e| format!("bad hello: {e}"))?
        .ok_or("closed before its hello")?;
    let from = match check_peer_hello(&inner, &hello) {
        Ok(from) => from,
        Err(reason) => {
            let _ = frame::send(&mut conn, &Welcome::Refused(reason.clone())).await;
            return Err(format!("refused: {reason}"));
        }
    };
    frame::send(&mut conn, &Welcome::Ok { node: inner.node })
        .await
        .map_err(|e| e.to_string())?;
    frame::open_up(&mut conn, PEER_MAX_FRAME_BYTES);
    tracing::debug!(peer = from.0, "peer connected");
    let mut stop = inner.stop.subscribe();
    loop {
        let envelope = tokio::select! {
            _ = stop.changed() => return Ok(()),
            e = tokio::time::timeout(IDLE_TIMEOUT, frame::recv::<_, Envelope>(&mut conn)) => e,
        };
        let envelope = match envelope {
            Ok(Ok(Some(e))) => e,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(format!("from node {}: {e}", from.0)),
            Err(_) => return Err(format!("node {} sent nothing for {IDLE_TIMEOUT:?}", from.0)),
        };
        if let Some(out) = inner.outbound.get(&from) {
            out.stats.received.fetch_add(1, Ordering::Relaxed);
        }
        let msg = match envelope.payload {
            Payload::Replica(msg) => msg,
            Payload::Control(frame) => {
                let control = inner.control.read().ok().and_then(|c| c.clone());
                match control {
                    Some(tx) => {
                        if tx.send((from, envelope.tenant, frame)).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => tracing::debug!(
                        peer = from.0,
                        "control frame for a process without a control plane; dropped"
                    ),
                }
                continue;
            }
        };
        let inbox = inner
            .inboxes
            .read()
            .ok()
            .and_then(|i| i.get(&envelope.tenant).cloned());
        match inbox {
            Some(tx) => {
                if tx.send((from, msg)).await.is_err() {
                    return Ok(());
                }
            }
            None => tracing::debug!(
                peer = from.0,
                tenant = envelope.tenant.0,
                "message for a tenant this node does not host; dropped"
            ),
        }
    }
}

fn check_peer_hello(inner: &Inner, hello: &Hello) -> std::result::Result<NodeId, String> {
    frame::check_hello(hello, &inner.cluster_id, |dialer| match dialer {
        Dialer::Peer(id) if inner.outbound.contains_key(&id) => Ok(()),
        Dialer::Peer(id) => Err(format!("node {} is not a configured peer", id.0)),
        Dialer::Client => {
            Err("this is the replication port; clients connect to the client port".into())
        }
    })
    .map_err(|r| r.0)?;
    match hello.dialer {
        Dialer::Peer(id) => Ok(id),
        Dialer::Client => Err("clients connect to the client port".into()),
    }
}

/// The host part of `host:port`, which the peer's certificate must name.
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Port 9 on loopback: nothing listens, so the link never comes up.
        let network = PeerNetwork::start(
            PeerNetConfig {
                cluster_id: "c".into(),
                node: NodeId(1),
                peers: vec![PeerAddress {
                    node: NodeId(2),
                    addr: "127.0.0.1:9".into(),
                }],
                security: Security::Insecure,
                queue_len: 8,
            },
            runtime.handle(),
        );
        let (transport, _inbox) = network.attach(TenantId(0));
        for term in 0..20 {
            transport.send(NodeId(2), Message::Fenced { term });
        }
        transport.send(NodeId(3), Message::Fenced { term: 0 });
        let link = &network.links()[0];
        assert_eq!(
            (link.peer, link.dropped, link.connected),
            (NodeId(2), 12, false)
        );
        network.shutdown();
    }

    #[test]
    fn the_host_of_an_address_is_what_its_certificate_must_name() {
        assert_eq!(host_of("127.0.0.1:7001"), "127.0.0.1");
        assert_eq!(host_of("db.example:7001"), "db.example");
        assert_eq!(host_of("[::1]:7001"), "::1");
    }
}
