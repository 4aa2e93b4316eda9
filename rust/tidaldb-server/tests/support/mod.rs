//! The process-level harness: real `tidaldb serve` processes on 127.0.0.1, each with its own
//! config file, data directory and log, every peer link routed through a fault proxy the
//! test controls (see `proxy`), and an oracle of what the nodes must hold (see `model`).
//!
//! A `Cluster` kills every process it started when it is dropped, and when the test is
//! panicking it first prints the tail of every node's log.

#![allow(dead_code)] // each suite uses its own subset

pub mod ingest;
pub mod model;
pub mod node;
pub mod proxy;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidaldb::runtime::net::proto::Concern;
use tidaldb::runtime::net::{Client, ClientOptions, Security, TlsFiles, Written};
use tidaldb::{NodeId, TenantId, TidalError};
use tidaldb_server::cert::{CertRequest, make_certs};

use model::{Model, Observed, TENANT};
use node::NodeProc;
use proxy::Proxy;

pub const CLUSTER_ID: &str = "proc-test";
/// How long a node may take to start, and a cluster to converge, before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// The configs' peer timeout; a node counts a peer unreachable after this much silence.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(300);

/// The tokio runtime the proxies (and the raw-socket tests) run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the harness runtime")
    })
}

/// A loopback address for a node to listen on, free when asked. It lies below the
/// kernel's ephemeral range, so that neither a proxy's bind to port 0 nor any outgoing
/// connection can take it between this check and the node's own bind. Each test process
/// walks the range from its own starting point.
pub fn free_addr() -> SocketAddr {
    const SPAN: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let low = ephemeral_low.saturating_sub(SPAN).max(1024);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(k < SPAN, "no free port left below the ephemeral range");
        let port = low + (start + k) % SPAN;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            return l.local_addr().expect("local address");
        }
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// Polls `f` until it returns `Ok`, or fails the test with its last `Err` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: not within {timeout:?}; last: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Spec {
    pub nodes: usize,
    pub tls: bool,
    /// Also list a peer 9 that never answers, so that a test can say hello as node 9.
    pub phantom_peer: bool,
    /// Every node votes in a replicated control plane, which decides leadership.
    pub control: bool,
    /// With `control`, only nodes below this id vote; the others follow as learners.
    pub voters_below: Option<u16>,
}

impl Spec {
    pub fn tls(nodes: usize) -> Spec {
        Spec {
            nodes,
            tls: true,
            phantom_peer: false,
            control: false,
            voters_below: None,
        }
    }

    /// With a replicated control plane that every node votes in.
    pub fn with_control(self) -> Spec {
        Spec {
            control: true,
            ..self
        }
    }

    /// With a replicated control plane in which only nodes `0..voters` vote.
    pub fn with_voters(self, voters: u16) -> Spec {
        Spec {
            control: true,
            voters_below: Some(voters),
            ..self
        }
    }

    pub fn insecure(nodes: usize) -> Spec {
        Spec {
            tls: false,
            ..Spec::tls(nodes)
        }
    }
}

/// The node id a test may impersonate when `phantom_peer` is set.
pub const PHANTOM: u16 = 9;

