//! The retrieval request: whose feed, which candidates, how to rank them, how many.

use crate::error::{Result, TidalError};
use crate::schema::{EntityId, Timestamp};

/// A validated retrieval. Build it with [`Retrieve::builder`].
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieve {
    pub(crate) user: Option<EntityId>,
    /// As given, duplicates included: execution scores and counts each item once,
    /// deduplicating by the slots it resolves anyway (`distinct.rs`).
    pub(crate) candidates: Vec<EntityId>,
    pub(crate) rank_by: Vec<(String, f64)>,
    pub(crate) limit: usize,
    pub(crate) at: Option<Timestamp>,
}

impl Retrieve {
    pub fn builder() -> RetrieveBuilder {
        RetrieveBuilder::default()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn candidates(&self) -> &[EntityId] {
        &self.candidates
    }
}

#[derive(Clone, Debug, Default)]
pub struct RetrieveBuilder {
    user: Option<EntityId>,
    candidates: Vec<EntityId>,
    rank_by: Vec<(String, f64)>,
    limit: Option<usize>,
    at: Option<Timestamp>,
}

impl RetrieveBuilder {
    /// Filters out the items this user has hidden. Without it, nothing is filtered.
    pub fn for_user(mut self, user: EntityId) -> Self {
        self.user = Some(user);
        self
    }

    pub fn candidates(mut self, ids: impl IntoIterator<Item = EntityId>) -> Self {
        self.candidates = ids.into_iter().collect();
        self
    }

    /// The score of an item is `Σ coefficient · decay_score(signal)`.
    pub fn rank_by(mut self, terms: &[(&str, f64)]) -> Self {
        self.rank_by = terms.iter().map(|(s, c)| ((*s).to_owned(), *c)).collect();
        self
    }

    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Scores as of this time instead of now.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.at = Some(t);
        self
    }

    pub fn build(self) -> Result<Retrieve> {
        let invalid = |name: &'static str, reason: &str| TidalError::InvalidArgument {
            name,
            reason: reason.to_owned(),
        };
        if self.rank_by.is_empty() {
            return Err(invalid(
                "rank_by",
                "name at least one (signal, coefficient) pair",
            ));
        }
        if let Some((s, c)) = self.rank_by.iter().find(|(_, c)| !c.is_finite()) {
            return Err(invalid(
                "rank_by",
                &format!("the coefficient of {s:?} is {c}; coefficients must be finite"),
            ));
        }
        // A limit of 0 asks for nothing and gets an empty result (with its stats), as a
        // slice `[:0]` would.
        let limit = self.limit.unwrap_or(10);
        Ok(Retrieve {
            user: self.user,
            candidates: self.candidates,
            rank_by: self.rank_by,
            limit,
            at: self.at,
        })
    }
}
