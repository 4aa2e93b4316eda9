//! Disk faults on a simulated machine, and rebuilding a replica whose disk lost data.
//!
//! A torn unsynced tail is the disk's own doing at a crash (see [`SimFs::crash`]); the
//! faults here are switched on by the caller: a full disk, a lying fsync, a flipped bit.
//! A disk that lost data it had reported synced, or whose data is damaged, refuses to
//! restart with `Corruption`. [`SimulatedCluster::rebuild_from_peers`] then wipes it and
//! starts the replica from the state of its most caught-up peer: events only it held are
//! gone, which is what such a fault costs.

use super::cluster::SimulatedCluster;
use super::disk::SimDisk;
use super::engine::{Sim, disk_seed};
use super::fs::SimFs;
use crate::error::{Result, TidalError};
use crate::node::{HardState, Input, Node};
use crate::schema::NodeId;
use crate::wal::snapshot;

/// A fault to switch on (or off) on one machine's disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// Every write and sync fails with ENOSPC until `Freed` or a crash.
    Full,
    Freed,
    /// Every sync reports success and syncs nothing until `Honest` or a crash.
    LyingFsync,
    Honest,
    /// One bit of synced data flips. Only on a machine that is down.
    FlipBit,
}

impl Sim {
    /// Injects `fault` on `id`'s disk. False when there was nothing to do it to (a bit
    /// flip on a disk without synced data).
    pub fn inject_disk_fault(&mut self, id: NodeId, fault: DiskFault) -> Result<bool> {
        let n = self
            .nodes
            .get_mut(id.0 as usize)
            .ok_or_else(|| TidalError::NotFound(format!("no node {}", id.0)))?;
        let fs: &SimFs = &n.disk.fs;
        match fault {
            DiskFault::Full => fs.set_full(true),
            DiskFault::Freed => fs.set_full(false),
            DiskFault::LyingFsync => fs.set_lying(true),
            DiskFault::Honest => fs.set_lying(false),
            DiskFault::FlipBit => {
                if n.node.is_some() {
                    return Err(TidalError::Unavailable(format!(
                        "node {} is up; bits are flipped on a disk at rest",
                        id.0
                    )));
                }
                return Ok(fs.flip_bit().is_some());
            }
        }
        Ok(true)
    }

    /// Wipes the disk of `id` (which is down) and starts it from the state of its most
    /// caught-up live peer, on the peer's term. Its own events that no peer holds are
    /// lost; the highest of its own seqs a peer holds is where it continues, so no seq is
    /// ever issued twice.
    pub fn rebuild(&mut self, id: NodeId) -> Result<()> {
        let (cfg, seed) = match self.nodes.get(id.0 as usize) {
            Some(n) if n.node.is_none() && !n.retired => (n.cfg.clone(), self.seed),
            Some(_) => {
                return Err(TidalError::Unavailable(format!(
                    "node {} is up, or was collected; only a down replica is rebuilt",
                    id.0
                )));
            }
            None => return Err(TidalError::NotFound(format!("no node {}", id.0))),
        };
        let source = (cfg.peers.iter())
            .filter_map(|p| self.nodes.get(p.node.0 as usize)?.node.as_ref())
            .max_by_key(|n| {
                (
                    n.ledger().version_vector().get(id),
                    std::cmp::Reverse(n.id()),
                )
            })
            .ok_or_else(|| {
                TidalError::Unavailable(format!(
                    "node {} has no live peer to be rebuilt from; restart one first",
                    id.0
                ))
            })?;
        let state = snapshot::encode_state(source.ledger(), source.clock())?;
        let term = source.term();
        let (ledger, clock) =
            snapshot::decode_state(&state, snapshot::CURRENT_VERSION, &self.schema)?;
        let hard_state = HardState {
            term,
            peers: cfg.peers.iter().filter(|p| p.node != id).copied().collect(),
        };
        let fresh = seed ^ self.now.as_nanos() as u64;
        let mut disk = SimDisk::format(disk_seed(fresh, id), &cfg, &self.schema)?;
        disk.install_snapshot(&ledger, clock, None)?;
        disk.store_hard_state(&hard_state)?;
        let node = Node::new(cfg, ledger, clock);
        if let Some(n) = self.nodes.get_mut(id.0 as usize) {
            n.disk = disk;
            n.node = Some(node);
        }
        self.stats.replicas_rebuilt += 1;
        self.drive(id, Input::Rejoin(hard_state));
        tracing::info!(node = id.0, "replica rebuilt from its peers");
        Ok(())
    }
}

impl SimulatedCluster {
    /// Injects `fault` on the disk of replica `node`; see [`DiskFault`].
    pub fn inject_disk_fault(&self, node: NodeId, fault: DiskFault) -> Result<bool> {
        self.lock().inject_disk_fault(node, fault)
    }

    /// Wipes the disk of replica `node`, which is down (typically because its restart
    /// reported `Corruption`), and starts it from its most caught-up live peer.
    pub fn rebuild_from_peers(&self, node: NodeId) -> Result<()> {
        self.lock().rebuild(node)
    }
}
