//! The oracle: what every node must hold, computed from the acknowledged writes alone, with
//! none of tidaldb's code. Decay is the analytical `Σ w·2^(-(t - t_i)/h)` (std's `exp2`,
//! not the `libm` tidaldb uses), counts are integers, and a hide is decided by the test's
//! own bookkeeping.

use std::collections::BTreeMap;

use tidaldb::TenantId;
use tidaldb::runtime::net::Client;

/// Half-life of the "view" signal in every test config: one hour, in nanoseconds.
pub const VIEW_HALF_LIFE_NS: f64 = 3_600_000_000_000.0;
/// Every read names its instant, so that all nodes decay to the same moment.
pub const HOUR_NS: i64 = 3_600_000_000_000;
pub const TENANT: TenantId = TenantId(0);

/// The acknowledged writes.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Per item, the (timestamp, weight) of each acknowledged "view".
    pub views: BTreeMap<u64, Vec<(i64, f64)>>,
    /// Per item, acknowledged unit-weight writes of the permanent "count".
    pub counts: BTreeMap<u64, u64>,
    /// Per (user, item), whether it must end up hidden.
    pub hidden: BTreeMap<(u64, u64), bool>,
    /// Writes whose call failed with `OutcomeUnknown`: each may or may not be applied, so
    /// the oracle becomes a range from the acknowledged writes to all of these as well.
    pub maybe_views: BTreeMap<u64, Vec<(i64, f64)>>,
    pub maybe_counts: BTreeMap<u64, u64>,
}

impl Model {
    pub fn wrote_views(&mut self, entities: &[u64], weights: &[f64], ts: &[i64]) {
        for ((e, w), t) in entities.iter().zip(weights).zip(ts) {
            self.views.entry(*e).or_default().push((*t, *w));
        }
    }

    /// A "view" write that failed with `OutcomeUnknown`.
    pub fn maybe_wrote_views(&mut self, entities: &[u64], weights: &[f64], ts: &[i64]) {
        for ((e, w), t) in entities.iter().zip(weights).zip(ts) {
            self.maybe_views.entry(*e).or_default().push((*t, *w));
        }
    }

    /// A "count" write that failed with `OutcomeUnknown`.
    pub fn maybe_wrote_counts(&mut self, entities: &[u64]) {
        for e in entities {
            *self.maybe_counts.entry(*e).or_default() += 1;
        }
    }

    /// The score if every uncertain "view" was applied too: the upper bound (weights are
    /// positive in every test).
    pub fn view_score_at_most(&self, item: u64, at: i64) -> f64 {
        let maybe: f64 = self.maybe_views.get(&item).map_or(0.0, |events| {
            events
                .iter()
                .map(|(t, w)| w * (-((at - t) as f64) / VIEW_HALF_LIFE_NS).exp2())
                .sum()
        });
        self.view_score(item, at) + maybe
    }

    pub fn maybe_view_writes(&self, item: u64) -> u64 {
        self.maybe_views.get(&item).map_or(0, |v| v.len() as u64)
    }

    pub fn maybe_count(&self, item: u64) -> u64 {
        self.maybe_counts.get(&item).copied().unwrap_or(0)
    }

    pub fn wrote_counts(&mut self, entities: &[u64]) {
        for e in entities {
            *self.counts.entry(*e).or_default() += 1;
        }
    }

    /// Every item either signal was written for, in order.
    pub fn items(&self) -> Vec<u64> {
        let mut items: Vec<u64> = self
            .views
            .keys()
            .chain(self.counts.keys())
            .chain(self.maybe_views.keys())
            .chain(self.maybe_counts.keys())
            .copied()
            .collect();
        items.sort_unstable();
        items.dedup();
        items
    }

    pub fn view_score(&self, item: u64, at: i64) -> f64 {
        self.views.get(&item).map_or(0.0, |events| {
            events
                .iter()
                .map(|(t, w)| w * (-((at - t) as f64) / VIEW_HALF_LIFE_NS).exp2())
                .sum()
        })
    }

