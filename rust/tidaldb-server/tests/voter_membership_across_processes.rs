//! Changing who votes in the control plane, on three server processes: with two voters
//! removed, the last one commits alone (it could not with all three voting and two dead),
//! keeps that configuration across a `kill -9` and restart (it is in its Raft log), and
//! the removed nodes vote again once added back. Bad changes exit 1 and change nothing.

mod support;

use serde_json::Value;
use support::{
    Cluster, PATIENCE, Spec, admin_command, await_raft_leader, control_status, wait_until,
};

fn voters_on(cluster: &mut Cluster, i: usize) -> Result<Vec<u64>, String> {
    let v = control_status(cluster, i)?;
    let voters = v["voters"].as_array().ok_or_else(|| v.to_string())?;
    Ok(voters.iter().filter_map(Value::as_u64).collect())
}

fn await_voters(cluster: &mut Cluster, i: usize, want: &[u64]) {
    wait_until(PATIENCE, &format!("voters {want:?} on node {i}"), || {
        let voters = voters_on(cluster, i)?;
        (voters == want)
            .then_some(())
            .ok_or_else(|| format!("{voters:?}"))
    });
}

fn admin_ok(cluster: &Cluster, i: usize, args: &[&str]) {
    let out = admin_command(cluster, i, args);
    assert!(out.status.success(), "{args:?}: {out:?}");
}

#[test]
fn a_lone_voter_decides_after_the_others_are_removed_and_remembers_it_after_a_restart() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    await_voters(&mut cluster, 0, &[0, 1, 2]);
    await_raft_leader(&mut cluster, 0);

    for (args, said) in [
        (&["remove-voter", "7"][..], "no node 7"),
        (&["add-voter", "0"][..], "voter already"),
    ] {
        let refused = admin_command(&cluster, 0, args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
    await_voters(&mut cluster, 0, &[0, 1, 2]);

    admin_ok(&cluster, 0, &["remove-voter", "2"]);
    admin_ok(&cluster, 0, &["remove-voter", "1"]);
    await_voters(&mut cluster, 0, &[0]);
    cluster.kill9(1);
    cluster.kill9(2);
    // One voter of one: a majority. With three voting, one alive could commit nothing.
    admin_ok(&cluster, 0, &["drain", "r1"]);
    admin_ok(&cluster, 0, &["rejoin", "r1"]);

    cluster.kill9(0);
    cluster.restart(0);
    await_voters(&mut cluster, 0, &[0]);
    admin_ok(&cluster, 0, &["drain", "r2"]);
    admin_ok(&cluster, 0, &["rejoin", "r2"]);

    cluster.restart(1);
    cluster.restart(2);
    admin_ok(&cluster, 0, &["add-voter", "1"]);
    admin_ok(&cluster, 0, &["add-voter", "2"]);
    await_voters(&mut cluster, 0, &[0, 1, 2]);
    await_voters(&mut cluster, 2, &[0, 1, 2]);
}

#[test]
fn a_process_that_does_not_vote_follows_the_committed_log_and_can_be_made_a_voter() {
    let mut cluster = Cluster::start(Spec::tls(3).with_voters(1));
    await_raft_leader(&mut cluster, 2);
    await_voters(&mut cluster, 2, &[0]);
    let follower = control_status(&mut cluster, 2).expect("status");
    assert_eq!(follower["voter"], Value::Bool(false), "{follower}");
    admin_ok(&cluster, 0, &["drain", "r0"]);
    wait_until(
        PATIENCE,
        "node 2 applies the drain it does not vote on",
        || {
            let (voter, learner) = (
                control_status(&mut cluster, 0)?,
                control_status(&mut cluster, 2)?,
            );
            let same = learner["drained"] == serde_json::json!(["r0"])
                && learner["commands"] == voter["commands"];
            same.then_some(()).ok_or_else(|| format!("{learner}"))
        },
    );
    let refused = admin_command(&cluster, 2, &["rejoin", "r0"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a control-plane voter"));

    admin_ok(&cluster, 0, &["add-voter", "2"]);
    await_voters(&mut cluster, 2, &[0, 2]);
    admin_ok(&cluster, 2, &["rejoin", "r0"]);
    let status = control_status(&mut cluster, 0).expect("status");
    assert_eq!(status["drained"], serde_json::json!([]), "{status}");
}
