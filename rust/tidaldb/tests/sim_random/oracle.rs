//! The oracle a random run is judged by, once healed and quiesced: every replica of a
//! shard holds the same events and reads bit-identical scores; those events are exactly
//! the writes issued less those legitimately lost; every score equals the analytical decay
//! sum over them, and every all-time window count equals their number.

use super::*;

impl Run {
    /// Whether the quiesced cluster matches the writes issued; the first mismatch if not.
    pub(super) fn check(&self) -> Result<(), String> {
        let at = self.cluster.now();
        let shards = self.cluster.config().shards_per_region;
        let regions = self.regions();
        // The events held are exactly the writes issued and not lost.
        for s in 0..shards {
            let vv = self
                .cluster
                .version_vector(regions[0], ShardId(s))
                .map_err(|e| e.to_string())?;
            for r in &regions {
                let id = self
                    .cluster
                    .node_id(*r, ShardId(s))
                    .map_err(|e| e.to_string())?;
                let expected = self.issued.keys().filter(|e| e.origin == id).count() as u64;
                if vv.get(id) != expected {
                    return Err(format!(
                        "origin {} has {} events on the replicas, {expected} were issued and not lost",
                        id.0,
                        vv.get(id)
                    ));
                }
            }
        }
        for entity in (0..ENTITIES).map(EntityId) {
            let writes: Vec<&Issued> = self
                .issued
                .values()
                .filter(|w| w.is_signal && w.entity == entity)
                .collect();
            let expected: f64 = writes
                .iter()
                .map(|w| {
                    w.weight * (-((at.as_nanos() - w.ts.as_nanos()) as f64) / HALF_LIFE_NS).exp2()
                })
                .sum();
            let magnitude: f64 = writes
                .iter()
                .map(|w| {
                    w.weight.abs()
                        * (-((at.as_nanos() - w.ts.as_nanos()) as f64) / HALF_LIFE_NS).exp2()
                })
                .sum();
            let mut first: Option<f64> = None;
            for r in &regions {
                let node = self.cluster.handle(
                    self.cluster
                        .node_for(*r, entity)
                        .map_err(|e| e.to_string())?,
                );
                let score = node
                    .read_decay_score(entity, "view", Some(at))
                    .map_err(|e| e.to_string())?;
                if *first.get_or_insert(score) != score {
                    return Err(format!(
                        "entity {entity}: region {} reads {score}, another {first:?}",
                        r.0
                    ));
                }
                if (score - expected).abs() > 1e-9 * magnitude.max(1e-300) + 1e-12 {
                    return Err(format!(
                        "entity {entity}: score {score}, analytical {expected}"
                    ));
                }
                let count = node
                    .read_window(entity, "view", Window::AllTime)
                    .map_err(|e| e.to_string())?
                    .count;
                if count != writes.len() as u64 {
                    return Err(format!(
                        "entity {entity}: all-time count {count}, {} writes",
                        writes.len()
                    ));
                }
            }
        }
        // Hides agree everywhere, and retrieve never returns a hidden item.
        for &(user, item) in &self.users {
            let q = Retrieve::builder()
                .for_user(user)
                .candidates([item])
                .rank_by(&[("view", 1.0)])
                .build()
                .map_err(|e| e.to_string())?;
            let mut seen = None;
            for r in &regions {
                let node = self
                    .cluster
                    .handle(self.cluster.node_for(*r, item).map_err(|e| e.to_string())?);
                let hidden = node.is_hidden(user, item).map_err(|e| e.to_string())?;
                if *seen.get_or_insert(hidden) != hidden {
                    return Err(format!("({user}, {item}) hidden in some regions only"));
                }
                let returned = !self
                    .cluster
                    .retrieve(*r, &q)
                    .map_err(|e| e.to_string())?
                    .items
                    .is_empty();
                if hidden && returned {
                    return Err(format!(
                        "hidden item {item} returned to {user} in region {}",
                        r.0
                    ));
                }
            }
        }
        Ok(())
    }
}
