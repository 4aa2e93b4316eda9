//! Reads and writes of one tenant, in one region or wherever they are served: the work
//! behind the data methods of both `Cluster` (any tenant) and `Tenant` (its own).

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};
use tidaldb::event::{ClientTag, IdempotencyKey};
use tidaldb::node::ClientOp;
use tidaldb::sim::Scope;
use tidaldb::{RegionId, ShardId, Window};

use crate::cluster::PyCluster;
use crate::convert::{
    At, Count, Float, Id, IdempotencyArg, Item, Natural, Shard, Ts, User, Weight, bulk_times,
    f64_array, id_array, same_length, timestamp,
};
use crate::errors::{IntoPyResult, invalid};
use crate::handles::PyWriteAck;
use crate::query_args::QueryArgs;
use crate::results::PyResults;

/// What a hide-or-unhide write does.
#[derive(Clone, Copy)]
pub enum Visibility {
    Hide,
    Unhide,
}

/// An `idempotency_key`: an int is the key itself; a str or bytes is hashed to one with
/// 64-bit FNV-1a, which is stable across processes and versions, so a retry from a
/// restarted client still matches.
pub fn idempotency_key(key: &Bound<'_, PyAny>) -> PyResult<ClientTag> {
    let k = if let Ok(s) = key.cast::<PyString>() {
        fnv1a(s.to_cow()?.as_bytes())
    } else if let Ok(b) = key.cast::<PyBytes>() {
        fnv1a(b.as_bytes())
    } else if key.is_instance_of::<PyInt>() {
        key.extract::<Natural<IdempotencyArg>>()?.0
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "idempotency_key: expected an int, str or bytes, got {}",
            key.get_type().name()?
        )));
    };
    Ok(ClientTag::Key(IdempotencyKey(k)))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl PyCluster {
    /// One client write of `ops`, acknowledged with the region of the replica that
    /// appended it (its origin), looked up while the call is still detached.
    fn submit_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        entity: tidaldb::EntityId,
        op: impl FnOnce(&tidaldb::sim::SimulatedCluster) -> Result<ClientOp, tidaldb::TidalError> + Send,
        tag: Option<ClientTag>,
    ) -> PyResult<PyWriteAck> {
        let (ack, region) = self.run(py, |c| {
            let ack = c.write_scoped(scope, entity, &[op(c)?], tag)?;
            Ok((ack, c.handle(ack.event_id().origin).region()))
        })?;
        Ok(PyWriteAck::new(ack, self.name(region)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        signal: &str,
        item: Id<Item>,
        weight: Float<Weight>,
        ts: Option<Float<Ts>>,
        idempotency: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        let ts = timestamp(py, ts)?;
        let tag = idempotency.map(idempotency_key).transpose()?;
        let op = |c: &tidaldb::sim::SimulatedCluster| {
            Ok(ClientOp::Signal {
                signal: c.config().schema.resolve(signal)?,
                entity: item.0,
                weight: weight.0,
                ts,
            })
        };
        self.submit_in(py, scope, item.0, op, tag)
    }

    pub(crate) fn write_many_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        signal: &str,
        items: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        // Copies, taken while attached: the arrays may change once the interpreter is released.
        let items = id_array(py, "items", items)?;
        let weights = match weights {
            Some(w) => {
                let w = f64_array(py, "weights", w)?;
                same_length(py, "weights", w.len(), items.len())?;
                w
            }
            None => vec![1.0; items.len()],
        };
        let ts = bulk_times(py, ts, items.len())?;
        self.run(py, move |c| {
            c.write_batch(scope, signal, &items, &weights, ts.as_deref())
        })
    }

    pub(crate) fn visibility_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        user: Id<User>,
        item: Id<Item>,
        what: Visibility,
    ) -> PyResult<PyWriteAck> {
        let op = match what {
            Visibility::Hide => ClientOp::Hide {
                user: user.0,
                item: item.0,
            },
            Visibility::Unhide => ClientOp::Unhide {
                user: user.0,
                item: item.0,
            },
        };
        // A hide lives with its item, so that the replica scoring the item filters it.
        self.submit_in(py, scope, item.0, move |_| Ok(op), None)
    }

    pub(crate) fn is_hidden_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        user: Id<User>,
        item: Id<Item>,
    ) -> PyResult<bool> {
        self.run(py, |c| {
            c.read_scoped(scope, item.0, |n, _| {
                Ok(n.ledger().is_hidden(user.0, item.0))
            })
        })
    }

    pub(crate) fn score_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        signal: &str,
        item: Id<Item>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        let at = timestamp(py, at)?;
        self.run(py, |c| {
            let signal = c.config().schema.resolve(signal)?;
            c.read_scoped(scope, item.0, |n, now| {
                n.ledger().decay_score(signal, item.0, at.unwrap_or(now))
            })
        })
    }

    pub(crate) fn scores_in<'py>(
        &self,
        py: Python<'py>,
        scope: Scope,
        signal: &str,
        items: &Bound<'py, PyAny>,
        at: Option<Float<At>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let at = timestamp(py, at)?;
        let items = id_array(py, "items", items)?;
        let scores = self.run(py, move |c| {
            let mut out = vec![0.0; items.len()];
            c.scores_scoped(scope, signal, &items, at, &mut out)?;
            Ok(out)
        })?;
        // The array takes over the vector's buffer: no copy.
        Ok(PyArray1::from_vec(py, scores))
    }

    pub(crate) fn window_count_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        signal: &str,
        item: Id<Item>,
        window: &str,
    ) -> PyResult<u64> {
        let window = Window::parse(window).py_err(py)?;
        self.run(py, |c| {
            let signal = c.config().schema.resolve(signal)?;
            c.read_scoped(scope, item.0, |n, now| {
                Ok(n.ledger().window(signal, item.0, window, now)?.count)
            })
        })
    }

    pub(crate) fn total_count_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        signal: &str,
        region: RegionId,
    ) -> PyResult<u64> {
        self.run(py, |c| {
            c.total_signal_count_for_tenant(region, scope.tenant, signal)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn retrieve_in(
        &self,
        py: Python<'_>,
        scope: Scope,
        candidates: &Bound<'_, PyAny>,
        rank_by: &Bound<'_, PyDict>,
        user: Option<Id<User>>,
        limit: Count,
        at: Option<Float<At>>,
    ) -> PyResult<PyResults> {
        let args = QueryArgs::new(py, candidates, rank_by, user, limit, at)?;
        let results = self.run(py, move |c| c.retrieve_scoped(scope, &args.build()?))?;
        PyResults::with_region_names(py, results, &self.names)
    }

    pub(crate) fn version_vector_in<'py>(
        &self,
        py: Python<'py>,
        scope: Scope,
        shard: Natural<Shard>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let s: u16 = shard.narrow(py)?;
        if s >= self.inner.config().shards_per_region {
            return Err(invalid(
                py,
                "shard",
                format!("{s} is not a shard of this cluster"),
            ));
        }
        let vv = self.run(py, |c| c.version_vector_scoped(scope, ShardId(s)))?;
        let out = PyDict::new(py);
        for (origin, seq) in vv.iter() {
            out.set_item(origin.0, seq)?;
        }
        Ok(out)
    }
}
