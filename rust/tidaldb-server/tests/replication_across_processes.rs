//! Three `tidaldb serve` processes with mutual TLS, linked through pass-through proxies:
//! writes made through each node reach every other, and every node then answers the same
//! bits, equal to the analytical decay formula.

mod support;

use support::model::{HOUR_NS, Model};
use support::{Cluster, Spec, now_ns, write_counts, write_views};
use tidaldb::runtime::net::proto::Concern;

#[test]
fn writes_through_every_node_converge_bit_for_bit_on_the_formula() {
    let mut cluster = Cluster::start(Spec::tls(3));
    let at = now_ns();
    let base = at - 2 * HOUR_NS;
    let mut model = Model::default();
    let items: Vec<u64> = (1..=6).collect();
    for node in 0..3usize {
        for round in 0..4u64 {
            // Timestamps scattered over two hours, so that events arrive out of order
            // both within one node's log and between nodes.
            let ts: Vec<i64> = items
                .iter()
                .map(|e| {
                    let k = (node as u64 * 4 + round) * 6 + e;
                    base + ((k * 37) % 120) as i64 * 60_000_000_000 + k as i64
                })
                .collect();
            let weights: Vec<f64> = items
                .iter()
                .map(|e| 0.25 * *e as f64 + node as f64 + 0.1 * round as f64)
                .collect();
            let client = cluster.client(node);
            let w = write_views(client, &mut model, &items, &weights, &ts, Concern::Local)
                .expect("write views");
            assert_eq!(w.count, items.len() as u64);
            write_counts(client, &mut model, &items[..=node], Concern::Local)
                .expect("write counts");
        }
    }

    let seen = cluster.await_converged(&model, at, &[0, 1, 2]);

    for (node, obs) in seen.iter().enumerate() {
        assert_eq!(obs.view_bits, seen[0].view_bits, "node {node}: view bits");
        assert_eq!(
            obs.count_bits, seen[0].count_bits,
            "node {node}: count bits"
        );
        for (k, item) in obs.items.iter().enumerate() {
            let score = f64::from_bits(obs.view_bits[k]);
            let formula = model.view_score(*item, at);
            assert!(
                ((score - formula) / formula).abs() < 1e-9,
                "node {node} item {item}: {score} vs {formula}"
            );
            assert_eq!(obs.view_24h[k], 12, "node {node} item {item}: 24h window");
            assert_eq!(
                obs.view_all[k], 12,
                "node {node} item {item}: all-time window"
            );
        }
    }
}
