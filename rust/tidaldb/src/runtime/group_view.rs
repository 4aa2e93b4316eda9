//! A replica's view of its group, for the client protocol's `lag()` and `health()` and
//! for `/metrics`: what it measures of each peer from the peer's acknowledgements and
//! heartbeats. A replica cannot see past its own links, so a peer it cannot hear shows as
//! unreachable even when the rest of the group can hear it; the control plane's view,
//! which gathers every replica's, comes with the replicated control plane.

use super::TidalDb;
use super::net::proto::PeerLag;
use crate::control::{ClusterHealth, RegionHealth, RegionStatus, ReplicaHealth};
use crate::error::Result;
use crate::node::NodeRole;
use crate::schema::{RegionId, Timestamp};

impl TidalDb {
    /// How far each peer is behind this replica: events it holds that the peer has not
    /// acknowledged, and the age of the oldest of them.
    pub fn peer_lag(&self) -> Result<Vec<PeerLag>> {
        let st = self.lock()?;
        let now = Timestamp::now();
        let unreachable = st.node.unreachable_peers(now);
        Ok(st
            .node
            .peers()
            .iter()
            .filter(|p| p.node != st.node.id())
            .map(|p| {
                let reading = st.node.lag_gauge().lag(p.node).unwrap_or_default();
                PeerLag {
                    peer: p.node,
                    events: reading.events,
                    seconds: reading.oldest_age.as_secs_f64(),
                    reachable: !unreachable.contains(&p.node),
                }
            })
            .collect())
    }

    /// The group as this replica sees it, in the control plane's `ClusterHealth` shape:
    /// one row per replica, and per region `Healthy` when every replica there is heard,
    /// `Offline` when none is, `Degraded` otherwise.
    pub fn group_health(&self) -> Result<ClusterHealth> {
        let lags = self.peer_lag()?;
        let st = self.lock()?;
        let now = Timestamp::now();
        let me = st.node.config();
        let mut replicas = vec![ReplicaHealth {
            tenant: me.tenant,
            shard: me.shard,
            region: me.region,
            node: me.id,
            role: st.node.role(),
            drained: false,
            entity_count: st.node.ledger().distinct_entities(),
            signal_throughput: 0.0,
            replication_lag_events: 0,
            replication_lag_ms: 0.0,
            needs_resync: false,
            disk_bytes: 0,
            last_heartbeat_ns: Some(now.as_nanos()),
        }];
        for peer in st.node.peers().iter().filter(|p| p.node != me.id) {
            let lag = lags.iter().find(|l| l.peer == peer.node);
            replicas.push(ReplicaHealth {
                tenant: me.tenant,
                shard: me.shard,
                region: peer.region,
                node: peer.node,
                role: NodeRole::Follower,
                drained: false,
                entity_count: 0,
                signal_throughput: 0.0,
                replication_lag_events: lag.map_or(0, |l| l.events),
                replication_lag_ms: lag.map_or(0.0, |l| l.seconds * 1e3),
                needs_resync: false,
                disk_bytes: 0,
                last_heartbeat_ns: None,
            });
        }
        let reachable = |r: &ReplicaHealth| {
            r.node == me.id || lags.iter().any(|l| l.peer == r.node && l.reachable)
        };
        let mut regions: Vec<RegionId> = replicas.iter().map(|r| r.region).collect();
        regions.sort();
        regions.dedup();
        let regions = regions
            .into_iter()
            .map(|region| {
                let here: Vec<&ReplicaHealth> =
                    replicas.iter().filter(|r| r.region == region).collect();
                let heard = here.iter().filter(|r| reachable(r)).count();
                let health = match heard {
                    0 => RegionHealth::Offline,
                    n if n == here.len() => RegionHealth::Healthy,
                    _ => RegionHealth::Degraded,
                };
                RegionStatus { region, health }
            })
            .collect();
        Ok(ClusterHealth {
            at_ns: now.as_nanos(),
            regions,
            replicas,
            tenants: Vec::new(),
            drained: Vec::new(),
        })
    }
}
