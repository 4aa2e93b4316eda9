//! One tidaldb server: a replica of each hosted tenant, the replication network that links
//! them to their peers in other processes, and the client port. `tidaldb serve` is this,
//! with a config file and signal handling around it; tests start several in one process.
//!
//! Every tenant is its own replica group with its own log (see `DESIGN.md`, Tenancy). The
//! default tenant's replica lives in `data_dir`, tenant `t`'s in `data_dir/tenant-{t}`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use super::control_host::{self, ControlSpec};
use super::peers::{DEFAULT_QUEUE_LEN, PeerAddress, PeerNetConfig, PeerNetwork};
use super::placed_by::{self, Placement};
use super::placement::{HostOrder, Hosting, ReplicaOpener};
use super::service::ClientService;
use super::tls::Security;
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::node::{NodeConfig, NodeReport, NodeRole, PeerAddr};
use crate::runtime::{ReportSink, TidalDb};
use crate::schema::{NodeId, RegionId, Schema, ShardId};
use crate::tenancy::{TenantConfig, TenantQuotas};
use crate::wal::Durability;

/// Another server of the same replica groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    pub node: NodeId,
    pub region: RegionId,
    /// Its replication port, `host:port`.
    pub addr: String,
}

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub cluster_id: String,
    pub node: NodeId,
    pub region: RegionId,
    /// Every region's name, indexed by region id: replies and health name regions so.
    pub region_names: Vec<String>,
    pub shard: ShardId,
    pub role: NodeRole,
    pub peers: Vec<PeerSpec>,
    pub listen_peer: SocketAddr,
    pub listen_client: SocketAddr,
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub schema: Schema,
    /// Tenants besides the default one (tenant 0, which is always hosted).
    pub tenants: Vec<TenantConfig>,
    pub security: Security,
    pub heartbeat_interval: Duration,
    pub peer_timeout: Duration,
    pub replication_timeout: Duration,
    /// The processes that vote in the replicated control plane; empty for none (roles then
    /// stay as configured, and nothing fails over).
    pub control_voters: Vec<NodeId>,
    /// How long a silent group leader keeps its place before the control plane promotes
    /// another replica.
    pub election_timeout: Duration,
}

/// How long a graceful stop waits for the requests being answered: longer than a
/// replicated write normally takes, short enough that a stop is never in doubt.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// One Raft tick of the control plane. Heartbeats go every 2 ticks and a follower
/// campaigns after 10 to 20 silent ones (200 to 400 ms), so a dead Raft leader is
/// replaced well within the group election timeout that follows it.
const CONTROL_TICK: Duration = Duration::from_millis(20);

