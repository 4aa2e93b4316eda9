//! Restarting one replica of a replicated runtime cluster: three `TidalDb` replicas on
//! tokio, each with its own data directory (real WAL files), wired by the in-process
//! transport. One replica is closed, the others keep writing, and it is reopened from its
//! directory with the same configuration and peers. Once it has caught up, every replica
//! must hold exactly the acknowledged writes: the same counts and weight sums per item as
//! the oracle (the list of acknowledged writes), scores bit-identical across replicas and
//! equal to the closed form Σ w·2^(−(t−tᵢ)/h).
//!
//! Why restart needs its own test: a reopened replica starts from its log alone. Its
//! retained log (what it would ship to peers) is empty, its peers remember it as silent,
//! and its own next sequence number must continue where the log ends: a reused
//! `(origin, seq)` would be dropped by the peers as a duplicate, a lost one never repaired.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{T0, assert_close, ts};

use tidaldb::node::WriteConcern;
use tidaldb::runtime::{InProcessTransportFactory, PartitionHandle};
use tidaldb::{Durability, EntityId, EventId, NodeId, Schema, TidalDb, Window};

const SEC: i64 = 1_000_000_000;
const HALF_LIFE: Duration = Duration::from_secs(3600);
const REPLICAS: u16 = 3;
const ITEMS: u64 = 4;
/// The node that is closed and reopened: a follower, so no leadership moves with it.
const RESTARTED: u16 = 2;
/// A bound on every wait, so a replica that never catches up fails instead of hanging.
/// Catching up takes well under a second; the margin is for a slow, loaded CI machine.
const WITHIN: Duration = Duration::from_secs(8);

fn schema() -> Schema {
    common::view_signal(HALF_LIFE)
        .windows(&[Window::AllTime])
        .add()
        .build()
        .expect("valid schema")
}

/// Three durable replicas on one in-process network; a closed replica's slot is `None`.
struct Cluster {
    net: InProcessTransportFactory,
    dirs: Vec<tempfile::TempDir>,
    dbs: Vec<Option<TidalDb>>,
}

impl Cluster {
    /// Must be called on a tokio runtime: each replica spawns its driver task there.
    fn open() -> Cluster {
        let net = InProcessTransportFactory::new();
        let dirs: Vec<tempfile::TempDir> = (0..REPLICAS)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let dbs = (0..REPLICAS)
            .map(|id| Some(open_replica(&net, &dirs[usize::from(id)], id)))
            .collect();
        Cluster { net, dirs, dbs }
    }

    fn db(&self, id: u16) -> &TidalDb {
        self.dbs[usize::from(id)]
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} is closed"))
    }

    fn open_ids(&self) -> Vec<u16> {
        (0..REPLICAS)
            .filter(|&id| self.dbs[usize::from(id)].is_some())
            .collect()
    }

    /// Closes `id` cleanly (final sync, directory released) and drops its handle.
    /// Returns how many events it held.
    fn close(&mut self, id: u16) -> u64 {
        let db = self.dbs[usize::from(id)].take().expect("open");
        let held = db.events_applied().unwrap();
        db.close().unwrap();
        held
    }

    /// Reopens `id` from its own data directory, with the configuration and peers it had.
    fn reopen(&mut self, id: u16) -> &TidalDb {
        let db = open_replica(&self.net, &self.dirs[usize::from(id)], id);
        self.dbs[usize::from(id)].insert(db)
    }

    /// Cuts `id` off from every other node until the handle drops.
    fn isolate(&self, id: u16) -> PartitionHandle {
        self.net.isolate(NodeId(id))
    }
}

fn open_replica(net: &InProcessTransportFactory, dir: &tempfile::TempDir, id: u16) -> TidalDb {
    // Connecting an id again replaces its inbox, as a restarted process would.
    let (transport, inbox) = net.connect(NodeId(id));
    TidalDb::builder()
        .with_schema(schema())
        .with_data_dir(dir.path())
        .durability(Durability::Immediate)
        .with_cluster(common::runtime_replica_config(id))
        .with_transport(Arc::new(transport), inbox)
        .replication_timeout(Duration::from_secs(2))
        .open()
        .unwrap_or_else(|e| panic!("open node {id}: {e}"))
}

/// One acknowledged write: where it was made, what it wrote, and the id it was given.
#[derive(Clone, Copy, Debug)]
struct Acked {
    node: u16,
    id: EventId,
    item: u64,
    weight: f64,
    ts_ns: i64,
}

/// The oracle: every write some replica acknowledged, in the order they were made.
#[derive(Debug, Default)]
struct Oracle {
    acked: Vec<Acked>,
}

