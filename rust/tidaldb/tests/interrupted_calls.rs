//! Long calls stopped from outside (`tidaldb::interrupt`): they stop at their next safe
//! point and leave what they finished, exactly: the virtual time run, the chunks of a bulk
//! write applied (and committed, so a reopen finds them), and nothing else.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tidaldb::interrupt::{self, CHECK_INTERVAL};
use tidaldb::runtime::BULK_CHUNK;
use tidaldb::sim::{ClusterConfig, SimulatedCluster};
use tidaldb::{EntityId, RegionId, Schema, TidalDb, TidalError, Timestamp};

mod common;

const HOUR: Duration = Duration::from_secs(3600);
const YEARS: Duration = Duration::from_secs(10 * 365 * 86_400);
const T0: i64 = 1_700_000_000_000_000_000;

fn schema() -> Schema {
    common::view_signal(HOUR).add().build().unwrap()
}

/// A check that lets `passes` checks through, then stops the call.
fn stop_after(passes: u32) -> impl FnMut() -> tidaldb::Result<()> + 'static {
    let seen = Rc::new(Cell::new(0));
    move || {
        seen.set(seen.get() + 1);
        if seen.get() > passes {
            Err(interrupt::interrupted("by the test"))
        } else {
            Ok(())
        }
    }
}

fn open(dir: &Path) -> TidalDb {
    let builder = TidalDb::builder().with_data_dir(dir);
    builder.with_schema(schema()).open().unwrap()
}

fn elapsed(cluster: &SimulatedCluster, since: Timestamp) -> Duration {
    Duration::from_nanos((cluster.now().as_nanos() - since.as_nanos()) as u64)
}

#[test]
fn a_stopped_run_keeps_the_time_it_ran_and_an_unchecked_run_runs_whole() {
    let cluster = SimulatedCluster::build(ClusterConfig::new(schema())).unwrap();
    let start = cluster.now();
    let began = Instant::now();
    let ran = interrupt::scope(stop_after(0), || cluster.try_run_for("seconds", YEARS));
    assert!(
        matches!(ran, Err(TidalError::Interrupted { written: 0, .. })),
        "{ran:?}"
    );
    assert!(
        began.elapsed() < 20 * CHECK_INTERVAL,
        "{:?}",
        began.elapsed()
    );
    let part = elapsed(&cluster, start);
    assert!(part > Duration::ZERO && part < YEARS / 100, "{part:?}");
    // The cluster goes on from there, and `run_for` ignores the scope it runs in.
    let second = cluster.now();
    interrupt::scope(stop_after(0), || {
        cluster.run_for(Duration::from_secs(60));
        Ok(())
    })
    .unwrap();
    assert_eq!(elapsed(&cluster, second), Duration::from_secs(60));
}

#[test]
fn a_stopped_wait_for_convergence_leaves_a_cluster_that_converges_later() {
    let cluster = SimulatedCluster::build(ClusterConfig::new(schema())).unwrap();
    let cut = [
        cluster.inject_partition(RegionId(0), RegionId(1)).unwrap(),
        cluster.inject_partition(RegionId(0), RegionId(2)).unwrap(),
    ];
    cluster
        .node(RegionId(0))
        .unwrap()
        .signal("view", EntityId(1), 1.0)
        .unwrap();
    let start = cluster.now();
    let waited = interrupt::scope(stop_after(1), || cluster.await_full_convergence(YEARS));
    assert!(
        matches!(waited, Err(TidalError::Interrupted { .. })),
        "{waited:?}"
    );
    assert!(elapsed(&cluster, start) < YEARS / 100);
    drop(cut);
    cluster.reconcile_all();
    cluster
        .await_full_convergence(Duration::from_secs(10))
        .unwrap();
}

#[test]
fn a_stopped_bulk_write_keeps_whole_chunks_and_says_how_many_events() {
    let dir = tempfile::tempdir().unwrap();
    let n = 600 * BULK_CHUNK;
    let ids: Vec<EntityId> = (0..n).map(|i| EntityId((i % 1000) as u64)).collect();
    let weights = vec![1.0; n];
    let ts: Vec<Timestamp> = (0..n)
        .map(|i| Timestamp::from_nanos(T0 + i as i64).unwrap())
        .collect();
    let db = open(dir.path());
    db.signal("view", EntityId(7), 1.0, Some(ts[0])).unwrap();
    // Stopped at the third check: 100 ms or more into a batch that takes longer.
    let wrote = interrupt::scope(stop_after(2), || {
        db.signal_batch("view", &ids, &weights, Some(&ts))
    });
    let written = match wrote {
        Err(TidalError::Interrupted { written, .. }) => written,
        other => panic!("the batch was not stopped: {other:?}"),
    };
    assert!(written < n && written % BULK_CHUNK == 0, "{written}");
    assert_eq!(db.events_applied().unwrap(), 1 + written as u64);
    db.close().unwrap();
    let reopened = open(dir.path());
    assert_eq!(reopened.events_applied().unwrap(), 1 + written as u64);
    // Item 7's events: the single write, and those among the batch's first `written`.
    let at = Timestamp::from_nanos(T0 + 3_600_000_000_000).unwrap();
    let mut times = vec![ts[0]];
    times.extend((7..written).step_by(1000).map(|i| ts[i]));
    common::assert_close(
        reopened
            .read_decay_score_at(EntityId(7), "view", at)
            .unwrap(),
        common::unit_decay_sum(&times, at, HOUR),
        "item 7",
    );
}
