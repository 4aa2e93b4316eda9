//! Hosts and their replicas: leaders, crashes and restarts, convergence.

use std::time::Duration;

use super::routing::{check_region, default_replica_at, replicas_on};
use super::{Cluster, ClusterDriver, NodeRef};
use crate::control::{ControlPlane, GroupId};
use crate::error::{Result, TidalError};
use crate::event::VersionVector;
use crate::interrupt;
use crate::node::{Input, Node};
use crate::schema::{EntityId, NodeId, RegionId, ShardId, Timestamp};

impl<D: ClusterDriver> Cluster<D> {
    /// The driver's time now.
    pub fn now(&self) -> Timestamp {
        self.driver.view(|v| v.now())
    }

    /// Runs `f` on the control plane as it is now, without copying it.
    pub fn with_control<T>(&self, f: impl FnOnce(&ControlPlane, Timestamp) -> T) -> T {
        self.driver.view(|v| f(v.control(), v.now()))
    }

    /// A copy of the control plane as it is now.
    pub fn control_plane(&self) -> ControlPlane {
        self.driver.view(|v| v.control().clone())
    }

    /// Runs `f` on a replica that is up.
    pub fn with_node<T>(
        &self,
        id: NodeId,
        f: impl FnOnce(&Node, Timestamp) -> Result<T>,
    ) -> Result<T> {
        self.driver.view(|v| f(v.node(id)?, v.now()))
    }

    /// The default tenant's replica of `shard` in `region`.
    pub fn node_id(&self, region: RegionId, shard: ShardId) -> Result<NodeId> {
        check_region(self.layout(), region)?;
        self.driver.view(|v| default_replica_at(v, region, shard))
    }

    /// The replica in `region` of the shard that holds `entity`.
    pub fn node_for(&self, region: RegionId, entity: EntityId) -> Result<NodeId> {
        self.node_id(region, self.shard_of(entity))
    }

    /// A handle on one replica.
    pub fn handle(&self, id: NodeId) -> NodeRef<D>
    where
        D: Clone,
    {
        NodeRef::new(self.clone(), id)
    }

    /// A handle on the replica in `region` of the configured leader shard.
    pub fn node(&self, region: RegionId) -> Result<NodeRef<D>>
    where
        D: Clone,
    {
        Ok(self.handle(self.node_id(region, self.layout().leader_shard)?))
    }

    /// The current leader of `shard`, as the control plane sees it.
    pub fn leader_of(&self, shard: ShardId) -> Result<NodeId> {
        self.driver.view(|v| {
            v.control()
                .leader_of(shard)
                .filter(|n| v.node(*n).is_ok())
                .ok_or_else(|| {
                    TidalError::Unavailable(format!(
                        "shard {} has no live leader; wait for the control plane to promote one",
                        shard.0
                    ))
                })
        })
    }

    /// A handle on the leader of the configured leader shard.
    pub fn leader(&self) -> Result<NodeRef<D>>
    where
        D: Clone,
    {
        Ok(self.handle(self.leader_of(self.layout().leader_shard)?))
    }

    /// A replica in `region` that is not its shard's leader, if any.
    pub fn follower_in(&self, region: RegionId) -> Option<NodeRef<D>>
    where
        D: Clone,
    {
        let shard = self.layout().leader_shard;
        let id = self.node_id(region, shard).ok()?;
        let leads = self
            .driver
            .view(|v| v.control().leader_of(shard) == Some(id));
        (!leads).then(|| self.handle(id))
    }

    /// True while every shard has a leader that is up and heard within the election timeout.
    pub fn has_leader(&self) -> bool {
        let shards = self.layout().shards_per_region;
        self.driver.view(|v| {
            (0..shards).all(|s| {
                v.control().has_live_leader(ShardId(s), v.now())
                    && v.control()
                        .leader_of(ShardId(s))
                        .is_some_and(|n| v.node(n).is_ok())
            })
        })
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.driver.is_up(id)
    }

    /// Crashes the host of `shard` in `region`: every tenant's replica on it. Returns the
    /// events their storage lost.
    pub fn crash(&self, region: RegionId, shard: ShardId, lose_unsynced: bool) -> Result<usize> {
        let _membership = self.membership_change();
        let id = self.node_id(region, shard)?;
        let mut lost = self.driver.crash_node(id, lose_unsynced)?;
        for other in self.driver.view(|v| replicas_on(v, region, shard)) {
            if other != id && self.driver.is_up(other) {
                lost += self.driver.crash_node(other, lose_unsynced)?;
            }
        }
        Ok(lost)
    }

    /// Restarts the host of `shard` in `region`: every tenant's replica on it. Each
    /// rejoins from its storage, then learns the membership changes it missed.
    pub fn restart(&self, region: RegionId, shard: ShardId) -> Result<()> {
        let _membership = self.membership_change();
        let id = self.node_id(region, shard)?;
        if self.driver.is_up(id) {
            return Err(TidalError::Conflict(format!(
                "the host of shard {} in region {} is running; only a crashed host restarts \
                 (crash it first)",
                shard.0, region.0
            )));
        }
        self.restart_replica(id)?;
        for other in self.driver.view(|v| replicas_on(v, region, shard)) {
            if other != id && !self.driver.is_up(other) {
                self.restart_replica(other)?;
            }
        }
        Ok(())
    }

    fn restart_replica(&self, id: NodeId) -> Result<()> {
        self.driver.restart_node(id)?;
        let repairs = self.driver.view(|v| match v.node(id) {
            Ok(node) => super::membership_repair(v.control(), node),
            Err(_) => Vec::new(),
        });
        for command in repairs {
            self.driver.input(id, Input::Control(command));
        }
        Ok(())
    }

