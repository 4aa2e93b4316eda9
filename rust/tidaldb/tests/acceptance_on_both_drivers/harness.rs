//! One scenario body, two drivers: the same [`Cluster`] code on the simulator (virtual
//! time, seeded network, simulated disk) and on `LocalCluster` (the wall clock, real
//! files, the in-process transport).

use std::any::Any;
use std::time::Duration;

use tidaldb::cluster::{Cluster, ClusterDriver, Scope};
use tidaldb::node::WriteConcern;
use tidaldb::runtime::{LocalCluster, LocalClusterConfig};
use tidaldb::sim::{ClusterConfig, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, Timestamp};

pub const REGIONS: [RegionId; 3] = [RegionId(0), RegionId(1), RegionId(2)];
pub const HALF_LIFE: Duration = Duration::from_secs(3600);

pub fn schema() -> Schema {
    crate::common::view_signal(HALF_LIFE)
        .windows(&[tidaldb::Window::AllTime])
        .add()
        .build()
        .expect("valid schema")
}

/// What a scenario needs beyond the cluster layer: cutting the network, which each driver
/// does its own way.
pub trait Harness {
    type D: ClusterDriver + Clone;

    fn cluster(&self) -> &Cluster<Self::D>;

    /// Cuts `region` off from every other region until the returned guard is dropped.
    fn cut_off(&self, region: RegionId) -> Box<dyn Any>;

    /// How long the cluster needs to notice a silent replica and act: an election
    /// timeout plus a few heartbeats.
    fn failover_time(&self) -> Duration {
        let t = self.cluster().layout().timing;
        t.election_timeout + 4 * t.heartbeat_interval
    }
}

pub struct SimHarness(SimulatedCluster);

impl SimHarness {
    pub fn new(seed: u64) -> Self {
        let cluster = SimulatedCluster::build(ClusterConfig {
            seed,
            ..ClusterConfig::new(schema())
        })
        .expect("cluster builds");
        // Heartbeats reach the control plane before the scenario starts.
        cluster.run_for(Duration::from_millis(200));
        SimHarness(cluster)
    }
}

impl Harness for SimHarness {
    type D = tidaldb::sim::SimDriver;

    fn cluster(&self) -> &Cluster<Self::D> {
        &self.0
    }

    fn cut_off(&self, region: RegionId) -> Box<dyn Any> {
        let cuts: Vec<_> = REGIONS
            .iter()
            .filter(|r| **r != region)
            .map(|r| self.0.inject_partition(region, *r).expect("partition"))
            .collect();
        Box::new(cuts)
    }
}

pub struct LocalHarness {
    cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl LocalHarness {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = LocalCluster::open(LocalClusterConfig::new(schema(), dir.path()))
            .expect("local cluster opens");
        cluster.run_for(Duration::from_millis(200));
        LocalHarness { cluster, _dir: dir }
    }
}

impl Drop for LocalHarness {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.shutdown() {
            eprintln!("shutting the local cluster down failed: {e}");
        }
    }
}

impl Harness for LocalHarness {
    type D = tidaldb::runtime::LocalDriver;

    fn cluster(&self) -> &Cluster<Self::D> {
        &self.cluster
    }

    fn cut_off(&self, region: RegionId) -> Box<dyn Any> {
        let cuts: Vec<_> = REGIONS
            .iter()
            .filter(|r| **r != region)
            .flat_map(|r| {
                self.cluster
                    .partition_regions(region, *r)
                    .expect("partition")
            })
            .collect();
        Box::new(cuts)
    }
}

/// Writes one unit view of `item` at `ts` to `region`'s replica under `concern`.
pub fn view_in<D: ClusterDriver + Clone>(
    c: &Cluster<D>,
    region: RegionId,
    item: EntityId,
    ts: Timestamp,
    concern: WriteConcern,
) -> Result<()> {
    let node = c.node_for(region, item)?;
    c.handle(node)
        .write_signal("view", item, 1.0, Some(ts), concern, None)
        .map(drop)
}

/// The score of `item` at `at` as `scope` reads it.
pub fn score_in<D: ClusterDriver>(
    c: &Cluster<D>,
    scope: Scope,
    item: EntityId,
    at: Timestamp,
) -> Result<f64> {
    let signal = c.layout().schema.resolve("view")?;
    c.read_scoped(scope, item, |n, _| n.ledger().decay_score(signal, item, at))
}

/// Every region's score of `item` at `at`.
pub fn scores<D: ClusterDriver>(c: &Cluster<D>, item: EntityId, at: Timestamp) -> Vec<f64> {
    REGIONS
        .iter()
        .map(|r| score_in(c, Scope::LEADER.in_region(Some(*r)), item, at).expect("read"))
        .collect()
}

/// `t` plus `ms` milliseconds.
pub fn plus_ms(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_nanos(t.as_nanos() + ms * 1_000_000).expect("in range")
}

/// Lets time pass until `done`, in steps of one tick, for at most `limit`.
pub fn run_until<D: ClusterDriver>(
    c: &Cluster<D>,
    limit: Duration,
    mut done: impl FnMut(&Cluster<D>) -> bool,
) -> bool {
    let tick = c.layout().timing.tick;
    let mut waited = Duration::ZERO;
    while waited < limit {
        if done(c) {
            return true;
        }
        c.run_for(tick);
        waited += tick;
    }
    done(c)
}

pub const SHARD: ShardId = ShardId(0);
