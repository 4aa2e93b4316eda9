//! A tenant migration between server processes, begun with `tidaldb admin migrate`, whose
//! control-plane leader is killed with SIGKILL right after: the next leader continues from
//! the committed step, the target ends up with every acknowledged write exactly once, and
//! the source's copy is deleted.

mod support;

use support::{
    Cluster, PATIENCE, Spec, admin_command, await_raft_leader, control_status, now_ns,
    register_in_r0, wait_until,
};
use tidaldb::TenantId;
use tidaldb::runtime::net::proto::Concern;

const TENANT: u64 = 30;

fn migration_state(cluster: &mut Cluster, i: usize) -> Result<String, String> {
    let v = control_status(cluster, i)?;
    let m = v["migrations"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["tenant"] == TENANT));
    m.and_then(|m| m["state"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("no migration yet: {v}"))
}

#[test]
fn a_migration_survives_the_death_of_the_control_planes_leader() {
    let mut cluster = Cluster::start(Spec::tls(3).with_control());
    await_raft_leader(&mut cluster, 2);
    register_in_r0(&mut cluster, TENANT);
    let items: Vec<u64> = (1..=50).collect();
    let mut acknowledged = vec![0.0; items.len()];
    let at = now_ns();
    for round in 0..40 {
        let picked: Vec<u64> = (0..25)
            .map(|k| items[(round * 7 + k * 3) % items.len()])
            .collect();
        let n = picked.len();
        cluster
            .client(0)
            .write_many(
                TenantId(TENANT),
                "count",
                picked.clone(),
                vec![1.0; n],
                Some(vec![at; n]),
                Concern::Local,
            )
            .expect("a write before the migration");
        for item in picked {
            acknowledged[(item - 1) as usize] += 1.0;
        }
    }

    let leader = await_raft_leader(&mut cluster, 2) as usize;
    let begun = admin_command(
        &cluster,
        (leader + 1) % 3,
        &["migrate", "--tenant", "30", "--to", "r1"],
    );
    assert!(begun.status.success(), "{begun:?}");
    cluster.kill9(leader);
    // Whichever process it was (the source, the target or a bystander), it comes back.
    std::thread::sleep(std::time::Duration::from_millis(500));
    cluster.restart(leader);
    wait_until(
        PATIENCE,
        "the migration completes",
        || match migration_state(&mut cluster, 2)?.as_str() {
            "complete" => Ok(()),
            other => Err(other.to_owned()),
        },
    );
    let on_target = cluster
        .client(1)
        .scores(TenantId(TENANT), "count", items.clone(), None)
        .expect("the target serves the tenant");
    assert_eq!(
        on_target.value, acknowledged,
        "every acknowledged write, exactly once"
    );
    let source_copy = support::data_dir(&cluster, 0).join("tenant-30");
    wait_until(PATIENCE, "the source's copy is deleted", || {
        if source_copy.exists() {
            Err(format!("{} still exists", source_copy.display()))
        } else {
            Ok(())
        }
    });
    let moved = cluster
        .client(0)
        .scores(TenantId(TENANT), "count", vec![1], None);
    assert_eq!(
        moved.map(|_| ()).map_err(|e| e.kind()),
        Err(tidaldb::ErrorKind::Unavailable),
        "the source sends the tenant's clients elsewhere"
    );
}
