//! A tenant migration in the control plane: its record (where it moves from and to, how
//! far it has got), and the rules that start and advance it. The record is the source of
//! truth a resumed driver continues from.

use serde::{Deserialize, Serialize};

use super::ControlPlane;

use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::{NodeId, Timestamp};
use crate::tenancy::ShardAssignment;

/// The steps of a migration, in order, each named for what has been reached. Each is
/// entered once its predecessor is done; re-entering the current one is a no-op, so
/// every step can be retried after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MigrationState {
    /// Registered; nothing has moved.
    Idle,
    /// The target replica exists and is catching up from the source's log or snapshot.
    TargetCreated,
    /// A write of the tenant is acknowledged once both source and target hold it, when
    /// both are up; one that is down catches up by reconciliation when it restarts.
    DualWrite,
    /// Reads and writes go to the target; the source is kept until `gc_source`.
    Finalized,
    /// The source's copy is gone.
    Complete,
}

impl MigrationState {
    pub fn name(self) -> &'static str {
        match self {
            MigrationState::Idle => "idle",
            MigrationState::TargetCreated => "target_created",
            MigrationState::DualWrite => "dual_write",
            MigrationState::Finalized => "finalized",
            MigrationState::Complete => "complete",
        }
    }

    fn next(self) -> Option<MigrationState> {
        use MigrationState::*;
        match self {
            Idle => Some(TargetCreated),
            TargetCreated => Some(DualWrite),
            DualWrite => Some(Finalized),
            Finalized => Some(Complete),
            Complete => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationRecord {
    pub tenant: TenantId,
    pub source: ShardAssignment,
    pub target: ShardAssignment,
    pub state: MigrationState,
    /// The tenant's replica on the target, once created.
    pub target_node: Option<NodeId>,
    /// When reads and writes switched to the target (virtual or wall ns).
    pub finalized_at_ns: Option<i64>,
    /// 1 for the tenant's first migration, 2 for the next: tells a handle on a finished
    /// migration from one on the migration that replaced it.
    pub number: u64,
}

impl MigrationRecord {
    pub fn is_running(&self) -> bool {
        self.state != MigrationState::Complete
    }

    /// Moves to `to` if it is the current state (a retry) or the next one.
    pub(super) fn advance(&mut self, to: MigrationState) -> Result<bool> {
        if to == self.state {
            return Ok(false);
        }
        if self.state.next() != Some(to) {
            return Err(TidalError::Conflict(format!(
                "the migration of tenant {} is in state {}; it cannot go to {} from there \
                 (the steps are idle, target_created, dual_write, finalized, complete)",
                self.tenant,
                self.state.name(),
                to.name()
            )));
        }
        self.state = to;
        Ok(true)
    }
}

impl ControlPlane {
    /// True for the source of a finalized migration: it is about to be collected, so
    /// nothing is routed to it and it is never elected.
    pub fn is_retiring(&self, node: NodeId) -> bool {
        self.replica(node).is_some_and(|r| {
            self.migration(r.tenant)
                .is_some_and(|m| m.state == MigrationState::Finalized && m.source == r.host())
        })
    }

    /// True for the target of a migration not yet finalized: it may still be catching up,
    /// so it is not elected, and serves only when no other replica of its group can.
    pub fn is_catching_up(&self, node: NodeId) -> bool {
        self.replica(node).is_some_and(|r| {
            self.migration(r.tenant)
                .is_some_and(|m| m.state < MigrationState::Finalized && m.target_node == Some(node))
        })
    }

    /// A replica an election must pass over.
    pub(super) fn is_sidelined(&self, node: NodeId) -> bool {
        self.is_retiring(node) || self.is_catching_up(node)
    }

    pub(super) fn begin_migration(
        &mut self,
        tenant: TenantId,
        source: ShardAssignment,
        target: ShardAssignment,
    ) -> Result<()> {
        if let Some(m) = self.migrations.get(&tenant).filter(|m| m.is_running()) {
            return Err(TidalError::Conflict(format!(
                "tenant {tenant} is already migrating (state {}); finish it first",
                m.state.name()
            )));
        }
        let placement = self.router.placement(tenant)?;
        if source.shard_id != target.shard_id {
            return Err(TidalError::InvalidArgument {
                name: "target",
                reason: format!(
                    "a migration moves tenant {tenant}'s replica of shard {} to another region; \
                     moving it to shard {} would need a split of the key space, which is not \
                     supported",
                    source.shard_id.0, target.shard_id.0
                ),
            });
        }
        if source == target {
            return Err(TidalError::InvalidArgument {
                name: "target",
                reason: format!(
                    "tenant {tenant} would migrate to the shard it is on (shard {} in region {})",
                    source.shard_id.0, source.region_id.0
                ),
            });
        }
        if !placement.contains(&source) {
            return Err(TidalError::InvalidArgument {
                name: "source",
                reason: format!(
                    "tenant {tenant} has no replica on shard {} in region {}",
                    source.shard_id.0, source.region_id.0
                ),
            });
        }
        if placement.contains(&target) || !self.router.topology().contains(target) {
            return Err(TidalError::InvalidArgument {
                name: "target",
                reason: format!(
                    "shard {} in region {} is not a free host for tenant {tenant}",
                    target.shard_id.0, target.region_id.0
                ),
            });
        }
        let number = self.migrations.get(&tenant).map_or(1, |m| m.number + 1);
        self.migrations.insert(
            tenant,
            MigrationRecord {
                tenant,
                source,
                target,
                state: MigrationState::Idle,
                target_node: None,
                finalized_at_ns: None,
                number,
            },
        );
        Ok(())
    }

    pub(super) fn advance_migration(
        &mut self,
        now: Timestamp,
        tenant: TenantId,
        to: MigrationState,
        target_node: Option<NodeId>,
    ) -> Result<()> {
        let (target_host, named) = self
            .migrations
            .get(&tenant)
            .map(|m| (m.target, m.target_node))
            .ok_or_else(|| TidalError::NotFound(format!("tenant {tenant} has no migration")))?;
        if let Some(node) = target_node {
            // The target is named once, when preparation starts, and must be this tenant's
            // replica on the target host.
            let fits = self.members.iter().any(|x| {
                x.replica.node == node
                    && x.replica.tenant == tenant
                    && x.replica.host() == target_host
            });
            if to != MigrationState::TargetCreated || named.is_some() || !fits {
                return Err(TidalError::InvalidArgument {
                    name: "target_node",
                    reason: format!(
                        "node {} cannot become tenant {tenant}'s migration target now",
                        node.0
                    ),
                });
            }
        }
        let m = self
            .migrations
            .get_mut(&tenant)
            .ok_or_else(|| TidalError::NotFound(format!("tenant {tenant} has no migration")))?;
        let moved = m.advance(to)?;
        if target_node.is_some() {
            m.target_node = target_node;
        }
        if !(moved && to == MigrationState::Finalized) {
            return Ok(());
        }
        m.finalized_at_ns = Some(now.as_nanos());
        let (source, target, target_node) = (m.source, m.target, m.target_node);
        self.router.relocate(tenant, source, target)?;
        // The target takes over the source's leadership.
        if let Some(src) = self.replica_on(tenant, source).map(|r| r.node)
            && let Some(dst) = target_node
            && let Some(g) = self.groups.iter_mut().find(|g| g.leader == Some(src))
        {
            g.term += 1;
            g.leader = Some(dst);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{RegionId, ShardId};

    #[test]
    fn steps_go_forward_one_at_a_time_and_repeat_harmlessly() {
        let a = ShardAssignment {
            shard_id: ShardId(0),
            region_id: RegionId(0),
        };
        let mut m = MigrationRecord {
            tenant: TenantId(1),
            source: a,
            target: a,
            state: MigrationState::Idle,
            target_node: None,
            finalized_at_ns: None,
            number: 1,
        };
        assert!(m.advance(MigrationState::DualWrite).is_err());
        assert!(m.advance(MigrationState::TargetCreated).unwrap());
        assert!(!m.advance(MigrationState::TargetCreated).unwrap());
        assert!(m.advance(MigrationState::Idle).is_err());
        for s in [
            MigrationState::DualWrite,
            MigrationState::Finalized,
            MigrationState::Complete,
        ] {
            assert!(m.advance(s).unwrap());
        }
        assert!(!m.is_running());
    }
}
