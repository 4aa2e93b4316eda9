//! Disk faults in the random schedules, and what they may cost.
//!
//! Every crash moves the crashed origin's writes past what it had confirmed durable into
//! an "uncertain" set: a torn tail may or may not have kept them. A clean restart must
//! then hold at least everything confirmed durable (a torn tail, a full disk: nothing
//! acknowledged as synced is ever lost), and the uncertain writes it holds are issued
//! again. Data lost under a lying fsync, and flipped bits, must be *reported*: the
//! restart fails with `Corruption`, never on a disk without such a fault. Such a replica
//! is replaced, under a new node id, by one rebuilt from its most caught-up peer once
//! every other replica is up; its writes no peer holds are then lost, which no
//! `Replicated(k)` write may be.

use super::*;
use tidaldb::TidalError;
use tidaldb::sim::DiskFault;

/// A crashed replica, as the schedule left it.
#[derive(Debug)]
pub(super) struct Down {
    /// Its own seq it had confirmed durable when it crashed.
    durable: u64,
    /// Its writes past `durable`: maybe on the disk, maybe not.
    uncertain: Vec<(EventId, Issued)>,
}

/// The disk side of a run.
#[derive(Debug, Default)]
pub(super) struct Disks {
    pub down: BTreeMap<NodeId, Down>,
    /// A lying fsync or a flipped bit was injected since the replica last recovered.
    pub suspect: BTreeSet<NodeId>,
    /// A bit was flipped on the (down) disk: its restart must report it.
    pub flipped: BTreeSet<NodeId>,
    /// Restarts that reported `Corruption`: rebuilt from their peers when healing.
    pub corrupted: BTreeSet<NodeId>,
    /// Disks made full: their replicas are restarted when healing.
    pub filled: BTreeSet<NodeId>,
    /// Writes of a replaced replica's origin that no live replica held when it was
    /// replaced: a replica that was down then may still bring them back. Settled once
    /// the cluster has converged.
    pub retired: Vec<(EventId, Issued)>,
}

impl Run {
    fn random_node(&mut self) -> Result<(RegionId, ShardId, NodeId), String> {
        let regions = self.regions();
        let region = regions[self.rng.below(regions.len() as u64) as usize];
        let shard = ShardId(
            self.rng
                .below(u64::from(self.cluster.config().shards_per_region)) as u16,
        );
        let id = self
            .cluster
            .node_id(region, shard)
            .map_err(|e| e.to_string())?;
        Ok((region, shard, id))
    }

