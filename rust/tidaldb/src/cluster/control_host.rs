//! Hosting the control plane: reports in, orders out.
//!
//! Each driver runs one round per tick of its clock: the reports its replicas queued
//! since the last round are heard, then the control plane decides (failover, role and
//! term repair) and its orders go to the replicas. Hearing before deciding matters: a
//! round that decided on stale reports could promote a replica that has since died, or
//! depose a leader whose heartbeat is already queued.

use crate::control::ControlPlane;
use crate::node::{ControlCommand, NodeReport};
use crate::schema::{NodeId, Timestamp};

/// Hears `reports` (each with the time it was made), then ticks `plane` at `now`.
/// Returns the orders to hand to the replicas, in the order given.
pub fn control_round(
    plane: &mut ControlPlane,
    now: Timestamp,
    reports: impl IntoIterator<Item = (Timestamp, NodeReport)>,
) -> Vec<(NodeId, ControlCommand)> {
    for (at, report) in reports {
        plane.observe(at, report);
    }
    plane.tick(now)
}
