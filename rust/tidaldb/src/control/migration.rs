//! A tenant migration's record in the control plane: where it moves from and to, and how
//! far it has got. The record is the source of truth a resumed driver continues from.

use serde::Serialize;

use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::NodeId;
use crate::tenancy::ShardAssignment;

/// The steps of a migration, in order. Each is entered once its predecessor is done;
/// re-entering the current one is a no-op, so every step can be retried after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum MigrationState {
    /// Registered; nothing has moved.
    Idle,
    /// The target replica exists and is catching up from the source's log or snapshot.
    PreparingTarget,
    /// A write of the tenant is acknowledged once both source and target hold it, when
    /// both are up; one that is down catches up by reconciliation when it restarts.
    DualWrite,
    /// Reads and writes go to the target; the source is kept until `gc_source`.
    Finalizing,
    /// The source's copy is gone.
    Complete,
}

impl MigrationState {
    pub fn name(self) -> &'static str {
        match self {
            MigrationState::Idle => "idle",
            MigrationState::PreparingTarget => "preparing_target",
            MigrationState::DualWrite => "dual_write",
            MigrationState::Finalizing => "finalizing",
            MigrationState::Complete => "complete",
        }
    }

    fn next(self) -> Option<MigrationState> {
        use MigrationState::*;
        match self {
            Idle => Some(PreparingTarget),
            PreparingTarget => Some(DualWrite),
            DualWrite => Some(Finalizing),
            Finalizing => Some(Complete),
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
                 (the steps are idle, preparing_target, dual_write, finalizing, complete)",
                self.tenant,
                self.state.name(),
                to.name()
            )));
        }
        self.state = to;
        Ok(true)
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
        };
        assert!(m.advance(MigrationState::DualWrite).is_err());
        assert!(m.advance(MigrationState::PreparingTarget).unwrap());
        assert!(!m.advance(MigrationState::PreparingTarget).unwrap());
        assert!(m.advance(MigrationState::Idle).is_err());
        for s in [
            MigrationState::DualWrite,
            MigrationState::Finalizing,
            MigrationState::Complete,
        ] {
            assert!(m.advance(s).unwrap());
        }
        assert!(!m.is_running());
    }
}
