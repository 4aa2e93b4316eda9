//! A replicated [`TidalDb`] as the cluster layer sees it: a replica that takes the
//! control plane's orders and reports its term, role and membership.

use super::TidalDb;
use crate::error::Result;
use crate::node::{ControlCommand, HardState, Input, NodeRole};
use crate::schema::Timestamp;

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
