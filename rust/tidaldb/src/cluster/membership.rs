//! Keeping a replica's view of its group in line with the control plane's.
//!
//! Membership changes reach a replica as [`ControlCommand::AddPeer`] and
//! [`ControlCommand::RemovePeer`]. A replica that was down when its group changed (a
//! migration added a target, or collected a source) missed them; after it rejoins, the
//! driver hands it the difference computed here.

use crate::control::ControlPlane;
use crate::node::{ControlCommand, Node, PeerAddr};

/// The commands that bring `node`'s peers to its group's members as `control` sees them.
/// Empty when they already agree, or when the control plane does not know the node.
pub fn membership_repair(control: &ControlPlane, node: &Node) -> Vec<ControlCommand> {
    let Some(me) = control.replica(node.id()) else {
        return Vec::new();
    };
    let members: Vec<PeerAddr> = control
        .replicas()
        .filter(|r| r.group() == me.group() && r.node != me.node)
        .map(|r| PeerAddr::new(r.node, r.region))
        .collect();
    let known: Vec<PeerAddr> = node.hard_state().peers;
    let mut commands: Vec<ControlCommand> = known
        .iter()
        .filter(|p| !members.iter().any(|m| m.node == p.node))
        .map(|p| ControlCommand::RemovePeer(p.node))
        .collect();
    commands.extend(
        members
            .iter()
            .filter(|m| !known.iter().any(|p| p.node == m.node))
            .map(|m| ControlCommand::AddPeer(*m)),
    );
    commands
}
