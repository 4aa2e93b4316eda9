//! Servers in one process, talking over real loopback TCP: writes on any server reach every
//! other, and all of them return the same bits. (Separate processes, TLS and faults are
//! tested against the `tidaldb` binary, in the tidaldb-server crate.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tidaldb::runtime::net::{
    Client, ClientOptions, PeerSpec, Security, Server, ServerSpec, proto::Concern,
};
use tidaldb::{NodeId, RegionId, Schema, ShardId, TenantId};

mod common;

const HOUR: Duration = Duration::from_secs(3600);

fn schema() -> Schema {
    common::view_signal(HOUR).add().build().unwrap()
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn spec(me: usize, peer_addrs: &[SocketAddr], dir: &std::path::Path) -> ServerSpec {
    ServerSpec {
        cluster_id: "test".into(),
        node: NodeId(me as u16),
        region: RegionId(me as u16),
        region_names: vec!["r0".into(), "r1".into(), "r2".into()],
        shard: ShardId(0),
        role: if me == 0 {
            tidaldb::node::NodeRole::Leader
        } else {
            tidaldb::node::NodeRole::Follower
        },
        peers: (0..peer_addrs.len())
            .filter(|&p| p != me)
            .map(|p| PeerSpec {
                node: NodeId(p as u16),
                region: RegionId(p as u16),
                addr: peer_addrs[p].to_string(),
            })
            .collect(),
        listen_peer: peer_addrs[me],
        listen_client: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join(format!("n{me}")),
        durability: tidaldb::Durability::Immediate,
        schema: schema(),
        tenants: Vec::new(),
        security: Security::Insecure,
        heartbeat_interval: Duration::from_millis(20),
        peer_timeout: Duration::from_millis(300),
        replication_timeout: Duration::from_secs(5),
        control_voters: Vec::new(),
        election_timeout: Duration::from_millis(500),
    }
}

/// The analytical score of unit weights at `times`, read at `at`.
fn formula(times: &[i64], at: i64) -> f64 {
    common::decay_sum(
        times.iter().map(|t| (common::ts(*t), 1.0)),
        common::ts(at),
        HOUR,
    )
}

#[test]
fn writes_on_every_server_reach_every_other_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer_addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let servers: Vec<Server> = (0..3)
        .map(|i| {
            runtime
                .block_on(Server::start(spec(i, &peer_addrs, dir.path())))
                .unwrap()
        })
        .collect();
    let client_addrs: Vec<String> = servers
        .iter()
        .map(|s| s.client_addr().to_string())
        .collect();
    let options = ClientOptions::new("test", Security::Insecure);

    let base = 1_700_000_000_000_000_000i64;
    let mut times = Vec::new();
    for (i, addr) in client_addrs.iter().enumerate() {
        let mut client = Client::connect(&[addr], options.clone()).unwrap();
        assert_eq!(client.node(), Some(NodeId(i as u16)));
        let ts: Vec<i64> = (0..50)
            .map(|k| base + (i as i64 * 50 + k) * 1_000_000_000)
            .collect();
        times.extend(&ts);
        let w = client
            .write_many(
                TenantId(0),
                "view",
                vec![42; 50],
                vec![1.0; 50],
                Some(ts),
                Concern::Local,
            )
            .unwrap();
        assert_eq!(w.count, 50);
    }
    let at = base + 3_600_000_000_000;
    let read = |addr: &String| {
        let mut c = Client::connect(&[addr], options.clone()).unwrap();
        c.scores(TenantId(0), "view", vec![42], Some(at))
            .unwrap()
            .value[0]
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let scores = loop {
        let scores: Vec<f64> = client_addrs.iter().map(read).collect();
        if scores.iter().all(|s| *s == scores[0])
            && (scores[0] / formula(&times, at) - 1.0).abs() < 1e-9
        {
            break scores;
        }
        assert!(Instant::now() < deadline, "no convergence: {scores:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(scores[0].to_bits(), scores[1].to_bits());
    assert_eq!(scores[1].to_bits(), scores[2].to_bits());
    for s in &servers {
        s.shutdown().unwrap();
    }
}