impl Oracle {
    /// Writes the next event on `node` under `concern` and records it once acknowledged.
    /// Every write gets its own timestamp, spaced 7 s apart, so the closed form is exact.
    async fn write(&mut self, c: &Cluster, node: u16, concern: WriteConcern) {
        let i = self.acked.len() as u64;
        let (item, weight, ts_ns) = (
            i % ITEMS,
            1.0 + (i % 5) as f64 * 0.25,
            T0 + i as i64 * 7 * SEC,
        );
        let id = c
            .db(node)
            .signal_with("view", EntityId(item), weight, Some(ts(ts_ns)), concern)
            .await
            .unwrap_or_else(|e| panic!("write {i} on node {node} ({concern:?}): {e}"));
        assert_eq!(
            id.origin,
            NodeId(node),
            "write {i} was stamped by another origin"
        );
        self.acked.push(Acked {
            node,
            id,
            item,
            weight,
            ts_ns,
        });
    }

    /// `n` local writes, round robin over `nodes`.
    async fn write_round_robin(&mut self, c: &Cluster, nodes: &[u16], n: usize) {
        for k in 0..n {
            self.write(c, nodes[k % nodes.len()], WriteConcern::Local)
                .await;
        }
    }

    fn total(&self) -> u64 {
        self.acked.len() as u64
    }

    fn written_on(&self, node: u16) -> u64 {
        self.acked.iter().filter(|a| a.node == node).count() as u64
    }

    /// A time after every write, at which all reads are compared.
    fn read_at(&self) -> i64 {
        T0 + (self.total() as i64 + 100) * 7 * SEC
    }

    /// Σ w·2^(−(t−tᵢ)/h) over the acknowledged writes to `item`.
    fn score(&self, item: u64, at: i64) -> f64 {
        let h = HALF_LIFE.as_nanos() as f64;
        self.writes_to(item)
            .map(|a| a.weight * (-((at - a.ts_ns) as f64) / h).exp2())
            .sum()
    }

    fn writes_to(&self, item: u64) -> impl Iterator<Item = &Acked> {
        self.acked.iter().filter(move |a| a.item == item)
    }

    /// No two acknowledged writes share an id: a restarted replica continued its sequence.
    fn assert_ids_unique(&self) {
        let mut seen = HashSet::new();
        for a in &self.acked {
            assert!(
                seen.insert((a.id.origin, a.id.seq)),
                "event id {:?} was acknowledged twice (second time for {a:?})",
                a.id
            );
        }
    }
}

