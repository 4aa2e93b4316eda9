//! Helpers shared by the integration suites: a fixed start time and a seedable generator.

#![allow(dead_code)] // each suite uses its own subset

use std::time::Duration;

use std::sync::Arc;
use tidaldb::crdt::HlcTimestamp;

use tidaldb::ledger::Ledger;
use tidaldb::node::{
    ClientOp, Input, Node, NodeConfig, NodeRole, Outputs, PeerAddr, WriteConcern, WriteRequest,
};
use tidaldb::schema::SignalIdx;
use tidaldb::schema::{SchemaBuilder, SignalBuilder};
use tidaldb::{
    DecaySpec, EntityId, EntityKind, Event, EventBody, EventId, NodeId, RegionId, Schema, TenantId,
    TidalError, Timestamp,
};

/// 2023-11-14, in nanoseconds: well in the past, so no write is refused as future.
pub const T0: i64 = 1_700_000_000_000_000_000;

pub fn ts(ns: i64) -> Timestamp {
    Timestamp::from_nanos(ns).unwrap()
}

/// splitmix64: small, seedable, and the same on every machine, so a failing seed replays.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed from `TIDALDB_SEED`, else a fresh one from the clock. Keep the report alive
/// for the test's length: if the test fails, it prints the seed and the command that
/// replays it (`suite`: the test target's name).
pub fn seed(suite: &'static str) -> SeedReport {
    let seed = std::env::var("TIDALDB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    SeedReport(seed, suite)
}

pub struct SeedReport(pub u64, &'static str);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "seed {0}; replay with TIDALDB_SEED={0} cargo test -p tidaldb --test {1}",
                self.0, self.1
            );
        }
    }
}

/// Event `id`: `weight` of `signal` on `entity` at `ts`, with no client tag.
pub fn signal_event(
    id: EventId,
    signal: SignalIdx,
    entity: EntityId,
    weight: f64,
    ts: Timestamp,
) -> Event {
    Event {
        id,
        hlc: HlcTimestamp::default(),
        tenant: TenantId::DEFAULT,
        body: EventBody::Signal {
            signal,
            entity,
            weight,
            ts,
            claims_entity: false,
        },
        client: None,
    }
}

/// A schema under construction whose first signal is an exponentially decaying item
/// signal "view"; add windows, more signals, then `.add().build()`.
pub fn view_signal(half_life: Duration) -> SignalBuilder {
    Schema::builder().signal(
        "view",
        EntityKind::Item,
        DecaySpec::Exponential { half_life },
    )
}

/// "view" (exponential, `half_life`, 1h and 24h windows) and "lin" (linear, `lifetime`):
/// both decay shapes and the window rings, for suites that compare two write paths.
pub fn windowed_view_and_linear(half_life: Duration, lifetime: Duration) -> Schema {
    view_signal(half_life)
        .windows(&[tidaldb::Window::OneHour, tidaldb::Window::TwentyFourHours])
        .add()
        .signal("lin", EntityKind::Item, DecaySpec::Linear { lifetime })
        .add()
        .build()
        .unwrap()
}

/// An ephemeral database over `schema` applying bulk writes on `threads` threads.
pub fn ephemeral_db(schema: Schema, threads: usize) -> tidaldb::TidalDb {
    tidaldb::TidalDb::builder()
        .ephemeral()
        .ingest_threads(threads)
        .with_schema(schema)
        .open()
        .unwrap()
}

/// A database over `schema` in `dir`, opened (again) with every other option its default.
pub fn open_in(dir: &std::path::Path, schema: Schema) -> tidaldb::TidalDb {
    tidaldb::TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema)
        .open()
        .unwrap()
}

/// `schema` and, after its signals, an item signal "like" with a one-day half-life.
pub fn daily_like(schema: SchemaBuilder) -> SignalBuilder {
    schema.signal(
        "like",
        EntityKind::Item,
        DecaySpec::Exponential {
            half_life: Duration::from_secs(24 * 3600),
        },
    )
}

/// An ephemeral database over "view" (6-hour half-life, 1h and 24h windows, velocity),
/// "like" (1-day half-life) and "trial" (linear, 10-hour lifetime), in that order: the
/// schema of the read suites.
pub fn view_like_trial_db() -> tidaldb::TidalDb {
    let views = view_signal(Duration::from_secs(6 * 3600))
        .windows(&[tidaldb::Window::OneHour, tidaldb::Window::TwentyFourHours])
        .velocity(true)
        .add();
    let schema = daily_like(views)
        .add()
        .signal(
            "trial",
            EntityKind::Item,
            DecaySpec::Linear {
                lifetime: Duration::from_secs(10 * 3600),
            },
        )
        .add()
        .build()
        .unwrap();
    tidaldb::TidalDb::builder()
        .ephemeral()
        .with_schema(schema)
        .open()
        .unwrap()
}

/// One "view" signal with a one-hour half-life and a one-hour window (so it keeps counts):
/// the schema of the tenancy suites.
pub fn hourly_view_schema() -> Schema {
    view_signal(Duration::from_secs(3600))
        .windows(&[tidaldb::Window::OneHour])
        .add()
        .build()
        .expect("valid schema")
}