/// A running server. Dropping it without [`shutdown`](Self::shutdown) stops its network
/// but skips the final sync that `shutdown` reports on.
pub struct Server {
    network: PeerNetwork,
    service: Arc<ClientService>,
    stop: watch::Sender<bool>,
    peer_addr: SocketAddr,
    client_addr: SocketAddr,
    node: NodeId,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("node", &self.node)
            .field("peer_addr", &self.peer_addr)
            .field("client_addr", &self.client_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens every hosted replica from its directory, binds both ports and starts serving,
    /// on the current tokio runtime.
    pub async fn start(spec: ServerSpec) -> Result<Server> {
        let runtime = tokio::runtime::Handle::current();
        if matches!(spec.security, Security::Insecure) {
            tracing::warn!(
                "running INSECURE: no TLS, no authentication; anyone who reaches these ports \
                 can read and write. Use only on a trusted machine."
            );
        }
        let peer_listener = bind(spec.listen_peer, "listen.peer").await?;
        let client_listener = bind(spec.listen_client, "listen.client").await?;
        let network = PeerNetwork::start(
            PeerNetConfig {
                cluster_id: spec.cluster_id.clone(),
                node: spec.node,
                peers: spec
                    .peers
                    .iter()
                    .map(|p| PeerAddress {
                        node: p.node,
                        addr: p.addr.clone(),
                    })
                    .collect(),
                security: spec.security.clone(),
                queue_len: DEFAULT_QUEUE_LEN,
            },
            &runtime,
        );
        let service = ClientService::new(
            spec.cluster_id.clone(),
            spec.node,
            spec.region,
            spec.region_names.clone(),
            spec.security.clone(),
        );
        let (report_tx, reports) = tokio::sync::mpsc::unbounded_channel();
        let sink = (!spec.control_voters.is_empty()).then_some(report_tx);
        if let Err(e) = open_replicas(&spec, &network, &service, sink.as_ref()) {
            // Nothing serves yet: stop the dialers and close what did open.
            network.shutdown();
            for (_, db) in service.replicas() {
                let _ = db.close();
            }
            return Err(e);
        }
        let (stop, stopped) = watch::channel(false);
        if !spec.control_voters.is_empty() {
            let host = control_host::start(
                control_spec(&spec),
                network.clone(),
                service.clone(),
                reports,
                replica_opener(&spec, &network, &service, sink),
                stopped.clone(),
            );
            match host {
                Ok(host) => service.set_control(host),
                Err(e) => {
                    network.shutdown();
                    for (_, db) in service.replicas() {
                        let _ = db.close();
                    }
                    return Err(e);
                }
            }
        }
        let peer_addr = local_addr(&peer_listener)?;
        let client_addr = local_addr(&client_listener)?;
        let net = network.clone();
        runtime.spawn(async move { net.listen(peer_listener).await });
        runtime.spawn(service.clone().listen(client_listener, stopped));
        tracing::info!(node = spec.node.0, %peer_addr, %client_addr, "tidaldb serving");
        Ok(Server {
            network,
            service,
            stop,
            peer_addr,
            client_addr,
            node: spec.node,
        })
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The bound replication port (useful when the spec asked for port 0).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn network(&self) -> &PeerNetwork {
        &self.network
    }

    pub fn service(&self) -> &Arc<ClientService> {
        &self.service
    }

    /// Stops accepting, lets the requests being answered finish (while replication still
    /// runs, so a write waiting for its replicas can get them), then syncs and closes every
    /// replica. Returns the first failure to sync, which may mean acknowledged batched
    /// writes were lost.
    pub fn shutdown(&self) -> Result<()> {
        self.stop.send_replace(true);
        let unfinished = self.service.stop_answering(SHUTDOWN_PATIENCE);
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "closing with requests still running; their clients will see the node go"
            );
        }
        self.network.shutdown();
        let mut result = Ok(());
        for (tenant, db) in self.service.replicas() {
            if let Err(e) = db.close() {
                tracing::error!(tenant = tenant.0, error = %e, "final sync failed");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        tracing::info!(node = self.node.0, "tidaldb stopped");
        result
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.network.shutdown();
    }
}

/// Where the control plane's voter keeps its log.
pub fn control_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("control")
}

fn control_spec(spec: &ServerSpec) -> ControlSpec {
    let mut nodes: Vec<(NodeId, RegionId)> =
        spec.peers.iter().map(|p| (p.node, p.region)).collect();
    nodes.push((spec.node, spec.region));
    nodes.sort_unstable();
    nodes.dedup();
    let mut tenants = vec![TenantId::DEFAULT];
    tenants.extend(spec.tenants.iter().map(|t| t.tenant_id));
    ControlSpec {
        voters: spec.control_voters.clone(),
        nodes,
        region_names: spec.region_names.clone(),
        shard: spec.shard,
        tenants,
        tick: CONTROL_TICK,
        heartbeat_ticks: 2,
        election_ticks: 10,
        group_election_timeout: spec.election_timeout,
        dir: control_dir(&spec.data_dir),
        snapshot_every: 1024,
    }
}

/// Opens the replica of every tenant the config names, attached to the network, into
/// `service`. Each has every process of the cluster as its group.
fn open_replicas(
    spec: &ServerSpec,
    network: &PeerNetwork,
    service: &ClientService,
    reports: Option<&UnboundedSender<(TenantId, NodeReport)>>,
) -> Result<()> {
    let mut peers: Vec<PeerAddr> = spec
        .peers
        .iter()
        .map(|p| PeerAddr::new(p.node, p.region))
        .collect();
    peers.retain(|p| p.node != spec.node);
    peers.sort_by_key(|p| p.node);
    // Every process of the group must name the same replica as the one that starts with
    // a capped tenant's rights: the lowest node id, which also leads first.
    let rights_home = peers.iter().map(|p| p.node).chain([spec.node]).min();
    let mut tenants = vec![None];
    tenants.extend(spec.tenants.iter().map(Some));
    for config in tenants {
        let tenant = config.map_or(TenantId(0), |c| c.tenant_id);
        let group = Group {
            tenant,
            config,
            peers: peers.clone(),
            rights_home,
            placed: Placement::default(),
        };
        open_replica(spec, network, service, reports, group)?;
    }
    Ok(())
}

/// A replica group as this process joins it.
struct Group<'a> {
    tenant: TenantId,
    /// The tenant's quotas; `None` for the default tenant.
    config: Option<&'a TenantConfig>,
    peers: Vec<PeerAddr>,
    rights_home: Option<NodeId>,
    /// See [`HostOrder::placed_by`]; the replica keeps the one it was first opened with.
    placed: Placement,
}

