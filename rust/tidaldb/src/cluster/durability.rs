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

/// The longest sync interval a user may choose: past it a crash could lose more than an
/// hour of acknowledged writes, which no "sync every so often" policy means.
pub const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(3600);

/// The WAL policy of a database called `name`: `"immediate"` or `"batched"`.
/// `sync_interval` replaces `"batched"`'s 10 ms; with `"immediate"` it is refused, since
/// nothing would use it.
pub fn db_durability(name: &str, sync_interval: Option<Duration>) -> Result<Durability> {
    match name {
        "immediate" => no_interval(name, sync_interval).map(|()| Durability::Immediate),
        "batched" => Ok(match sync_interval {
            None => BATCHED,
            Some(interval) => Durability::Batched {
                max_batch: 4096,
                max_delay: checked_interval(interval)?,
            },
        }),
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
/// `sync_interval` replaces `"periodic"`'s 100 ms; with `"immediate"` it is refused.
pub fn replica_sync(name: &str, sync_interval: Option<Duration>) -> Result<ReplicaSync> {
    match name {
        "immediate" => no_interval(name, sync_interval).map(|()| ReplicaSync::Immediate),
        "periodic" => Ok(ReplicaSync::Every(match sync_interval {
            None => PERIODIC_SYNC,
            Some(interval) => checked_interval(interval)?,
        })),
        other => Err(unknown(other, "\"immediate\" or \"periodic\"")),
    }
}

fn no_interval(name: &str, sync_interval: Option<Duration>) -> Result<()> {
    match sync_interval {
        None => Ok(()),
        Some(_) => Err(TidalError::InvalidArgument {
            name: "sync_interval",
            reason: format!(
                "durability {name:?} syncs every write, so it takes no interval; \
                 pass durability=\"batched\" (a Db) or \"periodic\" (a Cluster) with it"
            ),
        }),
    }
}

fn checked_interval(interval: Duration) -> Result<Duration> {
    if interval.is_zero() || interval > MAX_SYNC_INTERVAL {
        return Err(TidalError::InvalidArgument {
            name: "sync_interval",
            reason: format!(
                "{} s is out of range; pass more than 0 and at most {} s",
                interval.as_secs_f64(),
                MAX_SYNC_INTERVAL.as_secs()
            ),
        });
    }
    Ok(interval)
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

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn names_map_to_their_policies() {
        assert_eq!(
            db_durability("immediate", None).unwrap(),
            Durability::Immediate
        );
        assert_eq!(
            db_durability("batched", None).unwrap(),
            Durability::Batched {
                max_batch: 4096,
                max_delay: 10 * MS
            }
        );
        assert_eq!(
            replica_sync("immediate", None).unwrap(),
            ReplicaSync::Immediate
        );
        assert_eq!(
            replica_sync("periodic", None).unwrap(),
            ReplicaSync::Every(100 * MS)
        );
    }

    #[test]
    fn an_interval_replaces_the_default_of_the_policies_that_wait() {
        assert_eq!(
            db_durability("batched", Some(250 * MS)).unwrap(),
            Durability::Batched {
                max_batch: 4096,
                max_delay: 250 * MS
            }
        );
        assert_eq!(
            replica_sync("periodic", Some(MAX_SYNC_INTERVAL)).unwrap(),
            ReplicaSync::Every(MAX_SYNC_INTERVAL)
        );
    }

    #[test]
    fn an_interval_out_of_range_or_without_a_use_is_refused() {
        let refused = |r: Result<()>| {
            matches!(
                r,
                Err(TidalError::InvalidArgument {
                    name: "sync_interval",
                    ..
                })
            )
        };
        let too_long = MAX_SYNC_INTERVAL + MS;
        for interval in [Duration::ZERO, too_long] {
            assert!(refused(db_durability("batched", Some(interval)).map(drop)));
            assert!(refused(replica_sync("periodic", Some(interval)).map(drop)));
        }
        assert!(refused(db_durability("immediate", Some(MS)).map(drop)));
        assert!(refused(replica_sync("immediate", Some(MS)).map(drop)));
    }

    #[test]
    fn other_names_are_refused_naming_the_argument() {
        for bad in ["periodic", "Immediate", ""] {
            assert!(matches!(
                db_durability(bad, None),
                Err(TidalError::InvalidArgument {
                    name: "durability",
                    ..
                })
            ));
        }
        for bad in ["batched", "always"] {
            assert!(matches!(
                replica_sync(bad, None),
                Err(TidalError::InvalidArgument {
                    name: "durability",
                    ..
                })
            ));
        }
    }
}
