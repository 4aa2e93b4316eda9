//! Disk faults on a simulated machine, and rebuilding a replica whose disk lost data.
//!
//! A torn unsynced tail is the disk's own doing at a crash (see [`SimFs::crash`]); the
//! faults here are switched on by the caller: a full disk, a lying fsync, a flipped bit.
//! A disk that lost data it had reported synced, or whose data is damaged, refuses to
//! restart with `Corruption`. [`SimulatedCluster::rebuild_from_peers`] then replaces it,
//! under a new node id, with a replica started from the state of its most caught-up peer:
//! events only it held are gone, which is what such a fault costs.

use super::cluster::SimulatedCluster;
use super::disk::SimDisk;
use super::engine::{Sim, SimNode, disk_seed};
use super::fs::SimFs;
use crate::control::{Command, Replica};
use crate::error::{Result, TidalError};
use crate::node::{ControlCommand, HardState, Input, Node, NodeConfig, NodeRole, PeerAddr};
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

    /// Replaces the replica `id` (which is down, its disk damaged) with a new replica on
    /// the same host, under a new node id, started from the state of the group's most
    /// caught-up live member. Returns the new id.
    ///
    /// A new identity, not the old one reused: events of `id`'s origin that its lost disk
    /// no longer has may still sit in a peer's memory, in its log or in flight. Under the
    /// old id the replica would issue those seqs again with other contents; under a new
    /// one they stay what they were (unique events of a retired origin, converged like
    /// any other), and messages from the old incarnation are dropped as from a stranger.
    /// Its own events that no replica holds are gone: the cost of the fault.
    pub fn rebuild(&mut self, id: NodeId) -> Result<NodeId> {
        let old = match self.nodes.get(id.0 as usize) {
            Some(n) if n.node.is_none() && !n.retired => n.cfg.clone(),
            Some(_) => {
                return Err(TidalError::Unavailable(format!(
                    "node {} is up, or was collected; only a down replica is rebuilt",
                    id.0
                )));
            }
            None => return Err(TidalError::NotFound(format!("no node {}", id.0))),
        };
        let me = self.control.replica(id).ok_or_else(|| {
            TidalError::NotFound(format!("node {} is not a replica of any group", id.0))
        })?;
        let members: Vec<PeerAddr> = (self.control.replicas())
            .filter(|r| r.group() == me.group() && r.node != id)
            .map(|r| PeerAddr::new(r.node, r.region))
            .collect();
        let source = (members.iter())
            .filter_map(|p| self.node(p.node).ok())
            .max_by_key(|n| {
                let vv = n.ledger().version_vector();
                (vv.get(id), vv.sum(), std::cmp::Reverse(n.id()))
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
        let new_id = self.next_node_ids(1)?;
        let cfg = NodeConfig {
            id: new_id,
            role: NodeRole::Follower,
            peers: members.clone(),
            ..old
        };
        let hard_state = HardState {
            term,
            peers: members.clone(),
            stopped_serving: false,
        };
        let mut disk = SimDisk::format(disk_seed(self.seed, new_id), &cfg, &self.schema)?;
        disk.install_snapshot(&ledger, clock, None)?;
        disk.store_hard_state(&hard_state)?;
        let now = self.now;
        // The new replica is added before the old is removed: if the control plane
        // refuses it, nothing has changed.
        self.control.apply(
            now,
            Command::AddReplica {
                replica: Replica { node: new_id, ..me },
                lead: false,
            },
        )?;
        self.control.apply(now, Command::RemoveReplica(id))?;
        self.retire(id);
        self.nodes.push(SimNode::recovered(
            cfg.clone(),
            Node::new(cfg, ledger, clock),
            disk,
            now,
        ));
        for p in &members {
            self.drive(p.node, Input::Control(ControlCommand::RemovePeer(id)));
            self.drive(
                p.node,
                Input::Control(ControlCommand::AddPeer(PeerAddr::new(new_id, me.region))),
            );
        }
        self.stats.replicas_rebuilt += 1;
        self.drive(new_id, Input::Rejoin(Some(hard_state)));
        tracing::info!(
            old = id.0,
            node = new_id.0,
            "replica rebuilt from its peers under a new id"
        );
        Ok(new_id)
    }
}

impl SimulatedCluster {
    /// Injects `fault` on the disk of replica `node`; see [`DiskFault`].
    pub fn inject_disk_fault(&self, node: NodeId, fault: DiskFault) -> Result<bool> {
        self.lock().inject_disk_fault(node, fault)
    }

    /// Replaces replica `node`, which is down (typically because its restart reported
    /// `Corruption`), with a new replica on its host, started from its most caught-up
    /// live peer; see [`Sim::rebuild`]. Returns the new replica's id.
    pub fn rebuild_from_peers(&self, node: NodeId) -> Result<NodeId> {
        self.lock().rebuild(node)
    }
}
