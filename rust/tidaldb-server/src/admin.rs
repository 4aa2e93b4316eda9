//! `tidaldb admin`: an operator's view of the replicated control plane and its commands,
//! sent to a running node over the client protocol.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tidaldb::TidalError;
use tidaldb::cluster::TenantOptions;
use tidaldb::runtime::net::proto::AdminOp;
use tidaldb::runtime::net::{Client, ClientOptions, Security, TlsFiles};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// A node's client address, host:port. Repeat it: the next is tried when one does not
    /// answer.
    #[arg(long = "addr", required = true)]
    addrs: Vec<String>,
    /// The cluster's id, as its configs name it.
    #[arg(long, default_value = "tidaldb")]
    cluster_id: String,
    /// The cluster's CA certificate (with --cert and --key).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// This client's certificate, signed by the cluster's CA.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// This client's private key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// No TLS, for a cluster started with --insecure.
    #[arg(long)]
    insecure: bool,
    #[command(subcommand)]
    action: AdminAction,
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// What the node's voter knows, as JSON: Raft term and leader, and each replica
    /// group's committed leader and term.
    Status,
    /// Region health as the majority of the control plane sees it, as JSON, naming the
    /// regions it cannot reach. Fails when the node has not heard the control-plane
    /// leader lately: it may be the one cut off.
    Health,
    /// The hosted tenants, each with its replica group's committed leader and term.
    Tenants,
    /// Where a rolling upgrade stands: the drained region, if any, and each group's leader.
    UpgradeStatus,
    /// Move the leadership of a region's hosts away, and keep it away until `rejoin`.
    /// Returns once the command is committed.
    Drain { region: String },
    /// Let a drained region's hosts lead again. Returns once committed.
    Rejoin { region: String },
    /// Register a tenant while the cluster runs: a replica on every node of its regions
    /// (of every region without --region), opened by those nodes on the control plane's
    /// order. Returns once committed.
    Register(RegisterArgs),
    /// Let a node vote: one outside [control] voters, or one removed before (both follow
    /// the log as Raft learners). Returns once applied.
    AddVoter { node: u16 },
    /// Stop a node voting (to replace its machine, say); the others go on deciding, and it
    /// follows the log as a learner. Returns once applied.
    RemoveVoter { node: u16 },
    /// Move a tenant's replica to another region without downtime. Returns once the
    /// migration has begun; `status` shows its steps under "migrations".
    Migrate {
        #[arg(long)]
        tenant: u64,
        /// The region it leaves; may be left out when it lives in one region.
        #[arg(long)]
        from: Option<String>,
        /// The region it moves to.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// The tenant's id (not 0, the default tenant's).
    #[arg(long)]
    tenant: u64,
    /// A name for monitoring; "tenant <id>" without it.
    #[arg(long)]
    label: Option<String>,
    /// A region its data may live in; repeat it for several. None: every region.
    #[arg(long = "region")]
    regions: Vec<String>,
    #[arg(long)]
    max_signals_per_sec: Option<u64>,
    #[arg(long)]
    max_entities: Option<u64>,
    #[arg(long)]
    max_storage_bytes: Option<u64>,
}

/// Runs one admin command; the error is what the operator reads.
pub fn admin(args: &AdminArgs) -> Result<(), String> {
    run(args).map_err(|e| e.to_string())
}

fn run(args: &AdminArgs) -> Result<(), TidalError> {
    let security = match (args.insecure, &args.ca, &args.cert, &args.key) {
        (true, None, None, None) => Security::Insecure,
        (false, Some(ca), Some(cert), Some(key)) => Security::from_files(&TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        })?,
        _ => {
            return Err(TidalError::InvalidArgument {
                name: "tls",
                reason: "give --ca, --cert and --key, or --insecure for a cluster without TLS"
                    .into(),
            });
        }
    };
    let mut client = Client::connect(
        &args.addrs,
        ClientOptions::new(args.cluster_id.clone(), security),
    )?;
    match &args.action {
        AdminAction::Status => println!("{}", client.control_json()?),
        AdminAction::Health => println!("{}", majority_view(&client.control_json()?)?),
        AdminAction::Tenants => println!("{}", part(&client.control_json()?, &["groups"])?),
        AdminAction::UpgradeStatus => {
            println!("{}", part(&client.control_json()?, &["drained", "groups"])?)
        }
        AdminAction::Drain { region } => {
            client.admin(AdminOp::Drain {
                region: region.clone(),
            })?;
            println!("drained {region}");
        }
        AdminAction::Rejoin { region } => {
            client.admin(AdminOp::Rejoin {
                region: region.clone(),
            })?;
            println!("{region} rejoined");
        }
        AdminAction::Register(r) => {
            client.admin(AdminOp::RegisterTenant(TenantOptions {
                id: r.tenant,
                label: r.label.clone(),
                regions: (!r.regions.is_empty()).then(|| r.regions.clone()),
                max_signals_per_sec: r.max_signals_per_sec,
                max_entities: r.max_entities,
                max_storage_bytes: r.max_storage_bytes,
            }))?;
            println!("registered tenant {}", r.tenant);
        }
        AdminAction::AddVoter { node } | AdminAction::RemoveVoter { node } => {
            let add = matches!(args.action, AdminAction::AddVoter { .. });
            client.admin(AdminOp::ChangeVoters { node: *node, add })?;
            println!(
                "node {node} {}",
                if add { "votes" } else { "no longer votes" }
            );
        }
        AdminAction::Migrate { tenant, from, to } => {
            client.admin(AdminOp::MigrateTenant {
                tenant: *tenant,
                from: from.clone(),
                to: to.clone(),
            })?;
            println!("tenant {tenant} is migrating to {to}");
        }
    }
    Ok(())
}

/// The `majority` part of a node's control status, or its error.
fn majority_view(status: &str) -> Result<String, TidalError> {
    let status: serde_json::Value =
        serde_json::from_str(status).map_err(|e| TidalError::Unavailable(e.to_string()))?;
    let majority = &status["majority"];
    if let Some(error) = majority["error"].as_str() {
        return Err(TidalError::Unavailable(error.to_owned()));
    }
    serde_json::to_string_pretty(majority).map_err(|e| TidalError::Unavailable(e.to_string()))
}

/// The named fields of a node's control status, as a JSON object.
fn part(status: &str, fields: &[&str]) -> Result<String, TidalError> {
    let status: serde_json::Value =
        serde_json::from_str(status).map_err(|e| TidalError::Unavailable(e.to_string()))?;
    let picked: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|f| ((*f).to_owned(), status[*f].clone()))
        .collect();
    serde_json::to_string_pretty(&picked).map_err(|e| TidalError::Unavailable(e.to_string()))
}