pub struct Cluster {
    clients: Vec<Option<Client>>,
    nodes: Vec<NodeProc>,
    proxies: BTreeMap<(usize, usize), Proxy>,
    options: ClientOptions,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts every node and waits until each answers a health call.
    pub fn start(spec: Spec) -> Cluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let n = spec.nodes;
        let security = if spec.tls {
            let mut names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
            names.push("client".into());
            make_certs(&CertRequest {
                out: dir.path().join("certs"),
                names,
                hosts: vec!["127.0.0.1".into(), "localhost".into()],
            })
            .expect("make certificates");
            Security::from_files(&cert_files(&dir.path().join("certs"), "client"))
                .expect("the client's certificate")
        } else {
            Security::Insecure
        };
        // The default request timeout (10 s) stays above the nodes' replication_timeout
        // (5 s): a client that gave up first would retry a slow Replicated(k) write on
        // another node while the original still stands.
        let options = ClientOptions::new(CLUSTER_ID, security);
        let peer_addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let mut proxies = BTreeMap::new();
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                proxies.insert((i, j), Proxy::start(runtime(), peer_addrs[j]));
            }
        }
        let mut nodes = Vec::new();
        for i in 0..n {
            let client_addr = free_addr();
            let peers: Vec<(u16, SocketAddr)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (j as u16, proxies[&(i, j)].addr()))
                .collect();
            let config = dir.path().join(format!("n{i}.toml"));
            let text = config_toml(i as u16, &spec, peer_addrs[i], client_addr, &peers);
            std::fs::write(&config, text).expect("write the config");
            nodes.push(NodeProc::new(
                i as u16,
                config,
                dir.path().join(format!("n{i}.log")),
                peer_addrs[i],
                client_addr,
                !spec.tls,
            ));
        }
        let mut cluster = Cluster {
            clients: (0..n).map(|_| None).collect(),
            nodes,
            proxies,
            options,
            dir,
        };
        for i in 0..n {
            cluster.nodes[i].spawn();
        }
        for i in 0..n {
            cluster.wait_ready(i);
        }
        cluster
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn node(&mut self, i: usize) -> &mut NodeProc {
        &mut self.nodes[i]
    }

    /// Node `i`'s client address, `host:port`.
    pub fn addr(&self, i: usize) -> String {
        self.nodes[i].client_addr.to_string()
    }

    pub fn options(&self) -> ClientOptions {
        self.options.clone()
    }

    /// The cached client of node `i` alone (it reconnects after a restart).
    pub fn client(&mut self, i: usize) -> &mut Client {
        if self.clients[i].is_none() {
            let c = Client::connect(&[self.addr(i)], self.options.clone())
                .unwrap_or_else(|e| panic!("connect to node {i}: {e}"));
            self.clients[i] = Some(c);
        }
        self.clients[i].as_mut().expect("just connected")
    }

    /// A new client that knows the given nodes, in order, and fails over between them.
    pub fn client_of(&self, nodes: &[usize]) -> Client {
        let addrs: Vec<String> = nodes.iter().map(|&i| self.addr(i)).collect();
        Client::connect(&addrs, self.options.clone()).expect("connect a client")
    }

    /// Waits until node `i`'s client port accepts and answers a health call.
    pub fn wait_ready(&mut self, i: usize) {
        let addr = self.addr(i);
        let options = self.options.clone();
        let node = &mut self.nodes[i];
        let client = wait_until(PATIENCE, &format!("node {i} ready"), || {
            if !node.is_running() {
                panic!("node {i} exited while starting");
            }
            let mut c = Client::connect(&[&addr], options.clone()).map_err(|e| e.to_string())?;
            c.health(TENANT).map_err(|e| e.to_string())?;
            Ok(c)
        });
        self.clients[i] = Some(client);
    }

    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// SIGTERM, and the exit status of the graceful stop.
    pub fn sigterm(&mut self, i: usize) -> ExitStatus {
        self.nodes[i].sigterm(Duration::from_secs(20))
    }

    /// Starts node `i` again from the same config and data directory.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].spawn();
        self.wait_ready(i);
    }

    /// The proxy of the directed link i→j (node i sends to node j through it).
    pub fn link(&self, i: usize, j: usize) -> &Proxy {
        &self.proxies[&(i, j)]
    }

    /// Cuts both directions of every link of node `k`.
    pub fn isolate(&self, k: usize) {
        for ((i, j), p) in &self.proxies {
            if *i == k || *j == k {
                p.cut();
            }
        }
    }

    /// Every link back to pass.
    pub fn heal(&self) {
        for p in self.proxies.values() {
            p.restore();
        }
    }

    /// Waits until node `i` reports exactly `unreachable` (and `degraded` when it is not
    /// empty) on a read, and returns what it reported. Silence must be noticed within a few
    /// peer timeouts; a link that comes back may first wait out its redial backoff.
    pub fn await_unreachable(&mut self, i: usize, unreachable: &[u16]) -> (bool, Vec<NodeId>) {
        let want: Vec<NodeId> = unreachable.iter().map(|&n| NodeId(n)).collect();
        let within = if want.is_empty() {
            PATIENCE
        } else {
            PEER_TIMEOUT * 10
        };
        let client = self.client(i);
        wait_until(
            within,
            &format!("node {i} reports {want:?} unreachable"),
            || {
                let read = client
                    .scores(TENANT, "view", vec![1], None)
                    .map_err(|e| e.to_string())?;
                let mut got = read.served.unreachable.clone();
                got.sort();
                if got == want && read.served.degraded != want.is_empty() {
                    Ok((read.served.degraded, got))
                } else {
                    Err(format!("served {:?}", read.served))
                }
            },
        )
    }

    /// Waits until the nodes of `nodes` have quiesced (each has heard every other, and none
    /// holds an event another has not acknowledged), every one answers exactly what the
    /// model says (see `Observed::check`), and all answer the same bits; returns their
    /// answers. Quiescence comes first, so that equal answers from different event sets
    /// (two nodes each holding one of two copies of a write) do not pass for convergence.
    pub fn await_converged(&mut self, model: &Model, at: i64, nodes: &[usize]) -> Vec<Observed> {
        let what = format!("nodes {nodes:?} converge on the model");
        wait_until(PATIENCE, &what, || {
            for &i in nodes {
                let lags = self
                    .client(i)
                    .lag(TENANT)
                    .map_err(|e| format!("node {i}: {e}"))?;
                for lag in lags.value {
                    let live = nodes.contains(&usize::from(lag.peer.0));
                    if live && (lag.events > 0 || !lag.reachable) {
                        return Err(format!("node {i} is ahead of or cannot hear: {lag:?}"));
                    }
                }
            }
            let mut seen: Vec<Observed> = Vec::new();
            for &i in nodes {
                let obs = Observed::read(self.client(i), model, at)
                    .map_err(|e| format!("node {i}: {e}"))?;
                obs.check(model, at).map_err(|e| format!("node {i}: {e}"))?;
                seen.push(obs);
            }
            if seen.windows(2).all(|w| w[0] == w[1]) {
                Ok(seen)
            } else {
                Err(format!("the nodes disagree: {seen:?}"))
            }
        })
    }

    /// The last lines of every node's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "----- node {} ({}) -----\n{}",
                n.id,
                n.log.display(),
                n.log_tail(lines)
            );
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
            // TIDALDB_KEEP=1 keeps the configs, logs and data directories for a post-mortem.
            if std::env::var_os("TIDALDB_KEEP").is_some() {
                let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("dir"));
                eprintln!("kept {}", kept.keep().display());
            }
        }
        // Then the fields drop: clients, nodes (each killed and reaped), proxies, the dir.
    }
}

