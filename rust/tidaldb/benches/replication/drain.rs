//! Section 6: draining a host under 25K signals/s, against the link latency and the
//! heartbeat interval.
//!
//! `RollingUpgradeCoordinator::drain` runs the simulation itself until the host's lag is 0,
//! which would stop the load for the whole drain. So the drain is issued with a zero step
//! timeout (the command is applied and the condition checked once), and the bench keeps the
//! load going and polls the same condition by hand every millisecond of virtual time.

use std::time::{Duration, Instant};

use tidaldb::control::Decision;
use tidaldb::node::{ClientOp, WriteConcern};
use tidaldb::schema::SignalIdx;
use tidaldb::sim::{RollingUpgradeCoordinator, SimulatedCluster};
use tidaldb::tenancy::ShardAssignment;
use tidaldb::{EntityId, NodeId, RegionId, TidalError};

use crate::common::{config, percentile, virtual_ms};
use crate::{ENTITIES, REGIONS, Row, S0, WARM_UP, row};

const DRAIN_SEEDS: u64 = 20;
/// The load runs this long before the drain, plus a seeded 0–49 ms, so that drains land
/// at every phase of the heartbeat.
const LOAD_WARM_UP: Duration = Duration::from_secs(2);
/// One load batch and one poll per millisecond of virtual time.
const STEP: Duration = Duration::from_millis(1);
/// 25 signals per millisecond: 25K signals/s.
const PER_STEP: usize = 25;
/// In the variant where the follower takes writes, its region's clients write this many of
/// each millisecond's signals on it, until it is drained.
const LOCAL_SHARE: usize = 8;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq)]
enum Host {
    /// Region 1's host; the follower takes no writes.
    Follower,
    /// Region 1's host; the follower takes a third of the load until it is drained.
    WritingFollower,
    /// The leader's host (region 0): leadership moves and the load follows it.
    Leader,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Follower => "follower's host (region 1)",
            Host::WritingFollower => "follower's host (region 1), 8K/s of the load written on it",
            Host::Leader => "leader's host (region 0)",
        }
    }
}

struct DrainRun {
    /// Virtual ms from the drain to lag 0 (1 ms resolution).
    lag_zero: f64,
    /// Virtual ms from the drain to the promotion of a new leader, when one was needed.
    promoted: Option<f64>,
    /// The drained node's own events that some peer lacked when it was drained.
    backlog: u64,
    /// Writes refused during the run.
    refused: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// 25K signals/s on the default tenant, to its current leader (and, optionally, a share on
/// a follower), with the virtual time now as their timestamp.
struct Load {
    signal: SignalIdx,
    entity: u64,
    refused: u64,
}

impl Load {
    fn ops(&mut self, n: usize) -> Vec<ClientOp> {
        (0..n)
            .map(|_| {
                self.entity = (self.entity + 7_919) % ENTITIES;
                ClientOp::Signal {
                    signal: self.signal,
                    entity: EntityId(self.entity),
                    weight: 1.0,
                    ts: None,
                }
            })
            .collect()
    }

