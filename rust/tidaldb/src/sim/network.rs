//! The simulated network: per-message latency with jitter, loss and duplication drawn from
//! the run's seed, and partitions between regions (symmetric or one-way).

use std::time::Duration;

use smallvec::SmallVec;

use super::rng::SimRng;
use crate::schema::RegionId;

/// The behaviour of every link between two regions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way delay.
    pub latency: Duration,
    /// Each message's delay is uniform in `latency ± jitter`, so messages reorder.
    pub jitter: Duration,
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// Names one injected partition, so that healing it leaves the others in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartitionId(pub u64);

#[derive(Clone, Debug, Default)]
pub struct Network {
    pub link: LinkConfig,
    /// Directed region pairs that cannot talk, with the partition that cut them.
    blocked: Vec<(PartitionId, RegionId, RegionId)>,
    next_id: u64,
}

impl Network {
    pub fn new(link: LinkConfig) -> Self {
        Network {
            link,
            ..Default::default()
        }
    }

    /// Cuts `from → to`, and `to → from` too unless `one_way`.
    pub fn partition(&mut self, from: RegionId, to: RegionId, one_way: bool) -> PartitionId {
        self.next_id += 1;
        let id = PartitionId(self.next_id);
        self.blocked.push((id, from, to));
        if !one_way {
            self.blocked.push((id, to, from));
        }
        id
    }

    pub fn heal(&mut self, id: PartitionId) {
        self.blocked.retain(|(p, ..)| *p != id);
    }

    /// True while partition `id` is in place (neither healed nor swept by `heal_all`).
    pub fn is_active(&self, id: PartitionId) -> bool {
        self.blocked.iter().any(|(p, ..)| *p == id)
    }

    pub fn heal_all(&mut self) {
        self.blocked.clear();
    }

    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    pub fn blocked(&self, from: RegionId, to: RegionId) -> bool {
        from != to && self.blocked.iter().any(|(_, f, t)| *f == from && *t == to)
    }

    /// The delays after which copies of one message arrive: none if it is lost (or the
    /// link is cut), two if it is duplicated.
    pub fn delays(
        &self,
        rng: &mut SimRng,
        from: RegionId,
        to: RegionId,
    ) -> SmallVec<[Duration; 2]> {
        let mut out = SmallVec::new();
        if self.blocked(from, to) || rng.chance(self.link.loss) {
            return out;
        }
        let copies = if rng.chance(self.link.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = self.link.jitter.as_nanos() as u64;
            let offset = rng.below(2 * jitter + 1) as i128 - jitter as i128;
            let ns = (self.link.latency.as_nanos() as i128 + offset).max(0);
            out.push(Duration::from_nanos(ns as u64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_the_directions_asked_and_heal_independently() {
        let mut net = Network::new(LinkConfig::default());
        let (a, b, c) = (RegionId(0), RegionId(1), RegionId(2));
        let ab = net.partition(a, b, false);
        let ca = net.partition(c, a, true);
        assert!(net.blocked(a, b) && net.blocked(b, a));
        assert!(net.blocked(c, a) && !net.blocked(a, c));
        net.heal(ab);
        assert!(!net.blocked(a, b) && net.blocked(c, a));
        net.heal(ca);
        assert!(!net.is_partitioned());
        let mut rng = SimRng::new(3);
        for _ in 0..100 {
            let d = net.delays(&mut rng, a, b);
            assert_eq!(d.len(), 1);
            assert!(d[0] >= Duration::from_millis(15) && d[0] <= Duration::from_millis(25));
        }
    }
}
