//! Registering a tenant while three server processes run, from `tidaldb admin register`
//! and from the Rust client: the processes of its regions open its replicas on the control
//! plane's order and replicate its writes; the others do not serve it. Bad registrations
//! exit 1 with the reason, and commit nothing.

mod support;

use serde_json::Value;
use support::{
    Cluster, PATIENCE, Spec, admin_command, await_raft_leader, control_status, now_ns, wait_until,
};
use tidaldb::cluster::TenantOptions;
use tidaldb::runtime::net::proto::{AdminOp, Concern};
use tidaldb::{ErrorKind, TenantId};

fn committed(cluster: &mut Cluster, i: usize) -> u64 {
    let status = control_status(cluster, i).expect("status");
    status["commands"].as_u64().expect("a command count")
}

/// The permanent count of item 1 on node `i` for `tenant`, or the error's kind.
fn count_on(cluster: &mut Cluster, i: usize, tenant: u64) -> Result<f64, ErrorKind> {
    let client = cluster.client(i);
    match client.scores(TenantId(tenant), "count", vec![1], None) {
        Ok(scores) => Ok(scores.value[0]),
        Err(e) => Err(e.kind()),
    }
}

#[test]
fn tenants_registered_by_the_admin_command_and_the_rust_client_live_in_their_regions() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    await_raft_leader(&mut cluster, 0);
    let registered = admin_command(
        &cluster,
        0,
        &[
            "register", "--tenant", "30", "--region", "r1", "--region", "r2",
        ],
    );
    assert!(registered.status.success(), "{registered:?}");
    let mut client = cluster.client_of(&[1]);
    client
        .admin(AdminOp::RegisterTenant(TenantOptions {
            id: 31,
            max_entities: Some(10),
            ..TenantOptions::default()
        }))
        .expect("the Rust client registers a tenant");

    // Nodes 1 and 2 open tenant 30 on the plane's order; node 0, in r0, never does.
    wait_until(PATIENCE, "tenant 30 on node 1", || {
        count_on(&mut cluster, 1, 30).map_err(|k| format!("{k:?}"))
    });
    let at = now_ns();
    let written = cluster
        .client(1)
        .write_many(
            TenantId(30),
            "count",
            vec![1; 20],
            vec![1.0; 20],
            Some(vec![at; 20]),
            Concern::Local,
        )
        .expect("a write to the new tenant");
    assert_eq!(written.count, 20);
    wait_until(PATIENCE, "node 2 holds the writes", || {
        match count_on(&mut cluster, 2, 30) {
            Ok(20.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(count_on(&mut cluster, 0, 30), Err(ErrorKind::NotFound));
    // Tenant 31 names no region: every node hosts it.
    for i in 0..3 {
        wait_until(PATIENCE, "tenant 31 everywhere", || {
            count_on(&mut cluster, i, 31).map_err(|k| format!("{k:?}"))
        });
    }

    let before = committed(&mut cluster, 2);
    for (args, said) in [
        (&["register", "--tenant", "30"][..], "already registered"),
        (
            &["register", "--tenant", "32", "--region", "atlantis"][..],
            "atlantis",
        ),
        (
            &["register", "--tenant", "32", "--max-entities", "0"][..],
            "max_entities",
        ),
    ] {
        let refused = admin_command(&cluster, 2, args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
    assert_eq!(
        committed(&mut cluster, 2),
        before,
        "a refused registration commits nothing"
    );

    let tenants = admin_command(&cluster, 0, &["tenants"]);
    let tenants: Value = serde_json::from_slice(&tenants.stdout).expect("tenants are JSON");
    let hosts_of_30 = tenants["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|t| t["tenant"] == 30))
        .map(|t| t["hosts"].clone());
    assert_eq!(hosts_of_30, Some(serde_json::json!([1, 2])), "{tenants}");
}
