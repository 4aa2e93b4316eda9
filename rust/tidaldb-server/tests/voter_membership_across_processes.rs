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
