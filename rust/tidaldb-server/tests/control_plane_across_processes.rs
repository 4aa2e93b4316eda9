//! The replicated control plane on real processes: every node votes, leadership changes
//! only through committed commands, a leader that dies or is cut off from the majority is
//! replaced from it, the control plane survives the death of its own Raft leader, and
//! after a heal exactly one replica leads and every replica holds the same bits.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::model::{HOUR_NS, Model};
use support::{Cluster, PATIENCE, Spec, admin_command, now_ns, wait_until, write_views};
use tidaldb::runtime::net::proto::Concern;

/// What node `i`'s voter reports: (Raft leader, the default group's leader and term).
fn control(cluster: &mut Cluster, i: usize) -> Result<(Option<u64>, Option<u64>, u64), String> {
    let json = cluster
        .client(i)
        .control_json()
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let group = &v["groups"][0];
    Ok((
        v["raft_leader"].as_u64(),
        group["leader"].as_u64(),
        group["term"].as_u64().unwrap_or(0),
    ))
}

/// The role node `i` itself reports.
fn role(cluster: &mut Cluster, i: usize) -> Result<String, String> {
    let json = cluster
        .client(i)
        .health(tidaldb::TenantId(0))
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let me = v["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["node"].as_u64() == Some(i as u64))
        .ok_or_else(|| format!("no replica of its own in its health: {json}"))?;
    Ok(me["role"].as_str().unwrap_or_default().to_string())
}

/// Waits until every node in `nodes` agrees on a group leader other than `not`, and that
/// leader itself says it leads, both in the same look (leadership may move meanwhile: a
/// restarted leader can be replaced while it starts); returns (leader, term).
fn await_new_leader(cluster: &mut Cluster, nodes: &[usize], not: Option<u64>) -> (u64, u64) {
    wait_until(
        PATIENCE,
        "the voters agree on a new group leader in its role",
        || {
            let mut seen = Vec::new();
            for &i in nodes {
                let (_, leader, term) = control(cluster, i)?;
                seen.push((leader, term));
            }
            let (leader, term) = seen[0];
            let leader = leader.ok_or("no group leader yet")?;
            if seen.iter().any(|s| *s != (Some(leader), term)) || Some(leader) == not {
                return Err(format!("not yet: {seen:?}"));
            }
            match role(cluster, leader as usize)?.as_str() {
                "Leader" => Ok((leader, term)),
                other => Err(format!("node {leader} leads term {term} but says {other}")),
            }
        },
    )
}

fn write_some(
    cluster: &mut Cluster,
    node: usize,
    model: &mut Model,
    batch: i64,
    at: i64,
    concern: Concern,
) {
    let items: Vec<u64> = (1..=4).collect();
    let ts: Vec<i64> = items
        .iter()
        .map(|e| at - HOUR_NS + batch * 1_000 + *e as i64)
        .collect();
    let weights = vec![1.0; items.len()];
    write_views(cluster.client(node), model, &items, &weights, &ts, concern)
        .unwrap_or_else(|e| panic!("node {node} took no write: {e}"));
}

#[test]
fn a_killed_group_leader_is_replaced_through_the_control_plane() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    let (first, term) = await_new_leader(&mut cluster, &[0, 1, 2], None);
    assert_eq!(first, 0, "the lowest node id leads at first");
    let killed_at = Instant::now();
    cluster.kill9(0);
    let (second, new_term) = await_new_leader(&mut cluster, &[1, 2], Some(0));
    let took = killed_at.elapsed();
    assert!(new_term > term, "a promotion starts a new term");
    let at = now_ns();
    let mut model = Model::default();
    write_some(
        &mut cluster,
        second as usize,
        &mut model,
        0,
        at,
        Concern::Replicated(1),
    );
    eprintln!("failover: {took:?} from kill -9 to a new leader in its role");
    assert!(
        took < Duration::from_secs(10),
        "failover took {took:?}; it should take about a second"
    );
}

#[test]
fn an_isolated_leader_is_replaced_and_one_leader_remains_after_the_heal() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    await_new_leader(&mut cluster, &[0, 1, 2], None);
    let at = now_ns();
    let mut model = Model::default();
    write_some(&mut cluster, 0, &mut model, 0, at, Concern::Replicated(2));
    cluster.isolate(0);
    let (leader, term) = await_new_leader(&mut cluster, &[1, 2], Some(0));
    // Health as the majority sees it names the region it cannot reach, on either side's
    // majority nodes; the cut-off node cannot vouch for it and says so.
    for i in [1, 2] {
        wait_until(PATIENCE, "the majority names r0 unreachable", || {
            let out = admin_command(&cluster, i, &["health"]);
            let v: Value =
                serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {out:?}"))?;
            let unreachable = v["unreachable"].clone();
            (unreachable == serde_json::json!(["r0"]))
                .then_some(())
                .ok_or_else(|| v.to_string())
        });
    }
    wait_until(PATIENCE, "the cut-off node says it cannot vouch", || {
        let out = admin_command(&cluster, 0, &["health"]);
        let said = String::from_utf8_lossy(&out.stderr);
        // "cut off", or "not heard yet" if the cut came before the first verdict.
        (out.status.code() == Some(1) && said.contains("cannot report the majority's view"))
            .then_some(())
            .ok_or_else(|| format!("{out:?}"))
    });
    // The cut-off node still takes writes: the data plane stays available.
    write_some(&mut cluster, 0, &mut model, 1, at, Concern::Local);
    write_some(
        &mut cluster,
        leader as usize,
        &mut model,
        2,
        at,
        Concern::Replicated(1),
    );
    cluster.heal();
    let (after, after_term) = await_new_leader(&mut cluster, &[0, 1, 2], Some(0));
    assert_eq!(
        (after, after_term),
        (leader, term),
        "the heal changes no leadership"
    );
    wait_until(PATIENCE, "exactly one replica leads", || {
        let leading: Vec<usize> = (0..3)
            .filter(|&i| role(&mut cluster, i).is_ok_and(|r| r == "Leader"))
            .collect();
        if leading == vec![leader as usize] {
            Ok(())
        } else {
            Err(format!("leading: {leading:?}"))
        }
    });
    cluster.await_converged(&model, at, &[0, 1, 2]);
    wait_until(PATIENCE, "every region reachable again", || {
        let out = admin_command(&cluster, 0, &["health"]);
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {out:?}"))?;
        (v["unreachable"] == serde_json::json!([]))
            .then_some(())
            .ok_or_else(|| v.to_string())
    });
}