    /// One disk fault on a random replica. Lies and flips are kept to one replica at a
    /// time, so that its peers can rebuild it.
    pub(super) fn disk_fault(&mut self) -> Result<(), String> {
        let (_, _, id) = self.random_node()?;
        let one_at_a_time = self.disks.suspect.is_empty() || self.disks.suspect.contains(&id);
        let fault = match self.rng.below(4) {
            0 => DiskFault::Full,
            1 => DiskFault::Freed,
            2 if one_at_a_time && self.cluster.is_up(id) => DiskFault::LyingFsync,
            3 if one_at_a_time && !self.cluster.is_up(id) => DiskFault::FlipBit,
            _ => return Ok(()),
        };
        let done = self
            .cluster
            .inject_disk_fault(id, fault)
            .map_err(|e| e.to_string())?;
        match fault {
            DiskFault::Full => {
                self.disks.filled.insert(id);
                self.coverage.disks_filled += 1;
            }
            DiskFault::LyingFsync => {
                self.disks.suspect.insert(id);
                self.coverage.lying_fsyncs += 1;
            }
            DiskFault::FlipBit if done => {
                self.disks.suspect.insert(id);
                self.disks.flipped.insert(id);
                self.coverage.bits_flipped += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// Crashes a random replica; see the module's doc for what it may lose.
    pub(super) fn crash(&mut self) -> Result<(), String> {
        let (region, shard, _) = self.random_node()?;
        let lose = self.rng.chance(0.5);
        self.crash_at(region, shard, lose)
    }

    fn crash_at(&mut self, region: RegionId, shard: ShardId, lose: bool) -> Result<(), String> {
        let id = self
            .cluster
            .node_id(region, shard)
            .map_err(|e| e.to_string())?;
        let Ok(durable) = self.cluster.handle(id).durable() else {
            return Ok(());
        };
        let durable = durable.get(id);
        self.cluster
            .crash(region, shard, lose)
            .map_err(|e| e.to_string())?;
        self.coverage.crashes += 1;
        let past: Vec<EventId> = (self.issued.keys())
            .filter(|e| e.origin == id && e.seq > durable)
            .copied()
            .collect();
        let uncertain = past
            .into_iter()
            .filter_map(|e| Some((e, self.issued.remove(&e)?)))
            .collect();
        self.disks.down.insert(id, Down { durable, uncertain });
        Ok(())
    }

    /// Restarts a replica and judges what its disk kept.
    pub(super) fn restart(&mut self, region: RegionId, shard: ShardId) -> Result<(), String> {
        let id = self
            .cluster
            .node_id(region, shard)
            .map_err(|e| e.to_string())?;
        match self.cluster.restart(region, shard) {
            Ok(()) => {}
            Err(TidalError::Corruption { .. }) if self.disks.suspect.contains(&id) => {
                self.disks.corrupted.insert(id);
                self.coverage.corruptions_reported += 1;
                return Ok(());
            }
            Err(e @ TidalError::Corruption { .. }) => {
                return Err(format!(
                    "node {} reported corruption without a fault that damages synced data: {e}",
                    id.0
                ));
            }
            Err(_) => return Ok(()),
        }
        if self.disks.flipped.remove(&id) {
            return Err(format!(
                "node {} restarted on a flipped bit unnoticed",
                id.0
            ));
        }
        self.disks.suspect.remove(&id);
        let held = self
            .cluster
            .handle(id)
            .version_vector()
            .map_err(|e| e.to_string())?
            .get(id);
        let Some(down) = self.disks.down.remove(&id) else {
            return Ok(());
        };
        if held < down.durable {
            return Err(format!(
                "node {} recovered its own events through {held}, but had confirmed {} durable",
                id.0, down.durable
            ));
        }
        self.settle(id, held, down.uncertain)
    }

    fn is_in_group(&self, node: NodeId, shard: ShardId) -> bool {
        (self.regions().into_iter()).any(|r| self.cluster.node_id(r, shard).ok() == Some(node))
    }

    /// Reissues the uncertain writes that `id` holds (through `held`); the others are
    /// lost, which a write acknowledged as replicated may not be.
    fn settle(
        &mut self,
        id: NodeId,
        held: u64,
        uncertain: Vec<(EventId, Issued)>,
    ) -> Result<(), String> {
        for (e, w) in uncertain {
            if e.seq <= held {
                self.issued.insert(e, w);
            } else if w.must_survive {
                return Err(format!("node {}: replicated write {e:?} was lost", id.0));
            } else {
                self.coverage.writes_lost += 1;
            }
        }
        Ok(())
    }

    /// Every disk freed and honest, every replica whose disk filled restarted, and every
    /// replica that reported corruption rebuilt from its peers (all up by then).
    pub(super) fn heal_disks(&mut self) -> Result<(), String> {
        let nodes: Vec<(RegionId, ShardId)> = (self.regions().into_iter())
            .flat_map(|r| {
                (0..self.cluster.config().shards_per_region).map(move |s| (r, ShardId(s)))
            })
            .collect();
        for &(r, s) in &nodes {
            let id = self.cluster.node_id(r, s).map_err(|e| e.to_string())?;
            for fault in [DiskFault::Freed, DiskFault::Honest] {
                self.cluster
                    .inject_disk_fault(id, fault)
                    .map_err(|e| e.to_string())?;
            }
            // A replica about to be rebuilt must leave no stale event of its own origin
            // behind in a peer's memory (a run held back by a gap, say), or its new events
            // would meet it under the same ids: its peers restart first.
            let rebuilt_peer =
                (self.disks.corrupted.iter()).any(|c| *c != id && self.is_in_group(*c, s));
            if (self.disks.filled.remove(&id) || rebuilt_peer) && self.cluster.is_up(id) {
                self.crash_at(r, s, false)?;
            }
        }
        for &(r, s) in &nodes {
            let id = self.cluster.node_id(r, s).map_err(|e| e.to_string())?;
            if !self.cluster.is_up(id) && !self.disks.corrupted.contains(&id) {
                self.restart(r, s)?;
            }
        }
        for id in std::mem::take(&mut self.disks.corrupted) {
            let replacement = self
                .cluster
                .rebuild_from_peers(id)
                .map_err(|e| format!("rebuilding node {}: {e}", id.0))?;
            self.coverage.rebuilds += 1;
            self.disks.suspect.remove(&id);
            self.disks.flipped.remove(&id);
            // The replacement starts from the peer that held the most of the old origin's
            // events; no replica holds more of them.
            let held = self
                .cluster
                .handle(replacement)
                .version_vector()
                .map_err(|e| e.to_string())?
                .get(id);
            // Its writes no peer holds are gone: the cost of the reported fault.
            let gone: Vec<EventId> = (self.issued.keys())
                .filter(|e| e.origin == id && e.seq > held)
                .copied()
                .collect();
            let mut uncertain: Vec<(EventId, Issued)> = gone
                .into_iter()
                .filter_map(|e| Some((e, self.issued.remove(&e)?)))
                .collect();
            if let Some(down) = self.disks.down.remove(&id) {
                uncertain.extend(down.uncertain);
            }
            for (e, w) in uncertain {
                if e.seq <= held {
                    self.issued.insert(e, w);
                } else {
                    self.disks.retired.push((e, w));
                }
            }
        }
        Ok(())
    }

    /// A retry matched to `original`, a write of a replaced replica thought maybe lost:
    /// it exists after all.
    pub(super) fn found_retired(&mut self, original: EventId) -> Option<&mut Issued> {
        let i = self
            .disks
            .retired
            .iter()
            .position(|(e, _)| *e == original)?;
        let (e, w) = self.disks.retired.swap_remove(i);
        Some(self.issued.entry(e).or_insert(w))
    }

    /// Once converged: the replaced replicas' writes that some replica brought back are
    /// issued after all; the rest are lost, which no `Replicated(k)` write may be.
    pub(super) fn settle_retired(&mut self) -> Result<(), String> {
        let regions = self.regions();
        for (e, w) in std::mem::take(&mut self.disks.retired) {
            let mut held = 0;
            for s in 0..self.cluster.config().shards_per_region {
                let vv = (self.cluster)
                    .version_vector(regions[0], ShardId(s))
                    .map_err(|err| err.to_string())?;
                held = held.max(vv.get(e.origin));
            }
            if e.seq <= held {
                self.issued.insert(e, w);
            } else if w.must_survive {
                return Err(format!(
                    "replicated write {e:?} of a replaced replica was lost"
                ));
            } else {
                self.coverage.writes_lost += 1;
            }
        }
        Ok(())
    }
}
