//! The control plane's Raft log on disk: a voter restarted from its file has every
//! committed command; snapshots keep the file bounded; a torn tail is cut off; damage
//! before the end is refused, never silently skipped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidaldb::control::consensus::{
    CONTROL_LOG_FILE, ControlStore, ControlVoter, VoterOutputs, VoterSpec,
};
use tidaldb::control::{Command, ControlPlane, LoggedCommand};
use tidaldb::event::TenantId;
use tidaldb::schema::Timestamp;
use tidaldb::sim::SimFs;
use tidaldb::tenancy::TenantConfig;
use tidaldb::wal::{RealFs, SharedStorage};
use tidaldb::{Result, TidalError};

fn plane() -> ControlPlane {
    // No replica reports here; a long timeout keeps failover out of these logs.
    ControlPlane::single_group(3, Duration::from_secs(3600))
}

fn spec(snapshot_every: u64, run: u64) -> VoterSpec {
    VoterSpec {
        id: 1,
        voters: vec![1],
        learners: Vec::new(),
        heartbeat_ticks: 1,
        election_ticks: 5,
        seed: 5,
        snapshot_every,
        run,
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_000_000_000 + ms * 1_000_000).expect("in range")
}

fn register(k: u64) -> Command {
    Command::RegisterTenant(TenantConfig::new(TenantId(k), format!("t{k}")))
}

/// A one-voter group over `store`: it elects itself, then commits `commands`. Returns the
/// voter's applied commands.
fn run_voter(
    store: &mut ControlStore,
    snapshot_every: u64,
    run: u64,
    commands: impl IntoIterator<Item = Command>,
) -> Result<Vec<LoggedCommand>> {
    let mut voter = ControlVoter::start(&spec(snapshot_every, run), plane(), store.records())?;
    let mut t = 0;
    let tick = |voter: &mut ControlVoter, store: &mut ControlStore, t: &mut i64| -> Result<()> {
        let mut out = VoterOutputs::default();
        voter.tick(at(*t), &mut out)?;
        *t += 10;
        store.append(&out.records)
    };
    while !voter.is_leader() {
        tick(&mut voter, store, &mut t)?;
        assert!(t < 10_000, "a lone voter elects itself");
    }
    for command in commands {
        let mut out = VoterOutputs::default();
        voter.propose(at(t), command, &mut out)?;
        store.append(&out.records)?;
        assert!(
            out.outcomes.iter().all(|(_, r)| r.is_ok()),
            "committed and applied: {:?}",
            out.outcomes
        );
        tick(&mut voter, store, &mut t)?;
    }
    Ok(voter.plane().command_log().to_vec())
}

fn restarted(store: &ControlStore, snapshot_every: u64) -> Result<Vec<LoggedCommand>> {
    let voter = ControlVoter::start(&spec(snapshot_every, 99), plane(), store.records())?;
    Ok(voter.plane().command_log().to_vec())
}

fn open(fs: &SharedStorage, dir: &Path) -> Result<ControlStore> {
    ControlStore::open(fs.clone(), dir, &[1], &[])
}

#[test]
fn a_restarted_voter_has_every_committed_command() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = RealFs::shared();
    let mut store = open(&fs, dir.path())?;
    let applied = run_voter(&mut store, 1000, 1, (1..=20).map(register))?;
    assert_eq!(applied.len(), 20);
    drop(store);
    let store = open(&fs, dir.path())?;
    assert_eq!(restarted(&store, 1000)?, applied);
    Ok(())
}

#[test]
fn snapshots_keep_the_file_bounded_and_recover_the_same_state() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = RealFs::shared();
    let mut store = open(&fs, dir.path())?;
    let applied = run_voter(&mut store, 8, 1, (1..=60).map(register))?;
    // The file holds at most a snapshot, a hard state and the entries since the last
    // snapshot (fewer than 8), plus what was appended after it.
    assert!(
        store.records().len() < 3 + 2 * 8,
        "{} records: the log was not compacted",
        store.records().len()
    );
    drop(store);
    let mut store = open(&fs, dir.path())?;
    assert_eq!(restarted(&store, 8)?, applied);
    // And it goes on from there.
    let more = run_voter(&mut store, 8, 2, (61..=70).map(register))?;
    assert_eq!(more.len(), 70);
    assert_eq!(&more[..60], &applied[..]);
    Ok(())
}

#[test]
fn a_torn_or_zero_filled_tail_is_cut_off() -> Result<()> {
    for tail in [
        &[7u8, 0, 0, 0, 1, 2][..],
        &[0u8; 64][..],
        &[200, 0, 0, 0, 9, 9, 9, 9, 1][..],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = RealFs::shared();
        let mut store = open(&fs, dir.path())?;
        let applied = run_voter(&mut store, 1000, 1, (1..=5).map(register))?;
        drop(store);
        let path = dir.path().join(CONTROL_LOG_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let len = bytes.len();
        bytes.extend_from_slice(tail);
        std::fs::write(&path, &bytes).expect("write");
        let store = open(&fs, dir.path())?;
        assert_eq!(restarted(&store, 1000)?, applied);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), len as u64);
    }
    Ok(())
}

#[test]
fn damage_before_the_end_is_refused() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = RealFs::shared();
    let mut store = open(&fs, dir.path())?;
    run_voter(&mut store, 1000, 1, (1..=5).map(register))?;
    drop(store);
    let path = dir.path().join(CONTROL_LOG_FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    match open(&fs, dir.path()) {
        Err(TidalError::Corruption { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected corruption, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_crash_loses_nothing_an_append_returned() -> Result<()> {
    let sim = SimFs::new(5);
    let fs: SharedStorage = Arc::new(sim.clone());
    let dir = Path::new("/control");
    let mut store = open(&fs, dir)?;
    let applied = run_voter(&mut store, 8, 1, (1..=30).map(register))?;
    drop(store);
    sim.crash(true);
    let store = open(&fs, dir)?;
    assert_eq!(restarted(&store, 8)?, applied);
    Ok(())
}
