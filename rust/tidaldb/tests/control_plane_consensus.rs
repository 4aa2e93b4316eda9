//! The control plane replicated by Raft, on the simulator: leaders cut off from the
//! majority are replaced from it, commands keep committing through a new Raft leader, bad
//! commands never enter the log, and random schedules of partitions and crashes keep the
//! invariants of consensus.
//!
//! The random schedules run `TIDALDB_CONTROL_SEEDS` seeds (200 by default; 10,000 on
//! demand). A failure prints its seed; replay it alone with
//! `TIDALDB_CONTROL_SEED=<seed> cargo test -p tidaldb --test control_plane_consensus`.

use std::time::Duration;

use tidaldb::control::{Command, GroupId, LoggedCommand};
use tidaldb::event::TenantId;
use tidaldb::schema::{NodeId, RegionId, ShardId};
use tidaldb::sim::{QuorumConfig, SimControlQuorum, SimRng};
use tidaldb::tenancy::{ShardAssignment, TenantConfig};
use tidaldb::{Result, TidalError};

const GROUP: GroupId = GroupId {
    tenant: TenantId::DEFAULT,
    shard: ShardId(0),
};

fn quorum(seed: u64) -> Result<SimControlQuorum> {
    SimControlQuorum::new(QuorumConfig {
        seed,
        ..QuorumConfig::default()
    })
}

fn register(k: u64) -> Command {
    Command::RegisterTenant(TenantConfig::new(TenantId(k), format!("t{k}")))
}

fn host(region: u16) -> ShardAssignment {
    ShardAssignment {
        shard_id: ShardId(0),
        region_id: RegionId(region),
    }
}

/// Runs until a Raft leader is up, for at most `limit`.
fn await_raft_leader(q: &mut SimControlQuorum, limit: Duration) -> Option<usize> {
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while waited < limit {
        if let Some(l) = q.raft_leader() {
            return Some(l);
        }
        q.run_for(step);
        waited += step;
    }
    None
}

fn logs(q: &SimControlQuorum) -> Vec<Vec<LoggedCommand>> {
    (0..q.regions() as usize)
        .filter_map(|i| q.command_log(i).map(<[_]>::to_vec))
        .collect()
}

fn assert_converged(q: &SimControlQuorum, context: &str) {
    let all = logs(q);
    assert_eq!(
        all.len(),
        q.regions() as usize,
        "{context}: a voter is down"
    );
    assert!(
        all.windows(2).all(|w| w[0] == w[1]),
        "{context}: the voters' committed commands differ"
    );
    assert!(q.violations().is_empty(), "{context}: {:?}", q.violations());
}

#[test]
fn a_group_leader_cut_off_from_the_majority_is_replaced_from_it() -> Result<()> {
    let mut q = quorum(7)?;
    await_raft_leader(&mut q, Duration::from_secs(2)).expect("a Raft leader is elected");
    q.run_for(Duration::from_millis(500));
    assert_eq!(q.group_leader(1), Some(NodeId(0)));
    // Region 0 holds the group's leader, and maybe the Raft leader.
    q.isolate(RegionId(0));
    q.run_for(Duration::from_secs(3));
    let majority_leader = q.raft_leader().expect("the majority elects a Raft leader");
    assert_ne!(majority_leader, 0, "the cut-off voter cannot lead");
    let new_leader = q.group_leader(1).expect("the group has a leader");
    assert_ne!(new_leader, NodeId(0), "the minority's leader was replaced");
    assert_eq!(q.group_leader(2), Some(new_leader));
    // The cut-off voter learned nothing of it.
    assert_eq!(q.group_leader(0), Some(NodeId(0)));
    q.heal_all();
    q.run_for(Duration::from_secs(3));
    assert_converged(&q, "after the heal");
    assert_eq!(q.group_leader(0), Some(new_leader));
    let acting = q.acting_leaders();
    assert_eq!(acting.len(), 1, "exactly one replica leads: {acting:?}");
    assert_eq!(acting[0].0, new_leader);
    Ok(())
}

