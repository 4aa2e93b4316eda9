//! What a node has shipped to one peer and not yet seen acknowledged, per origin.
//!
//! Shipping resumes past what is in flight, so overlapping requests (an eager push, a
//! reconnect, an explicit reconciliation, a forward) do not send the same events twice.
//! Each origin keeps its own clock of progress: a lost frame of one origin is shipped again
//! after `repair_after` even while another origin's acknowledgements keep advancing.

use smallvec::SmallVec;

use crate::event::VersionVector;
use crate::schema::{NodeId, Timestamp};

#[derive(Clone, Copy, Debug)]
struct Entry {
    origin: NodeId,
    /// Shipped through this seq.
    sent: u64,
    /// When the acknowledgements of this origin last advanced, or nothing was in flight.
    progress: Timestamp,
}

#[derive(Clone, Debug, Default)]
pub(super) struct InFlight {
    entries: SmallVec<[Entry; 4]>,
}

impl InFlight {
    fn entry(&mut self, origin: NodeId, now: Timestamp) -> &mut Entry {
        let i = match self.entries.iter().position(|e| e.origin == origin) {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    origin,
                    sent: 0,
                    progress: now,
                });
                self.entries.len() - 1
            }
        };
        &mut self.entries[i]
    }

    /// Where shipping `origin`'s events resumes: past what the peer acknowledged and past
    /// what is in flight.
    pub fn ship_after(&self, origin: NodeId, acked: &VersionVector) -> u64 {
        let sent = self
            .entries
            .iter()
            .find(|e| e.origin == origin)
            .map_or(0, |e| e.sent);
        sent.max(acked.get(origin))
    }

    /// Records that `origin`'s events through `upto` were shipped at `now`.
    pub fn shipped(&mut self, origin: NodeId, upto: u64, acked: &VersionVector, now: Timestamp) {
        let acked = acked.get(origin);
        let e = self.entry(origin, now);
        if e.sent <= acked {
            // Nothing was in flight: the wait for this shipment starts now.
            e.progress = now;
        }
        e.sent = e.sent.max(upto);
    }

    /// Notes acknowledgements: origins whose acknowledged seq moved (from `before` to
    /// `after`) have made progress.
    pub fn acknowledged(&mut self, before: &VersionVector, after: &VersionVector, now: Timestamp) {
        for e in &mut self.entries {
            if after.get(e.origin) > before.get(e.origin) {
                e.progress = now;
            }
        }
    }

    /// Forgets shipments that have waited `grace` without progress: presumed lost, they
    /// will be shipped again.
    pub fn expire(&mut self, acked: &VersionVector, now: Timestamp, grace: std::time::Duration) {
        let grace = grace.as_nanos() as i64;
        for e in &mut self.entries {
            let waiting = e.sent > acked.get(e.origin);
            if waiting && now.as_nanos() - e.progress.as_nanos() >= grace {
                e.sent = acked.get(e.origin);
                e.progress = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::test_support::vv;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000).unwrap()
    }

    #[test]
    fn a_stalled_origin_expires_while_another_makes_progress() {
        let (a, b) = (NodeId(1), NodeId(2));
        let grace = std::time::Duration::from_millis(200);
        let mut f = InFlight::default();
        let mut acked = VersionVector::new();
        f.shipped(a, 10, &acked, at(0));
        f.shipped(b, 10, &acked, at(0));
        assert_eq!(f.ship_after(a, &acked), 10, "in flight: not shipped again");
        // b keeps being acknowledged; a's frame was lost.
        for t in (50..=300).step_by(50) {
            let before = acked.clone();
            acked = vv(&[(2, (t / 50) as u64)]);
            f.acknowledged(&before, &acked, at(t));
            f.expire(&acked, at(t), grace);
        }
        assert_eq!(f.ship_after(a, &acked), 0, "a's shipment expired");
        assert_eq!(f.ship_after(b, &acked), 10, "b's is still progressing");
    }
}
