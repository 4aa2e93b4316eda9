//! The retained log: the applied events some peer may still need, per origin, in memory.
//!
//! Events from one origin are applied in seq order, so each origin's retained events are one
//! contiguous run `first..=last`. The run is trimmed from the front once every peer has
//! acknowledged it, and also whenever the log passes its bound, at every push: relayed
//! events beyond `max_retained`, the node's own beyond `max_own`. Its memory therefore never
//! exceeds `max_retained + max_own` events, however long a peer is away.
//!
//! Trimming loses nothing. Every applied event is also in the driver's durable log, which
//! keeps what some peer has not acknowledged (see `Node::needed_by_peers`). A peer that
//! lacks events no longer here is caught up from there: the node asks its driver to read
//! them back in bounded chunks (`Outputs::log_reads`) and ships them like any push. Only
//! when the durable log no longer holds them either (a replica that joined after they were
//! collected) does the peer get a snapshot of the whole state instead.

use std::collections::VecDeque;

use crate::event::{Event, VersionVector};
use crate::schema::NodeId;

/// The default bound on retained events relayed from other origins (about 100 MB).
pub const DEFAULT_MAX_RETAINED: usize = 1 << 20;

/// The default bound on the node's own retained events (about 400 MB): at 25K writes/s,
/// a peer may be away for almost three minutes before it needs a snapshot.
pub const DEFAULT_MAX_RETAINED_OWN: usize = 1 << 22;

#[derive(Clone, Debug, Default)]
struct OriginRun {
    /// Seq of `events[0]`.
    first: u64,
    events: VecDeque<Event>,
}

impl OriginRun {
    fn last(&self) -> u64 {
        self.first + self.events.len() as u64 - 1
    }
}

#[derive(Clone, Debug)]
pub struct RetainedLog {
    runs: Vec<(NodeId, OriginRun)>,
    /// The node whose log this is: its events have their own bound.
    own: NodeId,
    max_retained: usize,
    max_own: usize,
    len: usize,
    /// Events trimmed by the bounds although some peer may not have acknowledged them.
    forced_trims: u64,
}

impl RetainedLog {
    /// The log of node `own`: `max_retained` bounds relayed events, `max_own` its own.
    /// A bound of 0 is taken as 1, so the newest event of each kind is always at hand.
    pub fn new(own: NodeId, max_retained: usize, max_own: usize) -> Self {
        RetainedLog {
            runs: Vec::new(),
            own,
            max_retained: max_retained.max(1),
            max_own: max_own.max(1),
            len: 0,
            forced_trims: 0,
        }
    }

