//! Durability presets by name, as users choose them: a single database's WAL policy
//! (`"immediate"`, `"batched"`) and a cluster's replica sync (`"immediate"`, `"periodic"`).

use std::time::Duration;

use crate::error::{Result, TidalError};
use crate::wal::Durability;

/// What `"batched"` means for a database: sync every 4096 writes or 10 ms, whichever is
/// first.
pub const BATCHED: Durability = Durability::Batched {
    max_batch: 4096,
    max_delay: Duration::from_millis(10),
};

/// What `"periodic"` means for a cluster: every replica syncs every 100 ms of its clock.
pub const PERIODIC_SYNC: Duration = Duration::from_millis(100);

/// The WAL policy of a database called `name`: `"immediate"` or `"batched"`.
pub fn db_durability(name: &str) -> Result<Durability> {
    match name {
        "immediate" => Ok(Durability::Immediate),
        "batched" => Ok(BATCHED),
        other => Err(unknown(other, "\"immediate\" or \"batched\"")),
    }
}

/// When a cluster's replicas sync their logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaSync {
    /// Before each write is acknowledged.
    Immediate,
    /// Every so often; a crash loses what was written since the last sync.
    Every(Duration),
}

/// The replica sync of a cluster called `name`: `"immediate"` or `"periodic"`.
pub fn replica_sync(name: &str) -> Result<ReplicaSync> {
    match name {
        "immediate" => Ok(ReplicaSync::Immediate),
        "periodic" => Ok(ReplicaSync::Every(PERIODIC_SYNC)),
        other => Err(unknown(other, "\"immediate\" or \"periodic\"")),
    }
}

fn unknown(name: &str, choices: &str) -> TidalError {
    TidalError::InvalidArgument {
        name: "durability",
        reason: format!("unknown durability {name:?}; use {choices}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_their_policies() {
        assert_eq!(db_durability("immediate").unwrap(), Durability::Immediate);
        assert_eq!(
            db_durability("batched").unwrap(),
            Durability::Batched {
                max_batch: 4096,
                max_delay: Duration::from_millis(10)
            }
        );
        assert_eq!(replica_sync("immediate").unwrap(), ReplicaSync::Immediate);
        assert_eq!(
            replica_sync("periodic").unwrap(),
            ReplicaSync::Every(Duration::from_millis(100))
        );
    }

    #[test]
    fn other_names_are_refused_naming_the_argument() {
        for bad in ["periodic", "Immediate", ""] {
            assert!(matches!(
                db_durability(bad),
                Err(TidalError::InvalidArgument {
                    name: "durability",
                    ..
                })
            ));
        }
        for bad in ["batched", "always"] {
            assert!(matches!(
                replica_sync(bad),
                Err(TidalError::InvalidArgument {
                    name: "durability",
                    ..
                })
            ));
        }
    }
}
