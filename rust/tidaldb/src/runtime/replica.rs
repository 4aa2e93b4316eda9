//! A replicated [`TidalDb`] as the cluster layer sees it: a replica that takes the
//! control plane's orders and reports its term, role and membership.

use super::TidalDb;
use crate::error::Result;
use crate::event::VersionVector;
use crate::node::{ControlCommand, HardState, Input, NodeRole};
use crate::schema::{NodeId, Timestamp};

impl TidalDb {
    /// Carries out an order of the control plane on the default tenant's replica: a role
    /// in a term, or a peer joining or leaving the group. A change of term or membership
    /// is stored beside the log before this returns, so a reopened replica rejoins with it.
    pub fn apply_control(&self, command: ControlCommand) -> Result<()> {
        let mut st = self.lock()?;
        st.check_writable()?;
        st.step(Timestamp::now(), Input::Control(command), None)?;
        st.settle()
    }

    /// Stops the default tenant's replica (a server opens one such database per tenant it
    /// hosts) taking client writes for good, gives every cap right it holds to
    /// `hand_over_to`, syncs, and returns the version vector right after, read under the
    /// same lock as the order: no write of this replica's own can be acknowledged beyond
    /// it. So once a peer's durable events dominate it, the peer holds every write this
    /// replica ever acknowledged, and this replica can be removed. Stored before this
    /// returns, so a restart keeps refusing writes. Repeating it is harmless, and returns
    /// the vector as it is now (peers' events still arrive).
    pub fn stop_serving(&self, hand_over_to: NodeId) -> Result<VersionVector> {
        // `lock` applies staged single writes first: they were acknowledged.
        let mut st = self.lock()?;
        st.check_writable()?;
        let now = Timestamp::now();
        st.step(now, Input::Control(ControlCommand::StopServing), None)?;
        st.step(
            now,
            Input::Control(ControlCommand::HandOverRights(hand_over_to)),
            None,
        )?;
        // Synced whatever the durability: the vector may name only what a crash keeps, or
        // the target could be waiting for events that no longer exist anywhere.
        st.commit()?;
        Ok(st.node.ledger().version_vector().clone())
    }

    /// Exchanges version vectors with every peer now and ships what each lacks, as after
    /// a partition heals.
    pub fn reconcile(&self) -> Result<()> {
        let mut st = self.lock()?;
        st.check_writable()?;
        st.step(Timestamp::now(), Input::Reconcile, None)?;
        st.settle()
    }

    /// The replica's term and membership, as a restart would recover them.
    pub fn hard_state(&self) -> Result<HardState> {
        Ok(self.lock()?.node.hard_state())
    }

    pub fn role(&self) -> Result<NodeRole> {
        Ok(self.lock()?.node.role())
    }

    /// Stops the replica as a process crash would: no final sync, so what the log had
    /// not committed is lost. Returns how many events that was. Every later call on any
    /// clone fails with `Unavailable`, and the data directory is released.
    pub fn halt(&self) -> Result<usize> {
        let mut st = self.lock()?;
        let lost = st.disk.as_ref().map_or(0, |d| d.wal.uncommitted());
        st.disk = None;
        st.closed = true;
        st.waiters.clear();
        st.net = None;
        drop(st);
        self.shared.tenants.close_without_sync();
        self.shared.stop.notify_one();
        Ok(lost)
    }
}