/// The files of one certificate made by `make_certs` in `dir`.
pub fn cert_files(dir: &Path, name: &str) -> TlsFiles {
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    }
}

/// One node's `node.toml`, in the format documented in `tidaldb_server::config`.
fn config_toml(
    id: u16,
    spec: &Spec,
    peer: SocketAddr,
    client: SocketAddr,
    peers: &[(u16, SocketAddr)],
) -> String {
    let regions: Vec<String> = (0..=PHANTOM).map(|r| format!("\"r{r}\"")).collect();
    let mut t = format!(
        "cluster_id = \"{CLUSTER_ID}\"\nregions = [{}]\nnode_id = {id}\nregion = \"r{id}\"\n\
         role = \"{}\"\ndata_dir = \"n{id}-data\"\ndurability = \"immediate\"\n\n\
         [listen]\npeer = \"{peer}\"\nclient = \"{client}\"\n\n",
        regions.join(", "),
        if id == 0 { "leader" } else { "follower" },
    );
    if spec.tls {
        let _ = writeln!(
            t,
            "[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/n{id}.pem\"\nkey = \"certs/n{id}.key\"\n"
        );
    }
    for (node, addr) in peers {
        let _ = writeln!(
            t,
            "[[peers]]\nnode_id = {node}\nregion = \"r{node}\"\naddr = \"{addr}\"\n"
        );
    }
    if spec.phantom_peer {
        // Port 1 refuses at once: the node keeps redialing, quietly, with backoff.
        let _ = writeln!(
            t,
            "[[peers]]\nnode_id = {PHANTOM}\nregion = \"r{PHANTOM}\"\naddr = \"127.0.0.1:1\"\n"
        );
    }
    t.push_str(
        "[[signals]]\nname = \"view\"\nkind = \"item\"\nhalf_life = \"1h\"\n\
         windows = [\"1h\", \"24h\"]\n\n\
         [[signals]]\nname = \"count\"\nkind = \"item\"\n\n\
         [timing]\nheartbeat = \"20ms\"\npeer_timeout = \"300ms\"\nreplication_timeout = \"5s\"\n",
    );
    if spec.control {
        let mut voters: Vec<u16> = peers.iter().map(|(n, _)| *n).collect();
        voters.push(id);
        voters.retain(|v| spec.voters_below.is_none_or(|below| *v < below));
        voters.sort_unstable();
        let voters: Vec<String> = voters.iter().map(u16::to_string).collect();
        let _ = writeln!(
            t,
            "election_timeout = \"500ms\"\n\n[control]\nvoters = [{}]",
            voters.join(", ")
        );
    }
    t
}