#[test]
fn commands_keep_committing_through_a_new_raft_leader_after_a_crash() -> Result<()> {
    let mut q = quorum(11)?;
    let first = await_raft_leader(&mut q, Duration::from_secs(2)).expect("a leader");
    q.propose(first, register(1))?;
    q.run_for(Duration::from_millis(300));
    q.crash_voter(first);
    let second = await_raft_leader(&mut q, Duration::from_secs(3)).expect("a new leader");
    assert_ne!(second, first);
    q.propose(second, register(2))?;
    // Proposed at a follower too, once it has heard from the new leader: it is
    // forwarded to the leader.
    q.run_for(Duration::from_millis(100));
    let follower = (0..3)
        .find(|&i| i != first && i != second)
        .expect("a third voter");
    q.propose(follower, register(3))?;
    q.run_for(Duration::from_millis(500));
    q.restart_voter(first)?;
    q.run_for(Duration::from_secs(2));
    assert_converged(&q, "after the restart");
    assert_eq!(q.acknowledged().len(), 3, "every proposal was acknowledged");
    let log = q.command_log(first).expect("voter is up");
    for k in 1..=3 {
        assert_eq!(
            log.iter().filter(|c| c.command == register(k)).count(),
            1,
            "tenant {k} registered exactly once"
        );
    }
    Ok(())
}

/// A follower forwards an operator's command to the Raft leader; the leader dies before
/// it arrives, and raft-rs drops it silently. The follower proposes an idempotent command
/// again to the next leader, and it commits once; one that is not idempotent is failed
/// instead (it might have committed), and nothing of it enters the log.
#[test]
fn an_operator_command_lost_with_its_leader_is_proposed_again_or_failed() -> Result<()> {
    let mut q = quorum(5)?;
    let leader = await_raft_leader(&mut q, Duration::from_secs(2)).expect("a leader");
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    q.run_for(Duration::from_millis(100)); // the follower hears of its leader
    let drain = Command::Drain(host(follower as u16));
    let drain_id = q.propose(follower, drain.clone())?;
    let register_id = q.propose(follower, register(5))?;
    q.crash_voter(leader); // before either forward is delivered
    let next = await_raft_leader(&mut q, Duration::from_secs(3)).expect("a new leader");
    assert_ne!(next, leader);
    q.run_for(Duration::from_secs(1));
    q.restart_voter(leader)?;
    q.run_for(Duration::from_secs(2));
    assert_converged(&q, "after the restart");
    assert_eq!(
        q.acknowledged().get(&drain_id),
        Some(&drain),
        "the drain was acknowledged"
    );
    assert!(
        !q.acknowledged().contains_key(&register_id),
        "the registration was failed"
    );
    let log = q.command_log(next).expect("voter is up");
    assert_eq!(log.iter().filter(|c| c.command == drain).count(), 1);
    assert_eq!(log.iter().filter(|c| c.command == register(5)).count(), 0);
    Ok(())
}

#[test]
fn refused_commands_leave_the_committed_log_unchanged() -> Result<()> {
    let mut q = quorum(3)?;
    let leader = await_raft_leader(&mut q, Duration::from_secs(2)).expect("a leader");
    q.propose(leader, register(9))?;
    q.run_for(Duration::from_millis(300));
    let before = logs(&q);
    let refused = [
        Command::Drain(host(7)),
        Command::Promote {
            group: GROUP,
            node: NodeId(42),
            from_term: 1,
        },
        register(9),
        Command::BeginMigration {
            tenant: TenantId(9),
            source: host(0),
            target: host(0),
        },
    ];
    // The leader refuses each at once. A follower refuses bad input at once too, but
    // leaves a conflict with the state to the log (its own plane may lag): the log
    // refuses it there, and it changes nothing.
    let mut left_to_the_log = Vec::new();
    for command in refused {
        for voter in 0..3 {
            match q.propose(voter, command.clone()) {
                Err(e) => assert!(
                    !matches!(e, TidalError::Unavailable(_)),
                    "refused for what it is, not for want of a leader: {e}"
                ),
                Ok(id) => {
                    assert_ne!(voter, leader, "the leader refuses {command:?} at once");
                    left_to_the_log.push(id);
                }
            }
        }
    }
    q.run_for(Duration::from_millis(300));
    assert_eq!(logs(&q), before, "nothing entered the plane's log");
    for id in left_to_the_log {
        assert!(
            !q.acknowledged().contains_key(&id),
            "{id:?} was refused when applied"
        );
    }
    // A voter cut off from every other cannot commit: it refuses once it knows no leader.
    q.isolate(RegionId(leader as u16));
    q.run_for(Duration::from_secs(2));
    let e = q.propose(leader, register(10)).expect_err("no leader");
    assert!(matches!(e, TidalError::Unavailable(_)), "{e}");
    Ok(())
}