    pub fn view_writes(&self, item: u64) -> u64 {
        self.views.get(&item).map_or(0, |v| v.len() as u64)
    }

    pub fn count(&self, item: u64) -> u64 {
        self.counts.get(&item).copied().unwrap_or(0)
    }

    pub fn total_counts(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// What one node answers for the model's items and pairs, read at one instant. Scores are
/// kept as bits, so that equality between nodes is bit-for-bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub items: Vec<u64>,
    pub view_bits: Vec<u64>,
    pub count_bits: Vec<u64>,
    /// "view" events in the 24h window ending at the read instant, and over all time.
    pub view_24h: Vec<u64>,
    pub view_all: Vec<u64>,
    pub hidden: Vec<((u64, u64), bool)>,
}

impl Observed {
    pub fn read(client: &mut Client, model: &Model, at: i64) -> tidaldb::Result<Observed> {
        let items = model.items();
        let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<u64>>();
        let view = client
            .scores(TENANT, "view", items.clone(), Some(at))?
            .value;
        let count = client
            .scores(TENANT, "count", items.clone(), Some(at))?
            .value;
        let mut view_24h = Vec::new();
        let mut view_all = Vec::new();
        for item in &items {
            view_24h.push(
                client
                    .window(TENANT, "view", *item, "24h", Some(at))?
                    .value
                    .0,
            );
            view_all.push(
                client
                    .window(TENANT, "view", *item, "all", Some(at))?
                    .value
                    .0,
            );
        }
        let mut hidden = Vec::new();
        for pair in model.hidden.keys() {
            hidden.push((*pair, client.is_hidden(TENANT, pair.0, pair.1)?));
        }
        Ok(Observed {
            items,
            view_bits: bits(view),
            count_bits: bits(count),
            view_24h,
            view_all,
            hidden,
        })
    }

    /// Every difference from the oracle, or `Ok`. Decayed scores must be within 1e-9
    /// (relative) of the formula; counts and flags exactly equal. Writes of unknown outcome
    /// widen each figure to a range: at least the acknowledged writes, at most those and
    /// every uncertain one.
    pub fn check(&self, model: &Model, at: i64) -> Result<(), String> {
        let mut wrong = Vec::new();
        for (k, item) in self.items.iter().enumerate() {
            let view = f64::from_bits(self.view_bits[k]);
            let (low, high) = (
                model.view_score(*item, at),
                model.view_score_at_most(*item, at),
            );
            let in_range = if low == high {
                close(view, low)
            } else {
                view >= low * (1.0 - 1e-9) && view <= high * (1.0 + 1e-9)
            };
            if !in_range {
                wrong.push(format!(
                    "item {item}: view {view} not in formula [{low}, {high}]"
                ));
            }
            let count = f64::from_bits(self.count_bits[k]);
            let (low, high) = (
                model.count(*item),
                model.count(*item) + model.maybe_count(*item),
            );
            if count < low as f64 || count > high as f64 {
                wrong.push(format!(
                    "item {item}: count {count} not in [{low}, {high}] (acknowledged, plus of unknown outcome)"
                ));
            }
            let writes = model.view_writes(*item);
            let most = writes + model.maybe_view_writes(*item);
            let counted = |n: u64| n >= writes && n <= most;
            if !counted(self.view_24h[k]) || !counted(self.view_all[k]) {
                wrong.push(format!(
                    "item {item}: windowed view counts 24h={} all={} not in [{writes}, {most}] writes",
                    self.view_24h[k], self.view_all[k]
                ));
            }
        }
        for (pair, hidden) in &self.hidden {
            if model.hidden.get(pair) != Some(hidden) {
                wrong.push(format!(
                    "{pair:?}: hidden={hidden}, model says {:?}",
                    model.hidden.get(pair)
                ));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }
}

/// Within 1e-9 relative (exactly equal when the formula is 0).
pub fn close(actual: f64, expected: f64) -> bool {
    if expected == 0.0 {
        actual == 0.0
    } else {
        ((actual - expected) / expected).abs() < 1e-9
    }
}