    /// Lets `d` pass: virtual time in the simulator, the wall clock in the runtime. It
    /// runs its whole length, even inside an [`interrupt`] scope.
    pub fn run_for(&self, d: Duration) {
        let ran = interrupt::suspended(|| self.driver.advance(d));
        debug_assert!(ran.is_ok(), "an unchecked run stopped: {ran:?}");
    }

    /// [`Self::run_for`], refusing a duration that would take the clock past the last
    /// time it can hold ([`Timestamp::MAX_NANOS`], in 2116), instead of running less or
    /// nothing; and stopping when an [`interrupt`] scope's check says so (the time that
    /// passed until then stays passed).
    pub fn try_run_for(&self, what: &'static str, d: Duration) -> Result<()> {
        let now = self.now();
        let end = i64::try_from(d.as_nanos())
            .ok()
            .and_then(|ns| now.as_nanos().checked_add(ns))
            .and_then(|end| Timestamp::from_nanos(end).ok());
        if end.is_none() {
            return Err(TidalError::InvalidArgument {
                name: what,
                reason: format!(
                    "{} s from now is past the last time the clock can hold ({} Unix \
                     seconds, in 2116); pass a shorter duration",
                    d.as_secs_f64(),
                    Timestamp::MAX_NANOS / 1_000_000_000
                ),
            });
        }
        self.driver.advance(d)
    }

    /// Events applied by the default tenant's replicas in `region`, summed over shards.
    pub fn applied_seqno(&self, region: RegionId) -> Result<u64> {
        check_region(self.layout(), region)?;
        let shards = self.layout().shards_per_region;
        self.driver.view(|v| {
            let mut total = 0;
            for s in 0..shards {
                let id = default_replica_at(v, region, ShardId(s))?;
                total += v.node(id)?.ledger().version_vector().sum();
            }
            Ok(total)
        })
    }

    /// The version vector of the default tenant's replica of `shard` in `region`.
    pub fn version_vector(&self, region: RegionId, shard: ShardId) -> Result<VersionVector> {
        let id = self.node_id(region, shard)?;
        self.with_node(id, |n, _| Ok(n.ledger().version_vector().clone()))
    }

    /// True when, in every replica group, the replicas that are up hold the same events
    /// with nothing buffered, the control plane sees no lag among them, and their
    /// materialized states have the same digest. The digest walks the whole state, so it
    /// is compared only once the version vectors agree.
    pub fn is_converged(&self) -> bool {
        self.driver.view(|v| {
            let control = v.control();
            let mut groups: Vec<GroupId> = control.replicas().map(|r| r.group()).collect();
            groups.sort_unstable();
            groups.dedup();
            groups.into_iter().all(|g| {
                let live: Vec<&Node> = control
                    .replicas()
                    .filter(|r| r.group() == g)
                    .filter_map(|r| v.node(r.node).ok())
                    .collect();
                live.windows(2)
                    .all(|w| w[0].ledger().version_vector() == w[1].ledger().version_vector())
                    && live.iter().all(|n| {
                        n.ledger().pending_len() == 0
                            && n.early_events() == 0
                            && n.durable() == n.ledger().version_vector()
                            && control.lag_for(n.id()).events == 0
                    })
                    && live
                        .windows(2)
                        .all(|w| w[0].ledger().state_digest() == w[1].ledger().state_digest())
            })
        })
    }

    /// Lets time pass until the cluster converges; returns how long that took. An error
    /// names the replicas that still differ.
    pub fn await_full_convergence(&self, timeout: Duration) -> Result<Duration> {
        let start = self.now();
        let step = self.layout().timing.tick;
        loop {
            if self.is_converged() {
                return Ok(Duration::from_nanos(
                    (self.now().as_nanos() - start.as_nanos()).max(0) as u64,
                ));
            }
            let waited = self.now().as_nanos() - start.as_nanos();
            if waited >= timeout.as_nanos() as i64 {
                return Err(TidalError::Timeout(format!(
                    "the cluster did not converge within {}: {}",
                    crate::schema::format_duration(timeout),
                    self.divergence_report()
                )));
            }
            // Comparing digests walks every replica's state: worth a check of its own.
            interrupt::checkpoint()?;
            self.try_run_for("timeout", step)?;
        }
    }

    /// Each replica's version vector and state digest, or that it is down, for error
    /// messages.
    pub fn divergence_report(&self) -> String {
        self.driver.view(|v| {
            let control = v.control();
            let mut parts = Vec::new();
            for r in control.replicas() {
                let state = match v.node(r.node) {
                    Err(_) => "down".to_string(),
                    Ok(node) => format!(
                        "vv {:?}, pending {}, early {}, durable {:?}, lag {}, state digest {:016x}",
                        node.ledger().version_vector().iter().collect::<Vec<_>>(),
                        node.ledger().pending_len(),
                        node.early_events(),
                        node.durable().iter().collect::<Vec<_>>(),
                        control.lag_for(node.id()).events,
                        node.ledger().state_digest()
                    ),
                };
                parts.push(format!(
                    "node {} (tenant {}, region {}, shard {}): {state}",
                    r.node.0, r.tenant, r.region.0, r.shard.0
                ));
            }
            parts.join("; ")
        })
    }

    /// Every replica that is up asks its peers for what it lacks and ships what they lack.
    pub fn reconcile_all(&self) {
        let nodes: Vec<NodeId> = self
            .driver
            .view(|v| v.control().replicas().map(|r| r.node).collect());
        for n in nodes {
            self.driver.input(n, Input::Reconcile);
        }
    }
}