/// Polls `check` every 5 ms until it holds, failing with its last description after
/// [`WITHIN`].
async fn wait_until(what: &str, mut check: impl FnMut() -> (bool, String)) -> Duration {
    let start = Instant::now();
    loop {
        let (done, state) = check();
        if done {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < WITHIN,
            "{what}: not reached within {WITHIN:?}; last seen {state}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn applied(c: &Cluster, nodes: &[u16]) -> Vec<u64> {
    nodes
        .iter()
        .map(|&n| c.db(n).events_applied().unwrap())
        .collect()
}

/// Waits until each of `nodes` has applied `n` events.
async fn wait_applied(c: &Cluster, nodes: &[u16], n: u64) -> Duration {
    wait_until(&format!("nodes {nodes:?} hold {n} events"), || {
        let a = applied(c, nodes);
        (a.iter().all(|&x| x == n), format!("{a:?}"))
    })
    .await
}

async fn wait_connected(c: &Cluster) {
    wait_until("every replica hears every other", || {
        let silent: Vec<Vec<NodeId>> = c
            .open_ids()
            .iter()
            .map(|&n| c.db(n).unreachable_peers().unwrap())
            .collect();
        (silent.iter().all(Vec::is_empty), format!("{silent:?}"))
    })
    .await;
}

/// Waits until both survivors count the closed node unreachable, so that reopening it is
/// a reconnection (which starts a reconciliation), not a blip their retransmissions cover.
async fn wait_noticed_down(c: &Cluster, id: u16) {
    let others: Vec<u16> = (0..REPLICAS).filter(|&n| n != id).collect();
    wait_until(
        &format!("nodes {others:?} count node {id} unreachable"),
        || {
            let silent: Vec<Vec<NodeId>> = others
                .iter()
                .map(|&n| c.db(n).unreachable_peers().unwrap())
                .collect();
            let noticed = silent.iter().all(|s| s.contains(&NodeId(id)));
            (noticed, format!("{silent:?}"))
        },
    )
    .await;
}

/// Every replica holds exactly the acknowledged writes: the same total, and per item the
/// same all-time count and weight sum; scores are bit-identical across replicas and equal
/// the closed form. A write applied twice shows in the counts, a lost one everywhere.
fn assert_exactly_the_acked_writes(c: &Cluster, oracle: &Oracle) {
    oracle.assert_ids_unique();
    let at = oracle.read_at();
    assert_eq!(
        applied(c, &[0, 1, 2]),
        vec![oracle.total(); 3],
        "events applied per node"
    );
    for item in 0..ITEMS {
        let count = oracle.writes_to(item).count() as u64;
        let weight_sum: f64 = oracle.writes_to(item).map(|a| a.weight).sum();
        let expected = oracle.score(item, at);
        let reference = c
            .db(0)
            .read_decay_score_at(EntityId(item), "view", ts(at))
            .unwrap();
        assert_close(reference, expected, &format!("node 0, item {item} score"));
        for node in 0..REPLICAS {
            let db = c.db(node);
            let w = db
                .read_window_at(EntityId(item), "view", Window::AllTime, ts(at))
                .unwrap();
            assert_eq!(w.count, count, "node {node}, item {item}: all-time count");
            assert_close(
                w.weight_sum,
                weight_sum,
                &format!("node {node}, item {item}: all-time weight sum"),
            );
            let score = db
                .read_decay_score_at(EntityId(item), "view", ts(at))
                .unwrap();
            assert!(
                score == reference,
                "node {node}, item {item}: score {score} differs from node 0's {reference}"
            );
        }
    }
}

/// A replica closed cleanly misses the writes made while it is down; reopened from its
/// directory with the same peers, it recovers its own log, catches up on the rest, and
/// its new writes continue its sequence and reach the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_catches_up_on_what_it_missed() {
    let mut c = Cluster::open();
    let mut oracle = Oracle::default();
    wait_connected(&c).await;

    oracle.write_round_robin(&c, &[0, 1, 2], 30).await;
    wait_applied(&c, &[0, 1, 2], oracle.total()).await;
    let held = c.close(RESTARTED);
    assert_eq!(held, 30);

    // While it is down: local writes, and Replicated(1) ones (the surviving peer acks).
    for k in 0..40u16 {
        let concern = if k % 4 == 3 {
            WriteConcern::Replicated(1)
        } else {
            WriteConcern::Local
        };
        oracle.write(&c, k % 2, concern).await;
    }
    wait_applied(&c, &[0, 1], oracle.total()).await;
    wait_noticed_down(&c, RESTARTED).await;

    let reopened = c.reopen(RESTARTED);
    let report = reopened.recovery_report().clone();
    assert_eq!(
        report.events_replayed, held,
        "the reopened node replays what it held at close: {report:?}"
    );

    // Its new writes must take fresh sequence numbers after the ones its log holds.
    oracle.write_round_robin(&c, &[0, 1, 2], 15).await;
    let own: Vec<u64> = oracle
        .acked
        .iter()
        .filter(|a| a.node == RESTARTED)
        .map(|a| a.id.seq)
        .collect();
    assert_eq!(own, (1..=oracle.written_on(RESTARTED)).collect::<Vec<_>>());

    let took = wait_applied(&c, &[0, 1, 2], oracle.total()).await;
    eprintln!("caught up {took:?} after the last write");
    assert_exactly_the_acked_writes(&c, &oracle);
}

/// The replica takes writes while cut off, so no peer has them, and is closed before it
/// can ship them. Reopened, its retained log is empty, so it must ship them from its
/// recovered state; they must reach the others exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_a_replica_made_before_closing_reach_the_others_once_it_reopens() {
    let mut c = Cluster::open();
    let mut oracle = Oracle::default();
    wait_connected(&c).await;
    oracle.write_round_robin(&c, &[0, 1, 2], 21).await;
    wait_applied(&c, &[0, 1, 2], oracle.total()).await;

    let cut = c.isolate(RESTARTED);
    let (before, own_before) = (oracle.total(), oracle.written_on(RESTARTED));
    for k in 0..12u16 {
        // A third on the isolated node, the rest on the two connected ones.
        oracle.write(&c, k % 3, WriteConcern::Local).await;
    }
    let stranded = oracle.written_on(RESTARTED) - own_before;
    assert_eq!(stranded, 4, "writes made on the isolated node");
    wait_applied(&c, &[0, 1], oracle.total() - stranded).await;
    assert_eq!(
        c.db(RESTARTED).events_applied().unwrap(),
        before + stranded,
        "the isolated node received writes through its partition"
    );
    let held = c.close(RESTARTED);
    assert_eq!(
        applied(&c, &[0, 1]),
        vec![oracle.total() - stranded; 2],
        "the others received the isolated node's writes"
    );
    drop(cut);

    oracle.write_round_robin(&c, &[0, 1], 10).await;
    wait_applied(&c, &[0, 1], oracle.total() - stranded).await;
    wait_noticed_down(&c, RESTARTED).await;
    let reopened = c.reopen(RESTARTED);
    assert_eq!(reopened.recovery_report().events_replayed, held);

    let took = wait_applied(&c, &[0, 1, 2], oracle.total()).await;
    eprintln!("caught up {took:?} after reopening");
    assert_exactly_the_acked_writes(&c, &oracle);
}
