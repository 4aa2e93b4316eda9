//! `node.toml`: what one server is, what it hosts and whom it talks to. Every node of a
//! cluster lists the same `cluster_id`, `regions` and `signals`; the rest is its own.
//!
//! ```toml
//! cluster_id = "demo"
//! regions = ["us-east", "eu-west", "ap-south"]   # order fixes each region's id
//! node_id = 1
//! region = "us-east"
//! role = "leader"            # or "follower" (default); every role takes writes
//! data_dir = "data/n1"
//! durability = "immediate"   # or "batched"
//!
//! [listen]
//! peer = "127.0.0.1:7001"    # replication
//! client = "127.0.0.1:7101"  # the client protocol
//! http = "127.0.0.1:7201"    # /health and /metrics (optional)
//!
//! [tls]                      # omit only with `tidaldb serve --insecure`
//! ca = "certs/ca.pem"
//! cert = "certs/n1.pem"
//! key = "certs/n1.key"
//!
//! [[peers]]
//! node_id = 2
//! region = "eu-west"
//! addr = "127.0.0.1:7002"
//!
//! [[signals]]
//! name = "view"
//! kind = "item"              # item, user or creator
//! half_life = "1d"           # or lifetime = "7d" (linear); neither is permanent
//! windows = ["1h", "24h"]
//!
//! [[tenants]]
//! id = 7
//! label = "acme"
//! max_signals_per_sec = 1000
//! max_entities = 100000
//!
//! [control]                  # optional: the replicated control plane
//! voters = [1, 2, 3]         # node ids whose processes vote (Raft); odd, at most 7
//!
//! [timing]                   # all optional
//! heartbeat = "50ms"
//! peer_timeout = "500ms"
//! replication_timeout = "5s"
//! election_timeout = "500ms" # a silent leader is replaced after this (with [control])
//! ```
//!
//! With `[control]`, leadership is the control plane's to decide: the lowest node id leads
//! at first, and a leader that falls silent (crashed, or cut off from the voters'
//! majority) is replaced by the most caught-up replica the majority hears. `role` then
//! only says what a node is before its first order. Every node must list the same voters,
//! and node ids must stay below 64.
//!
//! Relative paths are relative to the config file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tidaldb::cluster::{RegionNames, db_durability};
use tidaldb::event::TenantId;
use tidaldb::node::NodeRole;
use tidaldb::runtime::net::{PeerSpec, Security, ServerSpec, TlsFiles};
use tidaldb::schema::{
    DecayLength, EntityKind, NodeId, Schema, ShardId, Window, decay_of, parse_duration,
};
use tidaldb::tenancy::TenantConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeToml {
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    pub regions: Vec<String>,
    pub node_id: u16,
    pub region: String,
    #[serde(default)]
    pub shard: u16,
    #[serde(default)]
    pub role: Option<String>,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub durability: Option<String>,
    pub listen: Listen,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub peers: Vec<PeerToml>,
    pub signals: Vec<SignalToml>,
    #[serde(default)]
    pub tenants: Vec<TenantToml>,
    #[serde(default)]
    pub control: Option<ControlToml>,
    #[serde(default)]
    pub timing: TimingToml,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlToml {
    pub voters: Vec<u16>,
}

/// What clients assume when they name no cluster.
fn default_cluster_id() -> String {
    "tidaldb".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub peer: SocketAddr,
    pub client: SocketAddr,
    #[serde(default)]
    pub http: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerToml {
    pub node_id: u16,
    pub region: String,
    pub addr: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalToml {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub half_life: Option<String>,
    #[serde(default)]
    pub lifetime: Option<String>,
    #[serde(default)]
    pub windows: Vec<String>,
    #[serde(default)]
    pub velocity: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantToml {
    pub id: u64,
    #[serde(default)]
    pub label: Option<String>,
    pub max_signals_per_sec: Option<u32>,
    pub max_entities: Option<u64>,
    pub max_storage_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingToml {
    pub heartbeat: Option<String>,
    pub peer_timeout: Option<String>,
    pub replication_timeout: Option<String>,
    pub election_timeout: Option<String>,
}

/// A loaded config: the server's spec, and the monitoring address.
#[derive(Debug)]
pub struct Loaded {
    pub spec: ServerSpec,
    pub http: Option<SocketAddr>,
    pub regions: RegionNames,
}

/// Reads and checks `path`. `insecure` must be set for a config without `[tls]`, and
/// refuses one with it, so that the mode is always chosen on purpose.
pub fn load(path: &Path, insecure: bool) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let toml: NodeToml = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    build(toml, base, insecure).map_err(|e| format!("{}: {e}", path.display()))
}

fn build(t: NodeToml, base: &Path, insecure: bool) -> Result<Loaded, String> {
    let regions = RegionNames::new(t.regions.clone()).map_err(|e| e.to_string())?;
    let region = regions.id(&t.region).map_err(|e| e.to_string())?;
    let security = match (&t.tls, insecure) {
        (Some(_), true) => {
            return Err("--insecure was given, but the config has a [tls] section; \
                        remove one of them"
                .into());
        }
        (None, false) => {
            return Err(
                "no [tls] section: give ca, cert and key files, or run with \
                        --insecure on a trusted machine"
                    .into(),
            );
        }
        (None, true) => Security::Insecure,
        (Some(files), false) => {
            let files = TlsFiles {
                ca: base.join(&files.ca),
                cert: base.join(&files.cert),
                key: base.join(&files.key),
            };
            Security::from_files(&files).map_err(|e| e.to_string())?
        }
    };
    let role = match t.role.as_deref() {
        None | Some("follower") => NodeRole::Follower,
        Some("leader") => NodeRole::Leader,
        Some(other) => return Err(format!("role {other:?}: use \"leader\" or \"follower\"")),
    };
    let mut peers = Vec::new();
    for p in &t.peers {
        if p.node_id == t.node_id {
            return Err(format!("node {} lists itself as a peer", p.node_id));
        }
        peers.push(PeerSpec {
            node: NodeId(p.node_id),
            region: regions.id(&p.region).map_err(|e| e.to_string())?,
            addr: p.addr.clone(),
        });
    }
    let durability = db_durability(t.durability.as_deref().unwrap_or("immediate"), None)
        .map_err(|e| e.to_string())?;
    let timing = |text: &Option<String>, what: &'static str, default: Duration| match text {
        Some(s) => parse_duration(what, s).map_err(|e| e.to_string()),
        None => Ok(default),
    };
    let spec = ServerSpec {
        cluster_id: t.cluster_id.clone(),
        node: NodeId(t.node_id),
        region,
        region_names: t.regions.clone(),
        shard: ShardId(t.shard),
        role,
        peers,
        listen_peer: t.listen.peer,
        listen_client: t.listen.client,
        data_dir: base.join(&t.data_dir),
        durability,
        schema: schema(&t.signals)?,
        tenants: tenants(&t.tenants)?,
        security,
        heartbeat_interval: timing(&t.timing.heartbeat, "heartbeat", Duration::from_millis(50))?,
        peer_timeout: timing(
            &t.timing.peer_timeout,
            "peer_timeout",
            Duration::from_millis(500),
        )?,
        replication_timeout: timing(
            &t.timing.replication_timeout,
            "replication_timeout",
            Duration::from_secs(5),
        )?,
        control_voters: control_voters(&t)?,
        election_timeout: timing(
            &t.timing.election_timeout,
            "election_timeout",
            Duration::from_millis(500),
        )?,
    };
    Ok(Loaded {
        spec,
        http: t.listen.http,
        regions,
    })
}

/// The voters of `[control]`, checked: known nodes, no repeats, an odd count up to 7
/// (an even count adds a voter that can fail without adding a failure the group survives).
fn control_voters(t: &NodeToml) -> Result<Vec<NodeId>, String> {
    let Some(control) = &t.control else {
        return Ok(Vec::new());
    };
    let mut known: Vec<u16> = t.peers.iter().map(|p| p.node_id).collect();
    known.push(t.node_id);
    let mut voters = control.voters.clone();
    voters.sort_unstable();
    voters.dedup();
    if voters.len() != control.voters.len() {
        return Err("[control] voters lists a node twice".into());
    }
    if voters.is_empty() || voters.len() % 2 == 0 || voters.len() > 7 {
        return Err(format!(
            "[control] voters: give an odd number of voters, 1 to 7 (got {})",
            voters.len()
        ));
    }
    if let Some(v) = voters.iter().find(|v| !known.contains(v)) {
        return Err(format!(
            "[control] voter {v} is neither this node nor one of its [[peers]]"
        ));
    }
    if let Some(n) = known.iter().find(|&&n| n >= 64) {
        return Err(format!(
            "with [control], node ids stay below 64; node {n} does not"
        ));
    }
    Ok(voters.into_iter().map(NodeId).collect())
}

fn schema(signals: &[SignalToml]) -> Result<Schema, String> {
    if signals.is_empty() {
        return Err("declare at least one [[signals]]".into());
    }
    let mut b = Schema::builder();
    for s in signals {
        let kind = EntityKind::parse(&s.kind).map_err(|e| e.to_string())?;
        let decay = decay_of(
            &s.name,
            s.half_life.as_deref().map(DecayLength::Text),
            s.lifetime.as_deref().map(DecayLength::Text),
        )
        .map_err(|e| e.to_string())?;
        let windows = s
            .windows
            .iter()
            .map(|w| Window::parse(w))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut sig = b.signal(&s.name, kind, decay);
        if !windows.is_empty() {
            sig = sig.windows(&windows);
        }
        b = sig.velocity(s.velocity).add();
    }
    b.build().map_err(|e| e.to_string())
}

fn tenants(list: &[TenantToml]) -> Result<Vec<TenantConfig>, String> {
    let mut out: Vec<TenantConfig> = Vec::new();
    for t in list {
        if t.id == 0 {
            return Err("tenant 0 is the default tenant and is always hosted; \
                        give other tenants ids from 1"
                .into());
        }
        if out.iter().any(|o| o.tenant_id == TenantId(t.id)) {
            return Err(format!("tenant {} is listed twice", t.id));
        }
        let mut c = TenantConfig::new(
            TenantId(t.id),
            t.label
                .clone()
                .unwrap_or_else(|| format!("tenant-{}", t.id)),
        );
        c.max_signals_per_sec = t.max_signals_per_sec;
        c.max_entities = t.max_entities;
        c.max_storage_bytes = t.max_storage_bytes;
        out.push(c);
    }
    Ok(out)
}
