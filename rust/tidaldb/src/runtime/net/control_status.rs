//! What a process's control host shows operators (`Op::Control`, `tidaldb admin status`):
//! its voter's Raft state, each tenant's group and hosts, drains and migrations, and the
//! majority's verdict on the regions.

use serde::Serialize;

use super::control_host::ControlSpec;
use super::majority::MajorityView;
use super::placement::ReplicaIds;
use crate::control::consensus::ControlVoter;
use crate::control::{ControlPlane, GroupId};
use crate::schema::{NodeId, RegionId};

/// What this process's voter knows, for `Op::Control` and monitoring.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ControlStatus {
    /// Whether this process votes (the others follow the log as Raft learners).
    pub voter: bool,
    pub raft_term: u64,
    pub raft_leader: Option<u16>,
    pub is_raft_leader: bool,
    /// The nodes that vote in the configuration this voter has applied.
    pub voters: Vec<u16>,
    pub committed: u64,
    pub applied: u64,
    /// Each group's leading process and term in the committed plane.
    pub groups: Vec<GroupStatus>,
    pub commands: usize,
    /// The regions whose hosts are drained in the committed plane: the rolling upgrade's
    /// progress (at most one at a time).
    pub drained: Vec<String>,
    /// Each tenant's latest migration, running or complete.
    pub migrations: Vec<MigrationStatus>,
    /// Region health as the majority sees it (the Raft leader's verdict), on every
    /// process, voter or not.
    pub majority: MajorityView,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupStatus {
    pub tenant: u64,
    pub label: String,
    pub leader: Option<u16>,
    pub term: u64,
    /// The processes that host a replica of the tenant.
    pub hosts: Vec<u16>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MigrationStatus {
    pub tenant: u64,
    pub from: String,
    pub to: String,
    /// The step reached: `idle`, `target_created`, `dual_write`, `finalized`, `complete`.
    pub state: &'static str,
}

impl ControlStatus {
    pub fn of(
        voter: Option<&ControlVoter>,
        ids: &ReplicaIds,
        spec: &ControlSpec,
        majority: MajorityView,
    ) -> ControlStatus {
        let Some(v) = voter else {
            return ControlStatus {
                majority,
                ..ControlStatus::default()
            };
        };
        let plane = v.plane();
        let region = |r: RegionId| region_name(spec, r);
        ControlStatus {
            voter: v.voters().contains(&v.id()),
            raft_term: v.term(),
            raft_leader: v.leader().map(|l| (l - 1) as u16),
            is_raft_leader: v.is_leader(),
            voters: v.voters().iter().map(|id| (id - 1) as u16).collect(),
            committed: v.committed(),
            applied: v.applied(),
            groups: group_statuses(plane, ids, spec),
            commands: plane.command_log().len(),
            drained: plane.drained_hosts().map(|h| region(h.region_id)).collect(),
            migrations: plane
                .migrations()
                .map(|m| MigrationStatus {
                    tenant: m.tenant.0,
                    from: region(m.source.region_id),
                    to: region(m.target.region_id),
                    state: m.state.name(),
                })
                .collect(),
            majority,
        }
    }
}

fn region_name(spec: &ControlSpec, region: RegionId) -> String {
    (spec.region_names.get(region.0 as usize).cloned())
        .unwrap_or_else(|| format!("region {}", region.0))
}

fn group_statuses(plane: &ControlPlane, ids: &ReplicaIds, spec: &ControlSpec) -> Vec<GroupStatus> {
    plane
        .router()
        .tenants()
        .map(|config| {
            let tenant = config.tenant_id;
            let group = GroupId {
                tenant,
                shard: spec.shard,
            };
            let process_of = |r: NodeId| ids.process(r).map(|(n, _)| n.0);
            let mut hosts: Vec<u16> = (plane.replicas())
                .filter(|r| r.tenant == tenant)
                .filter_map(|r| process_of(r.node))
                .collect();
            hosts.sort_unstable();
            GroupStatus {
                tenant: tenant.0,
                label: config.label.clone(),
                leader: plane.leader_of_group(group).and_then(process_of),
                term: plane.group_term(group),
                hosts,
            }
        })
        .collect()
}
