//! `LocalCluster`: the cluster layer over real replicas in one process.
//!
//! Every replica is a [`TidalDb`] with its own data directory (real WAL files, fsync and
//! all), driven by tokio on the wall clock and wired by the [`InProcessTransportFactory`].
//! The control plane is ticked by a task of its own and hears the replicas' heartbeat
//! reports through a queue. Routing, tenants, failover, migration, drain, upgrade and
//! rejoin are the same [`Cluster`] code the simulator runs; only clock, network and disk
//! differ.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::TidalDb;
use super::state::{ReportSink, State};
use super::transport::{InProcessTransportFactory, PartitionHandle};
use crate::cluster::{
    Cluster, ClusterDriver, ClusterSpec, ClusterView, Layout, control_round, initial_replicas,
};
use crate::control::{Command, ControlPlane};
use crate::error::{Result, TidalError};
use crate::event::ClientTag;
use crate::interrupt;
use crate::node::{
    ClientOp, ControlCommand, Input, Node, NodeConfig, NodeReport, WriteAck, WriteConcern,
};
use crate::schema::{NodeId, RegionId, Schema, Timestamp, format_duration};
use crate::wal::Durability;

/// How a [`LocalCluster`] is laid out and run.
#[derive(Clone, Debug)]
pub struct LocalClusterConfig {
    /// Regions, shards, first leaders, schema, timings and write policy.
    pub spec: ClusterSpec,
    /// Each replica keeps its files in `{data_dir}/node-{id}`.
    pub data_dir: PathBuf,
    pub durability: Durability,
}

impl LocalClusterConfig {
    /// Three regions, one shard each, led from region 0, with every write synced.
    pub fn new(schema: Schema, data_dir: impl Into<PathBuf>) -> Self {
        LocalClusterConfig {
            spec: ClusterSpec::new(schema),
            data_dir: data_dir.into(),
            durability: Durability::Immediate,
        }
    }
}

/// One replica's place: its configuration, its directory, and its database while up.
#[derive(Debug)]
struct Slot {
    cfg: NodeConfig,
    dir: PathBuf,
    db: Option<TidalDb>,
    retired: bool,
}

#[derive(Debug)]
struct Inner {
    layout: Layout,
    data_dir: PathBuf,
    durability: Durability,
    net: InProcessTransportFactory,
    control: Mutex<ControlPlane>,
    /// Heartbeat reports queued by the replicas, drained into the control plane. A
    /// queue, not a direct call: a replica reports under its own lock, and the control
    /// plane's lock must never be taken under a replica's.
    reports: Arc<Mutex<Vec<(Timestamp, NodeReport)>>>,
    slots: Mutex<Vec<Slot>>,
    runtime: tokio::runtime::Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Set by `shutdown`: the runtime is gone, so no replica may open or write again.
    closed: AtomicBool,
}

/// The runtime as a [`ClusterDriver`].
#[derive(Clone, Debug)]
pub struct LocalDriver {
    inner: Arc<Inner>,
}

/// A cluster of real replicas in one process. Clones share it.
pub type LocalCluster = Cluster<LocalDriver>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under one of these locks leaves plain data behind, still the best there is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster<LocalDriver> {
    /// Opens every region's replica of every shard under `config.data_dir` and starts the
    /// control plane. Directories left by an earlier run are recovered, not wiped.
    pub fn open(config: LocalClusterConfig) -> Result<LocalCluster> {
        let layout = config.spec.layout()?;
        let (configs, control) = initial_replicas(&layout, config.spec.leader.0);
        let (runtime, stop) = start_runtime()?;
        let inner = Arc::new(Inner {
            layout,
            data_dir: config.data_dir.clone(),
            durability: config.durability,
            net: InProcessTransportFactory::new(),
            control: Mutex::new(control),
            reports: Arc::new(Mutex::new(Vec::new())),
            slots: Mutex::new(Vec::new()),
            runtime,
            stop: Mutex::new(Some(stop)),
            closed: AtomicBool::new(false),
        });
        let driver = LocalDriver {
            inner: inner.clone(),
        };
        for cfg in configs {
            let dir = inner.node_dir(cfg.id);
            driver.open_slot(cfg, dir)?;
        }
        inner.runtime.spawn(tick_control(
            Arc::downgrade(&inner),
            config.spec.timing.tick,
        ));
        Ok(Cluster::from_driver(driver))
    }

    /// Cuts every replica in `a` off from every replica in `b`, both ways, until the
    /// handles are dropped.
    pub fn partition_regions(&self, a: RegionId, b: RegionId) -> Result<Vec<PartitionHandle>> {
        crate::cluster::check_region(self.layout(), a)?;
        crate::cluster::check_region(self.layout(), b)?;
        let (in_a, in_b) = self.driver.view(|v| {
            let of = |region: RegionId| -> Vec<NodeId> {
                v.control()
                    .replicas()
                    .filter(|r| r.region == region)
                    .map(|r| r.node)
                    .collect()
            };
            (of(a), of(b))
        });
        let net = &self.driver.inner.net;
        Ok(in_a
            .iter()
            .flat_map(|x| in_b.iter().map(move |y| net.inject_partition(*x, *y)))
            .collect())
    }

    /// Cuts `node` off from every other replica until the handle is dropped.
    pub fn isolate(&self, node: NodeId) -> PartitionHandle {
        self.driver.inner.net.isolate(node)
    }

    /// The replica's database while it is up.
    pub fn replica_db(&self, node: NodeId) -> Option<TidalDb> {
        lock(&self.driver.inner.slots)
            .get(usize::from(node.0))
            .and_then(|s| s.db.clone())
    }

    /// Stops every replica (syncing what each holds) and the control plane.
    pub fn shutdown(&self) -> Result<()> {
        self.driver.inner.shutdown()
    }
}