/// The analytical score `Σ 2^(-(at - t_i)/h)` of unit-weight events written at `times`:
/// the oracle the replicated suites compare every read with.
pub fn unit_decay_sum(times: &[Timestamp], at: Timestamp, half_life: Duration) -> f64 {
    decay_sum(times.iter().map(|t| (*t, 1.0)), at, half_life)
}

/// The analytical score `Σ w·2^(-(at - t)/h)` of events `(t, w)`.
pub fn decay_sum(
    events: impl IntoIterator<Item = (Timestamp, f64)>,
    at: Timestamp,
    half_life: Duration,
) -> f64 {
    let h = half_life.as_nanos() as f64;
    events
        .into_iter()
        .map(|(t, w)| w * (-((at.as_nanos() - t.as_nanos()) as f64) / h).exp2())
        .sum()
}

/// Asserts that `actual` is within 1e-9 (relative) of the analytical `expected`.
pub fn assert_close(actual: f64, expected: f64, what: &str) {
    let rel = ((actual - expected) / expected.max(f64::MIN_POSITIVE)).abs();
    assert!(
        rel <= 1e-9,
        "{what}: {actual} differs from the analytical {expected} by {rel:e} (relative)"
    );
}

/// Replica `id` of three runtime replicas, one per region, that all list each other: node 0
/// leads. The same configuration at every open, with timings short enough for tests.
pub fn runtime_replica_config(id: u16) -> NodeConfig {
    NodeConfig {
        id: NodeId(id),
        role: if id == 0 {
            NodeRole::Leader
        } else {
            NodeRole::Follower
        },
        peers: (0..3)
            .map(|n| PeerAddr::new(NodeId(n), RegionId(n)))
            .collect(),
        heartbeat_interval: Duration::from_millis(20),
        peer_timeout: Duration::from_millis(250),
        repair_after: Duration::from_millis(100),
        ..NodeConfig::default()
    }
}

/// The all-time count of `item`'s "view" events in each of the first `regions` regions.
pub fn all_time_counts(
    cluster: &tidaldb::sim::SimulatedCluster,
    item: tidaldb::EntityId,
    regions: u16,
) -> tidaldb::Result<Vec<u64>> {
    (0..regions)
        .map(|r| {
            Ok(cluster
                .node(RegionId(r))?
                .read_window(item, "view", tidaldb::Window::AllTime)?
                .count)
        })
        .collect()
}

/// One "view" signal with a one-day half-life and a one-hour window: the schema of the
/// replication, retry and failover suites.
pub fn daily_view_schema() -> Schema {
    view_signal(Duration::from_secs(24 * 3600))
        .windows(&[tidaldb::Window::OneHour])
        .add()
        .build()
        .expect("valid schema")
}

/// The all-time count of `item`'s "view" events on the replica in region `r`.
pub fn all_time_count(
    cluster: &tidaldb::sim::SimulatedCluster,
    r: RegionId,
    item: tidaldb::EntityId,
) -> tidaldb::Result<u64> {
    Ok(cluster
        .node(r)?
        .read_window(item, "view", tidaldb::Window::AllTime)?
        .count)
}

/// A sans-IO follower `id` over `schema`, whose peers are `peers`, each in its own region.
pub fn sans_io_node(id: u16, peers: &[u16], schema: Arc<Schema>) -> Node {
    let cfg = NodeConfig {
        id: NodeId(id),
        peers: peers
            .iter()
            .map(|p| PeerAddr::new(NodeId(*p), RegionId(*p)))
            .collect(),
        role: NodeRole::Follower,
        ..NodeConfig::default()
    };
    Node::new(cfg, Ledger::new(schema), Default::default())
}

/// Delivers every message in `out` addressed to `to`, from `from`, and confirms what `to`
/// persisted as durable; returns what `to` emits.
pub fn deliver(out: &mut Outputs, from: &Node, to: &mut Node, now: Timestamp) -> Outputs {
    let mut reply = Outputs::default();
    for (dest, msg) in out.messages.drain(..) {
        if dest == to.id() {
            to.handle(
                now,
                Input::Peer {
                    from: from.id(),
                    msg,
                },
                &mut reply,
            );
        }
    }
    to.handle(now, Input::Synced, &mut reply);
    reply
}

/// One local client write of `entity` to `node`'s "view" signal, at `T0`, synced: the
/// event it was given, or the refusal.
pub fn client_write(node: &mut Node, entity: u64) -> Result<EventId, TidalError> {
    let op = ClientOp::Signal {
        signal: node.ledger().schema().resolve("view").unwrap(),
        entity: EntityId(entity),
        weight: 1.0,
        ts: None,
    };
    let mut out = Outputs::default();
    let request = WriteRequest {
        id: 1,
        ops: &[op],
        concern: WriteConcern::Local,
        tag: None,
    };
    node.handle(ts(T0), Input::Write(request), &mut out);
    node.handle(ts(T0), Input::Synced, &mut out);
    out.replies
        .pop()
        .expect("a local write is answered")
        .1
        .map(|ack| ack.event_id())
}

/// `to` asks `from` for what it lacks, and applies the answer.
pub fn catch_up(to: &mut Node, from: &mut Node) {
    let mut ask = Outputs::default();
    to.handle(ts(T0), Input::Reconcile, &mut ask);
    let mut answer = deliver(&mut ask, to, from, ts(T0));
    deliver(&mut answer, from, to, ts(T0));
}