#[test]
fn the_control_plane_outlives_its_raft_leader() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    await_new_leader(&mut cluster, &[0, 1, 2], None);
    let raft_leader = wait_until(PATIENCE, "a Raft leader", || {
        control(&mut cluster, 0)?
            .0
            .ok_or_else(|| "none yet".to_string())
    }) as usize;
    cluster.kill9(raft_leader);
    let rest: Vec<usize> = (0..3).filter(|&i| i != raft_leader).collect();
    wait_until(PATIENCE, "a new Raft leader", || {
        match control(&mut cluster, rest[0])?.0 {
            Some(l) if l as usize != raft_leader => Ok(()),
            other => Err(format!("Raft leader {other:?}")),
        }
    });
    cluster.restart(raft_leader);
    // A failover now commits through the new Raft leader: cut off the group's leader,
    // and the other two replace it.
    let (group_leader, _) = await_new_leader(&mut cluster, &[0, 1, 2], None);
    cluster.isolate(group_leader as usize);
    let others: Vec<usize> = (0..3).filter(|&i| i as u64 != group_leader).collect();
    let (leader, _) = await_new_leader(&mut cluster, &others, Some(group_leader));
    assert!(others.contains(&(leader as usize)));
}

#[test]
fn the_admin_command_reports_drains_and_refuses_bad_input() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    await_new_leader(&mut cluster, &[0, 1, 2], None);
    wait_until(PATIENCE, "a Raft leader", || {
        control(&mut cluster, 1)?
            .0
            .ok_or_else(|| "none yet".to_string())
    });
    let status = admin_command(&cluster, 1, &["status"]);
    assert!(status.status.success(), "{status:?}");
    let v: Value = serde_json::from_slice(&status.stdout).expect("status is JSON");
    assert_eq!(v["voter"], Value::Bool(true));
    let commands = v["commands"].as_u64().expect("a command count");

    let bad = admin_command(&cluster, 1, &["drain", "atlantis"]);
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("no region \"atlantis\""), "{said}");
    let after: Value =
        serde_json::from_str(&cluster.client(2).control_json().expect("status")).expect("json");
    assert_eq!(
        after["commands"].as_u64(),
        Some(commands),
        "nothing was committed"
    );

    // Sent to a voter that does not lead Raft: it forwards the command to the leader.
    let raft_leader = control(&mut cluster, 1).expect("status").0;
    let follower = (0..3)
        .find(|&i| Some(i as u64) != raft_leader)
        .expect("a follower");
    let drained = admin_command(&cluster, follower, &["drain", "r0"]);
    assert!(drained.status.success(), "{drained:?}");
    let (leader, _) = await_new_leader(&mut cluster, &[0, 1, 2], Some(0));
    assert_ne!(leader, 0, "the drained region's host no longer leads");
    let upgrade = |cluster: &Cluster| {
        let out = admin_command(cluster, 2, &["upgrade-status"]);
        serde_json::from_slice::<Value>(&out.stdout).expect("upgrade status is JSON")
    };
    let during = upgrade(&cluster);
    assert_eq!(during["drained"], serde_json::json!(["r0"]), "{during}");
    assert_eq!(during["groups"][0]["leader"].as_u64(), Some(leader));
    let tenants = admin_command(&cluster, 0, &["tenants"]);
    let tenants: Value = serde_json::from_slice(&tenants.stdout).expect("tenants are JSON");
    assert_eq!(
        tenants["groups"][0]["tenant"].as_u64(),
        Some(0),
        "{tenants}"
    );

    let committed = |cluster: &mut Cluster| {
        let json = cluster.client(2).control_json().expect("status");
        serde_json::from_str::<Value>(&json).expect("json")["commands"].as_u64()
    };
    let before = committed(&mut cluster);
    let second = admin_command(&cluster, follower, &["drain", "r1"]);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("drained already"), "{said}");
    assert_eq!(
        committed(&mut cluster),
        before,
        "a refused drain commits nothing"
    );

    let rejoined = admin_command(&cluster, 2, &["rejoin", "r0"]);
    assert!(rejoined.status.success(), "{rejoined:?}");
    wait_until(PATIENCE, "nothing drained", || {
        let after = upgrade(&cluster);
        (after["drained"] == serde_json::json!([]))
            .then_some(())
            .ok_or_else(|| after.to_string())
    });

    let no_tls = std::process::Command::new(env!("CARGO_BIN_EXE_tidaldb"))
        .args(["admin", "--addr", &cluster.addr(0), "status"])
        .output()
        .expect("run tidaldb admin");
    assert_eq!(no_tls.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_tls.stderr).contains("--insecure"));
}