/// A current-thread tokio runtime on a thread of its own, which runs until `stop` fires.
fn start_runtime() -> Result<(tokio::runtime::Handle, oneshot::Sender<()>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(TidalError::io("starting the cluster's tokio runtime"))?;
    let handle = rt.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("tidaldb-local-cluster".into())
        .spawn(move || {
            // Either the signal or its sender's drop ends the runtime.
            let _ = rt.block_on(stopped);
        })
        .map_err(TidalError::io("starting the cluster's runtime thread"))?;
    Ok((handle, stop))
}

/// The control-plane host: hears the queued reports, ticks the control plane (failover,
/// role repair), and hands its orders to the replicas.
async fn tick_control(inner: Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let orders = {
            let mut control = lock(&inner.control);
            let queued = std::mem::take(&mut *lock(&inner.reports));
            control_round(&mut control, Timestamp::now(), queued)
        };
        for (node, command) in orders {
            inner.order(node, command);
        }
    }
}

impl Inner {
    /// Where replica `id` keeps its files.
    fn node_dir(&self, id: NodeId) -> PathBuf {
        self.data_dir.join(format!("node-{}", id.0))
    }

    fn observe_queued(&self, control: &mut ControlPlane) {
        let queued = std::mem::take(&mut *lock(&self.reports));
        for (at, report) in queued {
            control.observe(at, report);
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(TidalError::Unavailable(
                "the local cluster was shut down; open a new one".into(),
            ));
        }
        Ok(())
    }

    fn db(&self, node: NodeId) -> Option<TidalDb> {
        lock(&self.slots)
            .get(usize::from(node.0))
            .and_then(|s| s.db.clone())
    }

    fn order(&self, node: NodeId, command: ControlCommand) {
        if let Some(db) = self.db(node)
            && let Err(e) = db.apply_control(command)
        {
            tracing::warn!(node = node.0, error = %e, "a replica refused a control-plane order");
        }
    }

    fn shutdown(&self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        let dbs: Vec<TidalDb> = lock(&self.slots)
            .iter_mut()
            .filter_map(|s| s.db.take())
            .collect();
        let mut first = Ok(());
        for db in dbs {
            if let Err(e) = db.close()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        first
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "closing a local cluster's replica failed");
        }
    }
}

impl LocalDriver {
    /// Opens (or reopens) a replica in `dir`, connected to the network and the control
    /// plane, and puts it in its slot.
    fn open_slot(&self, cfg: NodeConfig, dir: PathBuf) -> Result<()> {
        self.inner.check_open()?;
        let db = self.open_db(&cfg, &dir)?;
        let mut slots = lock(&self.inner.slots);
        let index = usize::from(cfg.id.0);
        if slots.len() <= index {
            slots.resize_with(index + 1, || Slot {
                cfg: NodeConfig::default(),
                dir: PathBuf::new(),
                db: None,
                retired: true,
            });
        }
        slots[index] = Slot {
            cfg,
            dir,
            db: Some(db),
            retired: false,
        };
        Ok(())
    }

    fn open_db(&self, cfg: &NodeConfig, dir: &Path) -> Result<TidalDb> {
        let (transport, inbox) = self.inner.net.connect(cfg.id);
        let queue = self.inner.reports.clone();
        let sink = ReportSink(Arc::new(move |report| {
            lock(&queue).push((Timestamp::now(), report));
        }));
        let _entered = self.inner.runtime.enter();
        TidalDb::builder()
            .with_data_dir(dir)
            .with_schema((*self.inner.layout.schema).clone())
            .durability(self.inner.durability)
            .with_cluster(cfg.clone())
            .with_transport(Arc::new(transport), inbox)
            .replication_timeout(self.inner.layout.write_timeout)
            .report_to(sink)
            .open()
    }
}

/// The control plane and every replica that is up, locked together for one look.
struct LocalView<'a> {
    now: Timestamp,
    control: MutexGuard<'a, ControlPlane>,
    nodes: Vec<(NodeId, MutexGuard<'a, State>)>,
}

impl ClusterView for LocalView<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }

    fn control(&self) -> &ControlPlane {
        &self.control
    }

    fn node(&self, id: NodeId) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, st)| &st.node)
            .ok_or_else(|| TidalError::Unavailable(format!("node {} is down", id.0)))
    }
}

