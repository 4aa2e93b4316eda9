//! Where a tenant's replicas live: registering a tenant with its replica group, and the
//! rule every new replica must satisfy.

use super::{ControlPlane, Replica};

use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::NodeId;
use crate::tenancy::TenantConfig;

impl ControlPlane {
    /// A replica may join only its registered tenant, on a host of the tenant's placement
    /// or on the target of the tenant's running migration.
    pub(super) fn check_new_replica(&self, replica: &Replica) -> Result<()> {
        if self.members.iter().any(|m| m.replica.node == replica.node) {
            return Err(TidalError::Conflict(format!(
                "node {} is already a replica",
                replica.node.0
            )));
        }
        let host = replica.host();
        let placed = self.router.placement(replica.tenant)?.contains(&host);
        let migrating_there = self
            .migration(replica.tenant)
            .is_some_and(|m| m.is_running() && m.target == host);
        if !(placed || migrating_there) {
            return Err(TidalError::InvalidArgument {
                name: "replica",
                reason: format!(
                    "tenant {} is not placed on shard {} in region {}, and is not migrating there",
                    replica.tenant, host.shard_id.0, host.region_id.0
                ),
            });
        }
        Ok(())
    }

    /// Registers `tenant` with `replicas` as its group, `lead` leading: the starting
    /// placement of a tenant that a cluster's config names, which every voter builds
    /// alike before any command.
    pub fn place_tenant(
        &mut self,
        tenant: TenantId,
        replicas: impl IntoIterator<Item = Replica>,
        lead: Option<NodeId>,
    ) -> Result<()> {
        self.router
            .register_tenant(TenantConfig::new(tenant, format!("t{}", tenant.0)))?;
        for replica in replicas {
            self.check_new_replica(&replica)?;
            self.add_replica(replica, Some(replica.node) == lead);
        }
        Ok(())
    }

    /// Registers `config`'s tenant with `replicas` as its group, or refuses and changes
    /// nothing: a tenant registered without its replicas would be placed nowhere.
    pub(super) fn place_tenant_whole(
        &mut self,
        config: &TenantConfig,
        replicas: &[Replica],
        lead: Option<NodeId>,
    ) -> Result<()> {
        let tenant = config.tenant_id;
        if replicas.is_empty() {
            return Err(TidalError::InvalidTenantConfig {
                tenant: tenant.0,
                reason: "it would have no replica: no node is in its regions".into(),
            });
        }
        if let Some(r) = replicas.iter().find(|r| r.tenant != tenant) {
            return Err(TidalError::InvalidArgument {
                name: "replicas",
                reason: format!("replica {} belongs to tenant {}", r.node.0, r.tenant),
            });
        }
        if lead.is_some_and(|l| !replicas.iter().any(|r| r.node == l)) {
            return Err(TidalError::InvalidArgument {
                name: "lead",
                reason: "the first leader must be one of the tenant's replicas".into(),
            });
        }
        // Tried on a copy, so that a replica refused halfway leaves no trace.
        let mut trial = self.clone();
        trial.router.register_tenant(config.clone())?;
        for replica in replicas {
            trial.check_new_replica(replica)?;
            trial.add_replica(*replica, Some(replica.node) == lead);
        }
        *self = trial;
        debug_assert!(self.router.is_registered(tenant));
        Ok(())
    }
}
