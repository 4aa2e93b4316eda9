//! The tokio runtime driver end to end: three replicas over the in-process transport, with
//! real clocks, real WAL files and injected partitions. Replicas must converge to
//! bit-identical scores equal to the closed form, a partitioned replica must report its
//! queries degraded and catch up on heal, and `Replicated(k)` must wait for k replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{T0, ts};

use tidaldb::node::WriteConcern;
use tidaldb::runtime::{InProcessTransportFactory, PartitionHandle};
use tidaldb::{Durability, EntityId, NodeId, Retrieve, Schema, TidalDb, TidalError, Timestamp};

const SEC: i64 = 1_000_000_000;
const HALF_LIFE_S: f64 = 3600.0;
const ENTITIES: u64 = 3;
/// Generous: a loaded CI machine fsyncs slowly, and a failure should mean "never".
const CONVERGE_WITHIN: Duration = Duration::from_secs(10);

fn schema() -> Schema {
    common::view_signal(Duration::from_secs_f64(HALF_LIFE_S))
        .add()
        .build()
        .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Storage {
    Ephemeral,
    Disk(Durability),
}

struct Cluster {
    net: InProcessTransportFactory,
    dbs: Vec<TidalDb>,
    dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// Must be called on a tokio runtime: each replica spawns its driver task there.
    fn open(storage: Storage, replication_timeout: Duration) -> Cluster {
        let net = InProcessTransportFactory::new();
        let mut dbs = Vec::new();
        let mut dirs = Vec::new();
        for id in 0..3 {
            let (transport, inbox) = net.connect(NodeId(id));
            let b = TidalDb::builder()
                .with_schema(schema())
                .with_cluster(common::runtime_replica_config(id))
                .with_transport(Arc::new(transport), inbox)
                .replication_timeout(replication_timeout);
            let b = match storage {
                Storage::Ephemeral => b.ephemeral(),
                Storage::Disk(d) => {
                    let dir = tempfile::tempdir().unwrap();
                    let b = b.with_data_dir(dir.path()).durability(d);
                    dirs.push(dir);
                    b
                }
            };
            dbs.push(b.open().unwrap());
        }
        Cluster { net, dbs, dirs }
    }

    fn applied(&self) -> Vec<u64> {
        self.dbs
            .iter()
            .map(|d| d.events_applied().unwrap())
            .collect()
    }

    /// Cuts `node` off from both others, symmetrically, until the handles drop.
    fn isolate(&self, node: u16) -> Vec<PartitionHandle> {
        (0..3)
            .filter(|&o| o != node)
            .map(|o| self.net.inject_partition(NodeId(node), NodeId(o)))
            .collect()
    }
}

/// Polls `check` until it reports success, failing with its last description otherwise.
async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> (bool, String)) {
    let start = Instant::now();
    loop {
        let (done, state) = check();
        if done {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: not reached within {within:?}; last seen {state}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_converged(c: &Cluster, nodes: &[usize]) {
    wait_until("replicas converge", CONVERGE_WITHIN, || {
        let a = c.applied();
        (nodes.iter().all(|&n| a[n] == a[0]), format!("{a:?}"))
    })
    .await;
}

async fn wait_connected(c: &Cluster) {
    wait_until("every replica hears every other", CONVERGE_WITHIN, || {
        let silent: Vec<Vec<NodeId>> = c
            .dbs
            .iter()
            .map(|d| d.unreachable_peers().unwrap())
            .collect();
        (silent.iter().all(Vec::is_empty), format!("{silent:?}"))
    })
    .await;
}

fn weight(i: u64) -> f64 {
    1.0 + (i % 7) as f64 * 0.375
}

fn event_ts(i: u64) -> i64 {
    T0 + i as i64 * 13 * SEC
}

/// The events of the `i`th write: (entity, weight, timestamp).
fn write(db: &TidalDb, i: u64) {
    db.signal(
        "view",
        EntityId(i % ENTITIES),
        weight(i),
        Some(ts(event_ts(i))),
    )
    .unwrap();
}

/// Σ w·2^(−(t−tᵢ)/h) over the first `n` writes that went to `entity`.
fn analytical(entity: u64, n: u64, at: i64) -> f64 {
    (0..n)
        .filter(|i| i % ENTITIES == entity)
        .map(|i| weight(i) * (-((at - event_ts(i)) as f64 / SEC as f64) / HALF_LIFE_S).exp2())
        .sum()
}

/// Every replica's scores equal the leader's bit for bit, and the closed form closely.
fn assert_scores(c: &Cluster, nodes: &[usize], n: u64) {
    let at = event_ts(n) + 600 * SEC;
    for entity in 0..ENTITIES {
        let leader = c.dbs[0]
            .read_decay_score_at(EntityId(entity), "view", ts(at))
            .unwrap();
        let expected = analytical(entity, n, at);
        assert!(
            ((leader - expected) / expected).abs() < 1e-9,
            "entity {entity}: leader {leader}, closed form {expected}"
        );
        for &node in nodes {
            let got = c.dbs[node]
                .read_decay_score_at(EntityId(entity), "view", ts(at))
                .unwrap();
            assert_eq!(
                got.to_bits(),
                leader.to_bits(),
                "entity {entity}: node {node} scores {got}, the leader {leader}"
            );
        }
    }
}

async fn followers_converge_bit_identically(storage: Storage) {
    let c = Cluster::open(storage, Duration::from_secs(5));
    for i in 0..500 {
        write(&c.dbs[0], i);
    }
    assert_eq!(c.dbs[0].events_applied().unwrap(), 500);
    wait_converged(&c, &[1, 2]).await;
    assert_scores(&c, &[1, 2], 500);

    if let Storage::Disk(_) = storage {
        // What a follower received is on its disk: reopened alone, it has all of it.
        c.dbs[1].close().unwrap();
        let reopened = TidalDb::builder()
            .with_data_dir(c.dirs[1].path())
            .with_schema(schema())
            .node_id(NodeId(1))
            .open()
            .unwrap();
        assert_eq!(reopened.events_applied().unwrap(), 500);
        let at = ts(event_ts(500));
        for entity in 0..ENTITIES {
            let score = |db: &TidalDb| db.read_decay_score_at(EntityId(entity), "view", at);
            assert_eq!(
                score(&reopened).unwrap().to_bits(),
                score(&c.dbs[0]).unwrap().to_bits()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_followers_converge_bit_identically() {
    followers_converge_bit_identically(Storage::Ephemeral).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_followers_converge_bit_identically() {
    followers_converge_bit_identically(Storage::Disk(Durability::Immediate)).await;
}

/// Batched: the last partial batch becomes durable only when the flusher commits it, and
/// the node pushes its own events only once told they are durable, so this fails unless
/// the flusher's commit feeds `Synced` to the node and carries out what that releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_followers_converge_bit_identically() {
    let batched = Durability::Batched {
        max_batch: 64,
        max_delay: Duration::from_millis(5),
    };
    followers_converge_bit_identically(Storage::Disk(batched)).await;
}

/// Whether `db`'s queries say they are degraded; a degraded answer must name the replicas
/// it could not hear, and only then is it degraded.
fn degraded(db: &TidalDb) -> bool {
    let q = Retrieve::builder()
        .candidates((0..ENTITIES).map(EntityId))
        .rank_by(&[("view", 1.0)])
        .at(ts(event_ts(1000)))
        .build()
        .unwrap();
    let r = db.retrieve(&q).unwrap();
    assert_eq!(r.stats.shards_reached, vec![tidaldb::ShardId(0)]);
    assert!(r.stats.shards_unreachable.is_empty());
    assert_eq!(r.stats.degraded, !r.stats.replicas_unreachable.is_empty());
    r.stats.degraded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_follower_is_degraded_and_catches_up_on_heal() {
    let c = Cluster::open(Storage::Ephemeral, Duration::from_secs(5));
    for i in 0..100 {
        write(&c.dbs[0], i);
    }
    wait_converged(&c, &[1, 2]).await;
    wait_connected(&c).await;
    wait_until("node 2 is not degraded", CONVERGE_WITHIN, || {
        (
            !degraded(&c.dbs[2]),
            format!("{:?}", c.dbs[2].unreachable_peers()),
        )
    })
    .await;

    let cut = c.isolate(2);
    for i in 100..200 {
        write(&c.dbs[0], i);
    }
    wait_converged(&c, &[1]).await;
    wait_until(
        "node 2 reports its queries degraded",
        CONVERGE_WITHIN,
        || {
            (
                degraded(&c.dbs[2]),
                format!("{:?}", c.dbs[2].unreachable_peers()),
            )
        },
    )
    .await;
    assert_eq!(
        c.dbs[2].events_applied().unwrap(),
        100,
        "an isolated replica received writes"
    );
    let q = Retrieve::builder()
        .candidates([EntityId(0)])
        .rank_by(&[("view", 1.0)])
        .build()
        .unwrap();
    let unreachable = c.dbs[2].retrieve(&q).unwrap().stats.replicas_unreachable;
    let regions: Vec<u16> = unreachable.iter().map(|r| r.region.0).collect();
    assert_eq!(
        regions,
        vec![0, 1],
        "the isolated node names both replicas it cannot hear"
    );
    assert!(c.net.dropped() > 0);
    assert_scores(&c, &[1], 200);

    drop(cut);
    wait_converged(&c, &[1, 2]).await;
    assert_scores(&c, &[1, 2], 200);
    wait_until("node 2 is no longer degraded", CONVERGE_WITHIN, || {
        (
            !degraded(&c.dbs[2]),
            format!("{:?}", c.dbs[2].unreachable_peers()),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_writes_wait_for_k_replicas() {
    let timeout = Duration::from_millis(400);
    let c = Cluster::open(Storage::Ephemeral, timeout);
    wait_connected(&c).await;
    let leader = &c.dbs[0];
    let replicated = |i: u64, k: u8| {
        leader.signal_with(
            "view",
            EntityId(i % ENTITIES),
            weight(i),
            Some(ts(event_ts(i))),
            WriteConcern::Replicated(k),
        )
    };

    for i in 0..20 {
        let id = replicated(i, 2).await.unwrap();
        assert_eq!(id.seq, i + 1);
        // Acknowledged by both, so both have applied it by now: no waiting here.
        assert_eq!(c.applied(), vec![i + 1; 3], "after write {i}");
    }

    let cut = c.isolate(2);
    let started = Instant::now();
    match replicated(20, 2).await {
        Err(TidalError::Timeout(why)) => assert!(why.contains("write_concern=2"), "{why}"),
        other => panic!("Replicated(2) with a replica cut off returned {other:?}"),
    }
    assert!(started.elapsed() >= timeout, "gave up before the timeout");
    // The timed-out write stands (it is applied and replicating), so the next is seq 22.
    let id = replicated(21, 1).await.unwrap();
    assert_eq!(id.seq, 22);
    assert_eq!(c.dbs[1].events_applied().unwrap(), 22);
    assert_eq!(c.dbs[2].events_applied().unwrap(), 20);
    assert!(matches!(
        replicated(22, 3).await,
        Err(TidalError::InvalidArgument { .. })
    ));
    // A local write needs no replica at all.
    let local = leader
        .signal_with("view", EntityId(0), 1.0, None, WriteConcern::Local)
        .await
        .unwrap();
    assert_eq!(local.seq, 23);

    drop(cut);
    wait_converged(&c, &[1, 2]).await;
    assert_eq!(c.applied(), vec![23; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_replica_stops_its_driver_and_its_waiters() {
    let c = Cluster::open(Storage::Ephemeral, Duration::from_secs(30));
    wait_connected(&c).await;
    let _cut = c.isolate(0);
    let leader = c.dbs[0].clone();
    let pending = tokio::spawn(async move {
        leader
            .signal_with("view", EntityId(1), 1.0, None, WriteConcern::Replicated(1))
            .await
    });
    // Applied locally, so the caller now waits on the acknowledgement alone.
    wait_until("the write is applied", CONVERGE_WITHIN, || {
        let n = c.dbs[0].events_applied().unwrap();
        (n == 1, format!("{n} applied"))
    })
    .await;
    c.dbs[0].close().unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("close left a Replicated(k) caller waiting for its full timeout")
        .unwrap();
    assert!(matches!(answered, Err(TidalError::Unavailable(_))));
}

#[test]
fn a_replica_without_a_runtime_or_a_transport_is_refused() {
    let net = InProcessTransportFactory::new();
    let (transport, inbox) = net.connect(NodeId(0));
    let no_runtime = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .with_cluster(common::runtime_replica_config(0))
        .with_transport(Arc::new(transport), inbox)
        .open();
    assert!(
        matches!(&no_runtime, Err(TidalError::InvalidArgument { name: "transport", reason }) if reason.contains("tokio")),
        "{no_runtime:?}"
    );
    let no_transport = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .with_cluster(common::runtime_replica_config(0))
        .open();
    assert!(matches!(
        no_transport,
        Err(TidalError::InvalidArgument {
            name: "transport",
            ..
        })
    ));
    let (wrong, inbox) = net.connect(NodeId(5));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in_rt = rt.enter();
    let mismatched = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .with_cluster(common::runtime_replica_config(0))
        .with_transport(Arc::new(wrong), inbox)
        .open();
    assert!(matches!(
        mismatched,
        Err(TidalError::InvalidArgument {
            name: "transport",
            ..
        })
    ));
    // A replicated write is awaited on tokio; outside one it is refused before writing.
    drop(_in_rt);
    let single = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    let local = Timestamp::from_nanos(T0).unwrap();
    let refused = futures_lite_block_on(single.signal_with(
        "view",
        EntityId(1),
        1.0,
        Some(local),
        WriteConcern::Replicated(1),
    ));
    assert!(matches!(refused, Err(TidalError::InvalidArgument { .. })));
    assert_eq!(single.events_applied().unwrap(), 0);
}

/// Polls a future to completion on this thread without any runtime: the refusal path must
/// not need one.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