impl ClusterDriver for LocalDriver {
    fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    fn view<T>(&self, f: impl FnOnce(&dyn ClusterView) -> T) -> T {
        // Lock order: slots, then replicas in id order, then the control plane; the
        // control-plane task never holds the control plane while taking a replica.
        let dbs: Vec<(NodeId, TidalDb)> = lock(&self.inner.slots)
            .iter()
            .filter_map(|s| s.db.clone().map(|db| (s.cfg.id, db)))
            .collect();
        let nodes = dbs
            .iter()
            .filter_map(|(id, db)| db.lock().ok().map(|st| (*id, st)))
            .collect();
        let mut control = lock(&self.inner.control);
        self.inner.observe_queued(&mut control);
        f(&LocalView {
            now: Timestamp::now(),
            control,
            nodes,
        })
    }

    fn apply_command(&self, command: Command) -> Result<()> {
        lock(&self.inner.control).apply(Timestamp::now(), command)
    }

    fn input(&self, node: NodeId, input: Input<'_>) {
        let Some(db) = self.inner.db(node) else {
            return;
        };
        let result = match input {
            Input::Control(command) => db.apply_control(command),
            Input::Reconcile => db.reconcile(),
            other => Err(TidalError::InvalidArgument {
                name: "input",
                reason: format!("the cluster layer does not hand {other:?} to a replica"),
            }),
        };
        if let Err(e) = result {
            tracing::warn!(node = node.0, error = %e, "a replica refused an input");
        }
    }

    fn submit(
        &self,
        node: NodeId,
        ops: &[ClientOp],
        concern: WriteConcern,
        tag: Option<ClientTag>,
    ) -> Result<WriteAck> {
        self.inner.check_open()?;
        let db = self.inner.db(node).ok_or_else(|| {
            TidalError::Unavailable(format!(
                "node {} is down; restart it or write to another replica",
                node.0
            ))
        })?;
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking here would stall (or, on tokio's own thread, abort) the caller's
            // runtime; refuse instead.
            return Err(TidalError::InvalidArgument {
                name: "context",
                reason: "LocalCluster's calls block until the cluster answers; call them \
                         from outside an async context (for example in spawn_blocking)"
                    .into(),
            });
        }
        self.inner
            .runtime
            .block_on(db.write_request(ops, concern, tag))
    }

    fn wait_until(
        &self,
        timeout: Duration,
        done: &mut dyn FnMut(&dyn ClusterView) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let poll = self.inner.layout.timing.tick;
        loop {
            if self.view(|v| done(v)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TidalError::Timeout(format!(
                    "not done within {}",
                    format_duration(timeout)
                )));
            }
            std::thread::sleep(poll);
            interrupt::checkpoint()?;
        }
    }

    fn advance(&self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(interrupt::CHECK_INTERVAL));
            interrupt::checkpoint()?;
        }
    }

    fn next_node_ids(&self, count: usize) -> Result<NodeId> {
        let first = lock(&self.inner.slots).len();
        if first + count.max(1) > crate::cluster::MAX_NODES {
            return Err(TidalError::Unavailable(format!(
                "the cluster holds {first} replicas and node ids are 16-bit: there is no \
                 room for {count} more"
            )));
        }
        Ok(NodeId(first as u16))
    }

    fn start_node(&self, cfg: NodeConfig) -> Result<()> {
        let dir = self.inner.node_dir(cfg.id);
        self.open_slot(cfg, dir)
    }

    fn retire_node(&self, node: NodeId) {
        let taken = {
            let mut slots = lock(&self.inner.slots);
            slots.get_mut(usize::from(node.0)).map(|s| {
                s.retired = true;
                (s.db.take(), s.dir.clone())
            })
        };
        if let Some((db, dir)) = taken {
            if let Some(db) = db
                && let Err(e) = db.close()
            {
                tracing::warn!(node = node.0, error = %e, "closing a retired replica failed");
            }
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(node = node.0, error = %e, "removing a retired replica's files failed");
            }
        }
    }

    fn crash_node(&self, node: NodeId, lose_unsynced: bool) -> Result<usize> {
        let db = lock(&self.inner.slots)
            .get_mut(usize::from(node.0))
            .and_then(|s| s.db.take())
            .ok_or_else(|| TidalError::Unavailable(format!("node {} is already down", node.0)))?;
        if lose_unsynced {
            // A process crash: what the log had not committed is gone.
            db.halt()
        } else {
            // The process stopped but its writes reached the disk (a clean stop, as for
            // an upgrade): everything applied survives.
            db.close().map(|()| 0)
        }
    }

    fn restart_node(&self, node: NodeId) -> Result<()> {
        let (cfg, dir) = {
            let slots = lock(&self.inner.slots);
            let slot = slots
                .get(usize::from(node.0))
                .ok_or_else(|| TidalError::NotFound(format!("no node {}", node.0)))?;
            if slot.db.is_some() || slot.retired {
                return Err(TidalError::Unavailable(format!(
                    "node {} is already up, or was collected",
                    node.0
                )));
            }
            (slot.cfg.clone(), slot.dir.clone())
        };
        self.open_slot(cfg, dir)
    }
}