/// Opens this process's replica of `group.tenant` into `service`. With `reports`, its
/// heartbeats go to the control plane, tagged with its tenant.
fn open_replica(
    spec: &ServerSpec,
    network: &PeerNetwork,
    service: &ClientService,
    reports: Option<&UnboundedSender<(TenantId, NodeReport)>>,
    group: Group<'_>,
) -> Result<()> {
    let tenant = group.tenant;
    let dir = replica_dir(&spec.data_dir, tenant);
    let placed = match placed_by::read(&dir)? {
        Some(kept) => kept,
        None => group.placed,
    };
    let (transport, inbox) = network.attach(tenant);
    let mut builder = TidalDb::builder();
    if let Some(tx) = reports.cloned() {
        // Runs under the replica's lock: it only queues.
        builder = builder.report_to(ReportSink(Arc::new(move |report| {
            let _ = tx.send((tenant, report));
        })));
    }
    let db = builder
        .with_data_dir(&dir)
        .with_schema(spec.schema.clone())
        .durability(spec.durability)
        .with_cluster(node_config(spec, group, placed.source)?)
        .replication_timeout(spec.replication_timeout)
        .with_transport(transport, inbox)
        .open()?;
    if placed.migration > 0 {
        placed_by::write(&dir, placed)?;
    }
    service.host(tenant, db, placed.migration);
    Ok(())
}

/// Opens and deletes the replicas the control plane places on (or moves off) this
/// process after it started.
struct PlacedReplicas {
    spec: ServerSpec,
    network: PeerNetwork,
    service: Arc<ClientService>,
    reports: Option<UnboundedSender<(TenantId, NodeReport)>>,
}

impl Hosting for PlacedReplicas {
    fn open(&self, order: &HostOrder) -> Result<()> {
        let group = Group {
            tenant: order.config.tenant_id,
            config: Some(&order.config),
            peers: order.peers.clone(),
            rights_home: Some(order.rights_home),
            placed: Placement {
                migration: order.placed_by,
                source: order.placed_from,
            },
        };
        open_replica(
            &self.spec,
            &self.network,
            &self.service,
            self.reports.as_ref(),
            group,
        )
    }

    fn delete(&self, tenant: TenantId, migration: u64) -> Result<bool> {
        let dir = replica_dir(&self.spec.data_dir, tenant);
        if !self.service.hosts(tenant) && !dir.exists() {
            return Ok(false); // deleted already: the order is repeated
        }
        let placed = match self.service.placed_by(tenant) {
            Some(placed) => placed,
            None => placed_by::read(&dir)?.map_or(0, |p| p.migration),
        };
        if migration <= placed {
            return Ok(false); // an order of a migration before this replica came here
        }
        if let Some(db) = self.service.unhost(tenant) {
            db.close()?;
        }
        debug_assert!(
            tenant != TenantId::DEFAULT,
            "the default tenant never moves"
        );
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(TidalError::io(format!("deleting {}", dir.display()))(e)),
        }
    }
}

fn replica_opener(
    spec: &ServerSpec,
    network: &PeerNetwork,
    service: &Arc<ClientService>,
    reports: Option<UnboundedSender<(TenantId, NodeReport)>>,
) -> ReplicaOpener {
    Arc::new(PlacedReplicas {
        spec: spec.clone(),
        network: network.clone(),
        service: service.clone(),
        reports,
    })
}

/// Where the replica of `tenant` keeps its files.
pub fn replica_dir(data_dir: &Path, tenant: TenantId) -> PathBuf {
    if tenant == TenantId(0) {
        data_dir.to_path_buf()
    } else {
        data_dir.join(format!("tenant-{}", tenant.0))
    }
}

/// `history_from`: see [`NodeConfig::own_history_from`].
fn node_config(
    spec: &ServerSpec,
    group: Group<'_>,
    history_from: Option<NodeId>,
) -> Result<NodeConfig> {
    let quotas = match group.config {
        Some(c) => Some(Arc::new(TenantQuotas::new(c)?)),
        None => None,
    };
    Ok(NodeConfig {
        id: spec.node,
        region: spec.region,
        shard: spec.shard,
        role: spec.role,
        tenant: group.tenant,
        peers: group.peers,
        heartbeat_interval: spec.heartbeat_interval,
        peer_timeout: spec.peer_timeout,
        quotas,
        rights_home: group.rights_home,
        own_history_from: history_from,
        ..NodeConfig::default()
    })
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| TidalError::InvalidArgument {
            name: what,
            reason: format!("cannot listen on {addr}: {e}"),
        })
}

fn local_addr(l: &TcpListener) -> Result<SocketAddr> {
    l.local_addr()
        .map_err(TidalError::io("reading a bound port"))
}