    /// Writes one millisecond's signals, then runs the simulation for that millisecond.
    fn step(&mut self, cluster: &SimulatedCluster, local: Option<NodeId>) {
        let on_local = if local.is_some() { LOCAL_SHARE } else { 0 };
        let ops = self.ops(PER_STEP - on_local);
        let written = cluster
            .leader_of(S0)
            .and_then(|l| cluster.submit(l, &ops, WriteConcern::Local, None));
        if written.is_err() {
            self.refused += ops.len() as u64;
        }
        if let Some(node) = local {
            let ops = self.ops(on_local);
            if cluster
                .submit(node, &ops, WriteConcern::Local, None)
                .is_err()
            {
                self.refused += ops.len() as u64;
            }
        }
        cluster.run_for(STEP);
    }
}

/// The drained node's lag is 0: every other up replica holds its own events, and the
/// control plane no longer has it lead the shard.
fn lag_zero(cluster: &SimulatedCluster, node: NodeId, peers: &[NodeId]) -> bool {
    let own = cluster
        .handle(node)
        .durable()
        .expect("the drained node stays up")
        .get(node);
    cluster.control_plane().leader_of(S0) != Some(node)
        && peers.iter().all(|p| {
            cluster
                .handle(*p)
                .durable()
                .is_ok_and(|vv| vv.get(node) >= own)
        })
}

fn drain_once(seed: u64, signal: SignalIdx, which: Host) -> DrainRun {
    let cluster = SimulatedCluster::build(config(seed)).expect("the cluster builds");
    cluster.run_for(WARM_UP);
    let region = match which {
        Host::Leader => cluster
            .handle(cluster.leader_of(S0).expect("a leader"))
            .region(),
        Host::Follower | Host::WritingFollower => RegionId(1),
    };
    let node = cluster.node_id(region, S0).expect("a replica");
    let peers: Vec<NodeId> = REGIONS
        .iter()
        .filter(|r| **r != region)
        .map(|r| cluster.node_id(*r, S0).expect("a replica"))
        .collect();
    if which != Host::Leader {
        assert_ne!(cluster.leader_of(S0).ok(), Some(node), "region 1 follows");
    }
    let local = (which == Host::WritingFollower).then_some(node);
    let mut load = Load {
        signal,
        entity: seed,
        refused: 0,
    };
    let warm_steps = LOAD_WARM_UP.as_millis() as u64 + splitmix(seed) % 50;
    for _ in 0..warm_steps {
        load.step(&cluster, local);
    }

    let own = cluster.handle(node).durable().expect("up").get(node);
    let backlog = peers
        .iter()
        .map(|p| own.saturating_sub(cluster.handle(*p).durable().expect("up").get(node)))
        .max()
        .unwrap_or(0);
    let mut coord = RollingUpgradeCoordinator::new(&cluster);
    // Zero: the coordinator applies the drain and checks the condition once, without
    // running the simulation.
    coord.step_timeout = Duration::ZERO;
    let drained_at = cluster.now();
    let mut done = match coord.drain(region, S0) {
        Ok(()) => true,
        Err(TidalError::Timeout(_)) => false,
        Err(e) => panic!("seed {seed}: the drain was refused: {e}"),
    };
    let host = ShardAssignment {
        shard_id: S0,
        region_id: region,
    };
    assert!(
        cluster.control_plane().is_drained(host),
        "seed {seed}: the drain stays applied after the coordinator's timeout"
    );
    let deadline = drained_at.as_nanos() + DRAIN_TIMEOUT.as_nanos() as i64;
    loop {
        let by_hand = lag_zero(&cluster, node, &peers);
        // The coordinator's own check, at this instant, agrees with the hand-rolled one.
        assert_eq!(
            by_hand, done,
            "seed {seed}: the bench's drain condition disagrees with the coordinator's"
        );
        if by_hand {
            break;
        }
        assert!(
            cluster.now().as_nanos() < deadline,
            "seed {seed}: the {} did not drain in {DRAIN_TIMEOUT:?} under load",
            which.name()
        );
        // The drained host takes no more client writes; the load follows the leader.
        load.step(&cluster, None);
        done = coord.drain(region, S0).is_ok();
    }
    let lag_zero = virtual_ms(drained_at, cluster.now());
    let promoted = (which == Host::Leader).then(|| {
        let at_ns = cluster
            .control_plane()
            .decisions()
            .iter()
            .find_map(|d| match d {
                Decision::Promote { at_ns, node: n, .. }
                    if *at_ns >= drained_at.as_nanos() && *n != node =>
                {
                    Some(*at_ns)
                }
                _ => None,
            })
            .expect("leadership moved off the drained host");
        (at_ns - drained_at.as_nanos()) as f64 / 1e6
    });
    DrainRun {
        lag_zero,
        promoted,
        backlog,
        refused: load.refused,
    }
}

pub(super) fn section_drain(view: SignalIdx, rows: &mut Vec<Row>) {
    let t = Instant::now();
    let cfg = config(0);
    let latency = cfg.links.latency.as_secs_f64() * 1e3;
    let jitter = cfg.links.jitter.as_secs_f64() * 1e3;
    let heartbeat = cfg.timing.heartbeat_interval.as_secs_f64() * 1e3;
    let tick = cfg.timing.tick.as_secs_f64() * 1e3;
    let repair = cfg.timing.repair_after.as_secs_f64() * 1e3;
    println!(
        "\n6. drain under load: 25K signals/s on the default tenant ({PER_STEP} every 1 ms of \
         virtual time, Local concern, to the current leader), drain after {} s + 0–49 ms, \
         then the load goes on and lag 0 is polled every 1 ms; {DRAIN_SEEDS} seeds, links \
         {latency:.0} ms ± {jitter:.0} ms, heartbeat {heartbeat:.0} ms, tick {tick:.0} ms",
        LOAD_WARM_UP.as_secs()
    );
    for which in [Host::Follower, Host::WritingFollower, Host::Leader] {
        let s = Instant::now();
        let runs: Vec<DrainRun> = (0..DRAIN_SEEDS)
            .map(|seed| drain_once(seed, view, which))
            .collect();
        let mut lag: Vec<f64> = runs.iter().map(|r| r.lag_zero).collect();
        lag.sort_by(f64::total_cmp);
        let mut backlog: Vec<f64> = runs.iter().map(|r| r.backlog as f64).collect();
        backlog.sort_by(f64::total_cmp);
        let mut promoted: Vec<f64> = runs.iter().filter_map(|r| r.promoted).collect();
        promoted.sort_by(f64::total_cmp);
        let refused: u64 = runs.iter().map(|r| r.refused).sum();
        let (min, p50, max) = (
            percentile(&lag, 0.0),
            percentile(&lag, 50.0),
            percentile(&lag, 100.0),
        );
        println!(
            "   {}: drain → lag 0 min {min:.0}, p50 {p50:.0}, max {max:.0} ms; own events \
             not yet on every peer at the drain p50 {:.0}, max {:.0}; writes refused {refused} \
             ({:.1} s wall)",
            which.name(),
            percentile(&backlog, 50.0),
            percentile(&backlog, 100.0),
            s.elapsed().as_secs_f64()
        );
        let mut measured = format!("p50 {p50:.0} / max {max:.0} ms");
        if !promoted.is_empty() {
            let (pp50, pmax) = (percentile(&promoted, 50.0), percentile(&promoted, 100.0));
            println!("      drain → promotion of a new leader: p50 {pp50:.0}, max {pmax:.0} ms");
            measured.push_str(&format!(" (promotion p50 {pp50:.0} / max {pmax:.0} ms)"));
        }
        let mut baseline = format!("link latency {latency:.0} ms / heartbeat {heartbeat:.0} ms");
        let mut ratio = format!(
            "p50 {:.2}× / max {:.2}× latency; p50 {:.2}× / max {:.2}× heartbeat",
            p50 / latency,
            max / latency,
            p50 / heartbeat,
            max / heartbeat
        );
        if which == Host::Leader {
            // The old leader's pushes still in flight when the peers learn the new term
            // are fenced, and shipped again only by the repair timer.
            println!(
                "      against repair_after ({repair:.0} ms): p50 {:.2} x, max {:.2} x",
                p50 / repair,
                max / repair
            );
            baseline.push_str(&format!(" (repair_after {repair:.0} ms)"));
            ratio.push_str(&format!(
                "; p50 {:.2}× / max {:.2}× repair_after",
                p50 / repair,
                max / repair
            ));
        }
        if which == Host::Follower {
            println!(
                "      a follower that takes no writes holds no event of its own, so its lag is \
                 0 as soon as it is drained"
            );
        }
        if refused > 0 {
            measured.push_str(&format!("; {refused} writes refused"));
        }
        rows.push(row(
            format!(
                "drain → lag 0 under 25K/s, {} (virtual), {DRAIN_SEEDS} seeds",
                which.name()
            ),
            measured,
            baseline,
            ratio,
            "",
            None,
        ));
    }
    println!(
        "   ({:.1} s wall for the section)",
        t.elapsed().as_secs_f64()
    );
}
