//! The arguments of `retrieve`, shared by `Db`, `Cluster` and `Tenant`.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tidaldb::{EntityId, Retrieve, TidalError, Timestamp};

use crate::convert::{At, Count, Float, Id, User, float, id_list, timestamp};

/// A retrieval's arguments, converted while attached; the query is built detached.
pub struct QueryArgs {
    candidates: Vec<EntityId>,
    terms: Vec<(String, f64)>,
    user: Option<EntityId>,
    limit: usize,
    at: Option<Timestamp>,
}

impl QueryArgs {
    pub fn new(
        py: Python<'_>,
        candidates: &Bound<'_, PyAny>,
        rank_by: &Bound<'_, PyDict>,
        user: Option<Id<User>>,
        limit: Count,
        at: Option<Float<At>>,
    ) -> PyResult<Self> {
        let candidates = id_list(py, candidates)?;
        let mut terms = Vec::with_capacity(rank_by.len());
        for (k, v) in rank_by.iter() {
            let name: String = k.extract()?;
            let of = || format!("the coefficient of {name:?} is ");
            let coefficient = float(v.as_borrowed(), "rank_by", of)?;
            terms.push((name, coefficient));
        }
        Ok(QueryArgs {
            candidates,
            terms,
            user: user.map(|u| u.0),
            limit: limit.0,
            at: timestamp(py, at)?,
        })
    }

    /// The raw parts, for a query sent to a server, which builds it there:
    /// `(candidates, rank_by, user, limit, at in ns)`.
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        Vec<u64>,
        Vec<(String, f64)>,
        Option<u64>,
        usize,
        Option<i64>,
    ) {
        (
            self.candidates.into_iter().map(|e| e.0).collect(),
            self.terms,
            self.user.map(|u| u.0),
            self.limit,
            self.at.map(Timestamp::as_nanos),
        )
    }

    /// The query; building it deduplicates the candidates, so it runs detached.
    pub fn build(self) -> Result<Retrieve, TidalError> {
        let refs: Vec<(&str, f64)> = self.terms.iter().map(|(s, c)| (s.as_str(), *c)).collect();
        let mut q = Retrieve::builder()
            .candidates(self.candidates)
            .rank_by(&refs)
            .limit(self.limit);
        if let Some(u) = self.user {
            q = q.for_user(u);
        }
        if let Some(t) = self.at {
            q = q.at(t);
        }
        q.build()
    }
}
