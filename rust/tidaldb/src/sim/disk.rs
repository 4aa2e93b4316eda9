//! A simulated machine's disk as its node uses it: the real WAL (and the hard-state file
//! beside it) over a [`SimFs`]. The simulator persists, commits, snapshots, reads back and
//! recovers through the same code as the runtime; only the file system is simulated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::{CrashDamage, SimFs};
use crate::crdt::HlcTimestamp;
use crate::error::{Result, TidalError};
use crate::event::{Event, VersionVector};
use crate::ledger::Ledger;
use crate::node::{HardState, NodeConfig};
use crate::schema::{NodeId, Schema};
use crate::wal::{Wal, WalConfig, hard_state_corrupt, read_hard_state, write_hard_state};

/// Where the log lives on every simulated disk.
const WAL_DIR: &str = "/data/wal";

/// Segments are kept small in the simulator, so that recovery and reading back touch
/// little more than they need.
const SEGMENT_BYTES: u64 = 4 << 20;

/// What a node recovered from its disk at a restart.
pub(crate) struct Recovered {
    pub ledger: Ledger,
    pub clock: HlcTimestamp,
    pub hard_state: Option<HardState>,
}

#[derive(Debug)]
pub(crate) struct SimDisk {
    pub fs: SimFs,
    /// The open log while the node is up.
    wal: Option<Wal>,
    /// Set by a failed write or sync: memory is ahead of the disk, so the node takes no
    /// more writes until it restarts and recovers, as the runtime does.
    pub failed: Option<String>,
    /// The disk lost data it had reported synced. A real disk would not say so; the
    /// simulated one does, so that the simulator can refuse to restart on it.
    pub lost_acknowledged: bool,
}

fn dir() -> PathBuf {
    PathBuf::from(WAL_DIR)
}

fn wal_config(cfg: &NodeConfig) -> WalConfig {
    WalConfig {
        shard: cfg.shard,
        region: cfg.region,
        segment_bytes: SEGMENT_BYTES,
    }
}

impl SimDisk {
    /// A fresh, empty disk with the node's log open on it.
    pub fn format(seed: u64, cfg: &NodeConfig, schema: &Arc<Schema>) -> Result<SimDisk> {
        let mut disk = SimDisk {
            fs: SimFs::new(seed),
            wal: None,
            failed: None,
            lost_acknowledged: false,
        };
        disk.open(cfg, schema)?;
        Ok(disk)
    }

    /// Recovers the log with the WAL's own recovery, and the hard state beside it. Damage
    /// comes back as `Corruption` and leaves the log closed.
    pub fn open(&mut self, cfg: &NodeConfig, schema: &Arc<Schema>) -> Result<Recovered> {
        if self.lost_acknowledged {
            return Err(TidalError::Corruption {
                path: dir(),
                offset: 0,
                detail: "the disk lost writes its fsync had reported durable; rebuild this \
                         replica from its peers"
                    .into(),
            });
        }
        let fs = Arc::new(self.fs.clone());
        let (wal, ledger, clock, _report) =
            Wal::open_on(fs, &dir(), wal_config(cfg), schema, |ledger, events| {
                ledger.apply_batch(events)
            })?;
        let hard_state = match read_hard_state(&self.fs, &dir())? {
            Some((version, bytes)) => Some(
                HardState::decode(version, &bytes)
                    .map_err(|e| hard_state_corrupt(&dir(), 13, &e))?,
            ),
            None => None,
        };
        self.wal = Some(wal);
        self.failed = None;
        Ok(Recovered {
            ledger,
            clock,
            hard_state,
        })
    }

    fn wal(&mut self) -> Result<&mut Wal> {
        if let Some(why) = &self.failed {
            return Err(TidalError::Unavailable(format!(
                "an earlier WAL write failed ({why}); restart the node to recover from its log"
            )));
        }
        self.wal
            .as_mut()
            .ok_or_else(|| TidalError::Unavailable("the node's log is not open".into()))
    }

    /// Records a failed write: nothing more is written until a restart.
    fn fail(&mut self, e: TidalError) -> TidalError {
        tracing::warn!(error = %e, "simulated WAL write failed; refusing further writes");
        self.failed.get_or_insert_with(|| e.to_string());
        e
    }

    fn or_fail<T>(&mut self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.fail(e))
    }

    pub fn append(&mut self, events: &[Event]) -> Result<()> {
        let wal = self.wal()?;
        for e in events {
            wal.append(e);
        }
        Ok(())
    }

    pub fn has_uncommitted(&self) -> bool {
        self.wal.as_ref().is_some_and(|w| w.uncommitted() > 0)
    }

    /// One write and one sync of everything appended.
    pub fn commit(&mut self) -> Result<()> {
        let r = self.wal().and_then(Wal::commit);
        self.or_fail(r)
    }

    pub fn store_hard_state(&mut self, state: &HardState) -> Result<()> {
        self.wal()?;
        let r = state
            .encode()
            .map_err(TidalError::Unavailable)
            .and_then(|(v, bytes)| write_hard_state(&self.fs, Path::new(WAL_DIR), (v, &bytes)));
        self.or_fail(r)
    }

    /// Snapshots `ledger` (which holds state no log record describes), keeping the
    /// segments that hold events some peer still needs.
    pub fn install_snapshot(
        &mut self,
        ledger: &Ledger,
        clock: HlcTimestamp,
        needed: Option<&VersionVector>,
    ) -> Result<()> {
        let r = self
            .wal()
            .and_then(|w| w.snapshot_retaining(ledger, clock, needed));
        self.or_fail(r).map(drop)
    }

    /// Reads back committed events of `origin` (see [`Wal::read_origin_range`]).
    pub fn read_origin_range(
        &mut self,
        origin: NodeId,
        after: u64,
        upto: u64,
        max: usize,
    ) -> Result<Vec<Event>> {
        self.wal()?.read_origin_range(origin, after, upto, max)
    }

    /// The machine goes down. Without `lose_unsynced` the page cache reaches the disk, so
    /// what the node appended is written out whole. With it, a commit is interrupted by
    /// the power cut between its write and its sync, and the disk tears what was unsynced.
    pub fn crash(&mut self, lose_unsynced: bool) -> CrashDamage {
        if let Some(mut wal) = self.wal.take()
            && self.failed.is_none()
        {
            self.fs.set_full(false);
            self.fs.set_lying(false);
            self.fs.cut_power(lose_unsynced);
            // A failure here is the crash itself; recovery sorts out what reached the disk.
            let _ = wal.commit();
        }
        self.failed = None;
        let damage = self.fs.crash(lose_unsynced);
        if damage.acknowledged_bytes_lost > 0 {
            self.lost_acknowledged = true;
        }
        damage
    }
}