/// Writes "view" events and records them in the model once acknowledged.
pub fn write_views(
    client: &mut Client,
    model: &mut Model,
    items: &[u64],
    weights: &[f64],
    ts: &[i64],
    concern: Concern,
) -> tidaldb::Result<Written> {
    let written = client.write_many(
        TENANT,
        "view",
        items.to_vec(),
        weights.to_vec(),
        Some(ts.to_vec()),
        concern,
    );
    match &written {
        Ok(_) => model.wrote_views(items, weights, ts),
        Err(TidalError::OutcomeUnknown(_)) => model.maybe_wrote_views(items, weights, ts),
        Err(_) => {}
    }
    written
}

/// Writes one unit of the permanent "count" per item, recorded once acknowledged.
pub fn write_counts(
    client: &mut Client,
    model: &mut Model,
    items: &[u64],
    concern: Concern,
) -> tidaldb::Result<Written> {
    let written = client.write_many(
        TENANT,
        "count",
        items.to_vec(),
        vec![1.0; items.len()],
        None,
        concern,
    );
    match &written {
        Ok(_) => model.wrote_counts(items),
        Err(TidalError::OutcomeUnknown(_)) => model.maybe_wrote_counts(items),
        Err(_) => {}
    }
    written
}

/// Hides (or unhides) a pair and records the outcome the test expects.
pub fn set_hidden(
    client: &mut Client,
    model: &mut Model,
    pair: (u64, u64),
    hidden: bool,
) -> tidaldb::Result<Written> {
    let w = client.set_hidden(TENANT, pair.0, pair.1, hidden, None, Concern::Local)?;
    model.hidden.insert(pair, hidden);
    Ok(w)
}

/// Where node `i` keeps its files.
pub fn data_dir(cluster: &Cluster, i: usize) -> PathBuf {
    cluster.dir().join(format!("n{i}-data"))
}

/// Runs `tidaldb admin` against node `i` with the test client's certificate.
pub fn admin_command(cluster: &Cluster, i: usize, action: &[&str]) -> std::process::Output {
    let certs = cluster.dir().join("certs");
    std::process::Command::new(env!("CARGO_BIN_EXE_tidaldb"))
        .arg("admin")
        .args(["--addr", &cluster.addr(i), "--cluster-id", CLUSTER_ID])
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--cert")
        .arg(certs.join("client.pem"))
        .arg("--key")
        .arg(certs.join("client.key"))
        .args(action)
        .output()
        .expect("run tidaldb admin")
}

/// Node `i`'s control-plane status (`Client::control_json`), parsed.
pub fn control_status(cluster: &mut Cluster, i: usize) -> Result<serde_json::Value, String> {
    let json = cluster
        .client(i)
        .control_json()
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&json).map_err(|e| e.to_string())
}

/// Waits until node `i` knows a Raft leader of the control plane, and returns its id.
pub fn await_raft_leader(cluster: &mut Cluster, i: usize) -> u64 {
    wait_until(PATIENCE, "a Raft leader", || {
        control_status(cluster, i)?["raft_leader"]
            .as_u64()
            .ok_or_else(|| "none yet".to_string())
    })
}

/// Registers `tenant` in region r0 only (node 0's) with `tidaldb admin`, and waits until
/// node 0 serves it.
pub fn register_in_r0(cluster: &mut Cluster, tenant: u64) {
    let id = tenant.to_string();
    let registered = admin_command(cluster, 0, &["register", "--tenant", &id, "--region", "r0"]);
    assert!(registered.status.success(), "{registered:?}");
    wait_until(PATIENCE, &format!("tenant {tenant} on node 0"), || {
        let scores = cluster
            .client(0)
            .scores(TenantId(tenant), "count", vec![1], None);
        scores.map_err(|e| e.to_string())
    });
}