    /// The most events the log ever holds.
    pub fn bound(&self) -> usize {
        self.max_retained + self.max_own
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Events trimmed by the bounds although some peer may not have acknowledged them.
    pub fn forced_trims(&self) -> u64 {
        self.forced_trims
    }

    fn run_mut(&mut self, origin: NodeId) -> &mut OriginRun {
        let i = match self.runs.binary_search_by_key(&origin, |(o, _)| *o) {
            Ok(i) => i,
            Err(i) => {
                self.runs.insert(i, (origin, OriginRun::default()));
                i
            }
        };
        &mut self.runs[i].1
    }

    fn run(&self, origin: NodeId) -> Option<&OriginRun> {
        self.runs
            .binary_search_by_key(&origin, |(o, _)| *o)
            .ok()
            .map(|i| &self.runs[i].1)
    }

    /// Appends an event just applied. Events of one origin arrive in seq order; one that
    /// does not continue its run (after a snapshot install) starts the run afresh.
    pub fn push(&mut self, event: &Event) {
        let run = self.run_mut(event.id.origin);
        let continues = !run.events.is_empty() && event.id.seq == run.last() + 1;
        if !continues {
            let dropped = run.events.len();
            run.events.clear();
            run.first = event.id.seq;
            self.len -= dropped;
        }
        let run = self.run_mut(event.id.origin);
        run.events.push_back(*event);
        self.len += 1;
        self.enforce_bounds();
        debug_assert!(
            self.len <= self.bound(),
            "the retained log passed its bound"
        );
    }

    fn own_len(&self) -> usize {
        self.run(self.own).map_or(0, |r| r.events.len())
    }

    /// Drops the oldest events beyond the bounds: relayed ones (longest run first, which
    /// belongs to the origin furthest ahead) beyond `max_retained`, own ones beyond
    /// `max_own`. They stay readable from the driver's durable log.
    fn enforce_bounds(&mut self) {
        let own = self.own;
        let own_len = self.own_len();
        while self.len - own_len > self.max_retained {
            let Some((_, run)) = self
                .runs
                .iter_mut()
                .filter(|(origin, r)| *origin != own && !r.events.is_empty())
                .max_by_key(|(_, r)| r.events.len())
            else {
                break;
            };
            let excess = (self.len - own_len - self.max_retained).min(run.events.len());
            run.events.drain(..excess);
            run.first += excess as u64;
            self.len -= excess;
            self.forced_trims += excess as u64;
        }
        if own_len > self.max_own {
            let excess = own_len - self.max_own;
            if let Ok(i) = self.runs.binary_search_by_key(&own, |(o, _)| *o) {
                let run = &mut self.runs[i].1;
                run.events.drain(..excess);
                run.first += excess as u64;
                self.len -= excess;
                self.forced_trims += excess as u64;
            }
        }
    }

    /// The first seq of `origin` still retained; `None` when nothing is.
    pub fn first_retained(&self, origin: NodeId) -> Option<u64> {
        self.run(origin)
            .filter(|r| !r.events.is_empty())
            .map(|r| r.first)
    }

    /// True when every event of `origin` after `after` up to `upto` is still here.
    pub fn covers(&self, origin: NodeId, after: u64, upto: u64) -> bool {
        if upto <= after {
            return true;
        }
        self.run(origin)
            .is_some_and(|r| !r.events.is_empty() && r.first <= after + 1 && r.last() >= upto)
    }

    /// The events of `origin` with seq in `after+1 ..= upto`, as far as retained.
    pub fn range(&self, origin: NodeId, after: u64, upto: u64) -> impl Iterator<Item = &Event> {
        let slice = self.run(origin).map(|r| {
            let from = (after + 1).saturating_sub(r.first) as usize;
            let to = (upto + 1).saturating_sub(r.first) as usize;
            let from = from.min(r.events.len());
            r.events.range(from..to.clamp(from, r.events.len()))
        });
        slice.into_iter().flatten()
    }

    /// The event of `origin` with `seq`, if retained.
    pub fn get(&self, origin: NodeId, seq: u64) -> Option<&Event> {
        self.range(origin, seq.saturating_sub(1), seq).next()
    }

    /// Drops what every peer has (`acked_by_all`).
    pub fn trim(&mut self, acked_by_all: &VersionVector) {
        for (origin, run) in &mut self.runs {
            let upto = acked_by_all.get(*origin);
            while run.first <= upto && run.events.pop_front().is_some() {
                run.first += 1;
                self.len -= 1;
            }
        }
    }

    /// Forgets everything, e.g. after a snapshot replaced the state.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::test_support::event as ev;

    #[test]
    fn keeps_what_some_peer_lacks_up_to_the_bound() {
        let mut log = RetainedLog::new(NodeId(2), 5, 3);
        for seq in 1..=4 {
            log.push(&ev(1, seq));
            log.push(&ev(2, seq));
        }
        // Own (origin 2) events are bounded at 3 as they arrive; relayed ones fit in 5.
        assert_eq!(log.len(), 7);
        assert_eq!(log.first_retained(NodeId(2)), Some(2));
        assert_eq!(log.forced_trims(), 1);
        let mut acked = VersionVector::new();
        acked.advance(NodeId(1), 2);
        log.trim(&acked);
        assert_eq!(log.len(), 5);
        assert_eq!(log.first_retained(NodeId(1)), Some(3));
        assert!(log.covers(NodeId(2), 1, 4));
        assert!(!log.covers(NodeId(2), 0, 4), "seq 1 was trimmed");
        let seqs: Vec<u64> = log.range(NodeId(2), 2, 3).map(|e| e.id.seq).collect();
        assert_eq!(seqs, vec![3]);
        assert_eq!(log.get(NodeId(1), 4).map(|e| e.id.seq), Some(4));
        assert!(log.get(NodeId(1), 2).is_none());

        // Relayed events past their bound of 5 leave from the front, at the push.
        for seq in 5..=9 {
            log.push(&ev(1, seq));
        }
        assert_eq!(
            log.first_retained(NodeId(1)),
            Some(5),
            "relayed: 5..=9 kept"
        );
        assert_eq!(log.first_retained(NodeId(2)), Some(2), "own: untouched");
        assert_eq!(log.len(), 8);
        assert!(log.len() <= log.bound());
    }
}
