//! The operator's side of a process's control host: a handle that turns admin requests
//! into proposals for the voter, checked first so that bad input commits nothing, and
//! waits for their outcome.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::control_status::ControlStatus;
use super::placement::regions_named;
use super::proto::AdminOp;
use crate::cluster::RegionNames;
use crate::control::Command;
use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::{NodeId, ShardId};
use crate::tenancy::{ShardAssignment, TenantConfig};

/// How long an operator's command may take to commit before the caller is told so.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// An operator's command on its way to the voter, with where its outcome goes.
pub(super) type AdminRequest = (Proposal, oneshot::Sender<Result<()>>);

/// What an operator asked for: a command, or a tenant to place, which the voter turns
/// into a command from its plane (the placement depends on the slots taken).
#[derive(Debug)]
pub(super) enum Proposal {
    Ready(Command),
    Register(TenantConfig),
    /// One voter added or removed: a Raft configuration change, not a command.
    Voters {
        node: NodeId,
        add: bool,
    },
    /// A migration whose source, when not named, is the tenant's one host.
    Migrate {
        tenant: TenantId,
        from: Option<ShardAssignment>,
        to: ShardAssignment,
    },
}

/// A running control host; dropping it does not stop it, the server's stop signal does.
#[derive(Clone, Debug)]
pub struct ControlHost {
    status: Arc<Mutex<ControlStatus>>,
    admin: mpsc::Sender<AdminRequest>,
    shard: ShardId,
    region_names: Vec<String>,
}

impl ControlHost {
    pub(super) fn new(
        status: Arc<Mutex<ControlStatus>>,
        admin: mpsc::Sender<AdminRequest>,
        shard: ShardId,
        region_names: Vec<String>,
    ) -> Self {
        ControlHost {
            status,
            admin,
            shard,
            region_names,
        }
    }

    pub fn status(&self) -> ControlStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Proposes an operator's command and waits until it is committed and applied here.
    /// Bad input is refused before anything is proposed.
    pub async fn admin(&self, op: AdminOp) -> Result<()> {
        let command = match op {
            AdminOp::Drain { region } => Proposal::Ready(Command::Drain(self.host_in(&region)?)),
            AdminOp::Rejoin { region } => Proposal::Ready(Command::Rejoin(self.host_in(&region)?)),
            AdminOp::RegisterTenant(options) => {
                let names = RegionNames::new(self.region_names.clone())?;
                let config = options.config(&names)?;
                config.validate()?;
                Proposal::Register(config)
            }
            AdminOp::ChangeVoters { node, add } => Proposal::Voters {
                node: NodeId(node),
                add,
            },
            AdminOp::MigrateTenant { tenant, from, to } => Proposal::Migrate {
                tenant: TenantId(tenant),
                from: from.map(|r| self.host_in(&r)).transpose()?,
                to: self.host_in(&to)?,
            },
        };
        let (reply, outcome) = oneshot::channel();
        self.admin
            .send((command, reply))
            .await
            .map_err(|_| TidalError::Unavailable("the control host has stopped".into()))?;
        match tokio::time::timeout(ADMIN_TIMEOUT, outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(TidalError::Unavailable(
                "the control host stopped before the command committed".into(),
            )),
            Err(_) => Err(TidalError::Timeout(format!(
                "the control plane did not commit the command within {} s (is a majority \
                 of voters reachable?); it may still commit: read the control status \
                 before sending it again",
                ADMIN_TIMEOUT.as_secs()
            ))),
        }
    }

    fn host_in(&self, region: &str) -> Result<ShardAssignment> {
        let [region_id] = regions_named(&self.region_names, &[region.to_owned()])?[..] else {
            return Err(TidalError::Unavailable(
                "one region name gave several ids".into(),
            ));
        };
        Ok(ShardAssignment {
            shard_id: self.shard,
            region_id,
        })
    }
}