/// One random schedule: partitions (often isolating the Raft leader), crashes of voters
/// and replicas, and proposals at random voters; then everything heals and restarts.
fn random_schedule(seed: u64) -> Result<SimControlQuorum> {
    let mut q = quorum(seed)?;
    let mut rng = SimRng::new(seed ^ 0x5EED);
    let mut next_tenant = 1;
    for _ in 0..24 {
        match rng.below(8) {
            0 | 1 => {
                if let Some(l) = q.raft_leader() {
                    q.isolate(RegionId(l as u16));
                }
            }
            2 => {
                let a = rng.below(3) as u16;
                let b = (a + 1 + rng.below(2) as u16) % 3;
                q.partition(RegionId(a), RegionId(b), rng.chance(0.5));
            }
            3 => q.heal_all(),
            4 => {
                let v = rng.below(3) as usize;
                if q.voter_is_up(v) {
                    q.crash_voter(v);
                } else {
                    q.restart_voter(v)?;
                }
            }
            5 => q.set_replica_up(RegionId(rng.below(3) as u16), rng.chance(0.6)),
            _ => {
                // Refusals (no leader known, a voter down) are expected under faults.
                let _ = q.propose(rng.below(3) as usize, register(next_tenant));
                next_tenant += 1;
            }
        }
        q.run_for(Duration::from_millis(50 + rng.below(600)));
    }
    q.heal_all();
    for v in 0..3 {
        q.restart_voter(v)?;
        q.set_replica_up(RegionId(v as u16), true);
    }
    q.run_for(Duration::from_secs(5));
    Ok(q)
}

/// What a schedule exercised: Raft leaders elected, and group failovers committed.
struct Exercised {
    raft_leaders: usize,
    group_leaders: usize,
}

fn check_schedule(seed: u64) -> std::result::Result<Exercised, String> {
    let q = random_schedule(seed).map_err(|e| e.to_string())?;
    if !q.violations().is_empty() {
        return Err(format!("{:?}", q.violations()));
    }
    let all = logs(&q);
    if !all.windows(2).all(|w| w[0] == w[1]) {
        return Err("the voters' committed commands differ after the heal".into());
    }
    for command in q.acknowledged().values() {
        let n = all[0].iter().filter(|c| c.command == *command).count();
        if n != 1 {
            return Err(format!(
                "an acknowledged command is in the log {n} times: {command:?}"
            ));
        }
    }
    let acting = q.acting_leaders();
    let leader = q.group_leader(0);
    if acting.len() != 1 || Some(acting[0].0) != leader {
        return Err(format!(
            "after the heal: acting {acting:?}, committed {leader:?}"
        ));
    }
    Ok(Exercised {
        raft_leaders: q.raft_terms_led(),
        group_leaders: q.group_terms_led(),
    })
}

#[test]
fn random_schedules_keep_the_invariants_of_consensus() {
    let seeds: Vec<u64> = match std::env::var("TIDALDB_CONTROL_SEED") {
        Ok(s) => vec![s.parse().expect("TIDALDB_CONTROL_SEED is a number")],
        Err(_) => {
            let n = std::env::var("TIDALDB_CONTROL_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            (0..n).collect()
        }
    };
    let mut failed = Vec::new();
    let (mut raft_moves, mut failovers) = (0, 0);
    for &seed in &seeds {
        match check_schedule(seed) {
            Ok(e) => {
                raft_moves += usize::from(e.raft_leaders > 1);
                failovers += usize::from(e.group_leaders > 1);
            }
            Err(e) => failed.push(format!(
                "seed {seed}: {e}\n  replay: TIDALDB_CONTROL_SEED={seed} cargo test -p tidaldb --test control_plane_consensus"
            )),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // The schedules must really move leadership, or the invariants hold vacuously.
    if seeds.len() >= 50 {
        assert!(
            raft_moves * 2 >= seeds.len() && failovers * 4 >= seeds.len(),
            "too few schedules moved leadership: Raft in {raft_moves}, groups in {failovers} of {}",
            seeds.len()
        );
    }
}

#[test]
fn a_schedule_replays_identically_from_its_seed() -> Result<()> {
    let a = random_schedule(42)?;
    let b = random_schedule(42)?;
    assert_eq!(logs(&a), logs(&b));
    assert_eq!(a.acknowledged(), b.acknowledged());
    assert_eq!(a.now(), b.now());
    Ok(())
}
