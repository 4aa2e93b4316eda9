//! Crash during migration: for every state, the source's host, the target's host, or the
//! driver itself fails in the middle of the next step; the step is resumed with a fresh
//! handle, and the migration completes with every acknowledged write counted exactly
//! once on the target and nothing left on the source.
//!
//! Replay one case: `cargo test -p tidaldb --test migration -- crashes::<name> --nocapture`;
//! each case's seed is fixed and printed when it fails.

use crate::common;

use std::time::Duration;

use tidaldb::control::MigrationState;
use tidaldb::sim::{ClusterConfig, SimulatedCluster, TenantMigration};
use tidaldb::tenancy::{TenantConfig, TenantId};
use tidaldb::{EntityId, RegionId, Result, Schema, ShardId, TidalError, Timestamp};

const T: TenantId = TenantId(9);
const ITEM: EntityId = EntityId(77);
const SOURCE: RegionId = RegionId(0);
const TARGET: RegionId = RegionId(2);

#[derive(Clone, Copy, Debug)]
enum Victim {
    Source,
    Target,
    Driver,
}

fn schema() -> Schema {
    common::hourly_view_schema()
}

struct Run {
    c: SimulatedCluster,
    acked: Vec<Timestamp>,
    refused: usize,
}

impl Run {
    /// Writes `n` signals; a write no replica could take is refused and not counted.
    fn write(&mut self, n: usize) {
        for _ in 0..n {
            self.c.run_for(Duration::from_millis(2));
            let now = self.c.now();
            match self.c.signal_for_tenant(T, "view", ITEM, 1.0, None) {
                Ok(_) => self.acked.push(now),
                Err(TidalError::Unavailable(_)) => self.refused += 1,
                Err(e) => panic!("a write failed with {e}"),
            }
        }
    }
}

/// Runs the step that leaves `state`.
fn step(m: &TenantMigration, state: MigrationState) -> Result<()> {
    match state {
        MigrationState::Idle => m.prepare_target(),
        MigrationState::TargetCreated => m.enter_dual_write(),
        MigrationState::DualWrite => m.finalize(),
        MigrationState::Finalized => m.gc_source(Duration::ZERO),
        MigrationState::Complete => Ok(()),
    }
}

fn crash_during(state: MigrationState, victim: Victim, seed: u64) -> Result<()> {
    let c = SimulatedCluster::build(ClusterConfig {
        seed,
        ..ClusterConfig::new(schema())
    })?;
    c.register_tenant(TenantConfig {
        required_regions: vec![SOURCE],
        ..TenantConfig::new(T, "crashy")
    })?;
    let mut run = Run {
        c: c.clone(),
        acked: Vec::new(),
        refused: 0,
    };
    run.write(40);
    let mut m = c.begin_tenant_migration(T, ShardId(0), ShardId(0), TARGET)?;
    // Walk the migration up to `state`.
    while m.state()? < state {
        step(&m, m.state()?)?;
        run.write(10);
    }
    // The next step runs while the victim is down (a host crash), or is given up almost
    // at once (a crash of the driver mid-step).
    let host = match victim {
        Victim::Source => Some(SOURCE),
        Victim::Target => Some(TARGET),
        Victim::Driver => None,
    };
    if let Some(r) = host {
        c.crash(r, ShardId(0), true)?;
    } else {
        m.step_timeout = Duration::from_millis(1);
    }
    let interrupted = step(&m, state);
    if let Err(e) = &interrupted {
        assert!(
            matches!(e, TidalError::Timeout(_) | TidalError::Unavailable(_)),
            "an interrupted step fails only with Timeout or Unavailable, not {e}"
        );
    }
    drop(m);
    run.write(15);
    if let Some(r) = host {
        c.restart(r, ShardId(0))?;
    }
    run.write(10);
    // A fresh driver resumes from the control plane's record.
    let m = c.tenant_migration(T)?;
    while m.state()? != MigrationState::Complete {
        step(&m, m.state()?)?;
        run.write(5);
    }
    c.run_for(Duration::from_millis(500));
    let expected = run.acked.len() as u64;
    assert_eq!(
        c.total_signal_count_for_tenant(TARGET, T, "view")?,
        expected,
        "every acknowledged write, once ({} refused)",
        run.refused
    );
    assert_eq!(c.total_signal_count_for_tenant(SOURCE, T, "view")?, 0);
    let analytical = common::unit_decay_sum(&run.acked, c.now(), Duration::from_secs(3600));
    let score = c.read_score_for_tenant(TARGET, T, ITEM, "view")?;
    common::assert_close(score, analytical, "the target's score");
    Ok(())
}

fn check(state: MigrationState, victim: Victim, seed: u64) {
    if let Err(e) = crash_during(state, victim, seed) {
        panic!("crash of {victim:?} during {state:?} failed (seed {seed}): {e}");
    }
}

#[test]
fn every_state_survives_a_crash_of_the_source_the_target_or_the_driver() {
    use MigrationState::*;
    let mut seed = 100;
    for state in [Idle, TargetCreated, DualWrite, Finalized] {
        for victim in [Victim::Source, Victim::Target, Victim::Driver] {
            seed += 1;
            check(state, victim, seed);
        }
    }
}
