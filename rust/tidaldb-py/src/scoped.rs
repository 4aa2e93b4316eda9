//! `_Scoped`: the reads and writes that `Cluster` and `Tenant` share, written once. A
//! `Cluster` serves any tenant (`tenant=`, the default tenant when None); a `Tenant` serves
//! itself, so its `tenant=` may only be None or that tenant.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};
use tidaldb::cluster::{KeyInput, idempotency_tag};
use tidaldb::event::ClientTag;
use tidaldb::ledger::{ItemErrors, WindowReading};
use tidaldb::node::ClientOp;
use tidaldb::sim::{Scope, SimulatedCluster};
use tidaldb::{EntityId, TenantId, Window};

use crate::cluster_config::TenantArg;
use crate::convert::{
    At, Count, Float, Id, IdempotencyArg, Item, Natural, Ts, User, Weight, bulk_times, id_array,
    timestamp, weights_or_ones,
};
use crate::errors::{IntoPyResult, invalid};
use crate::handles::PyWriteAck;
use crate::query_args::QueryArgs;
use crate::results::PyResults;
use crate::simulation::Simulation;

#[doc = include_str!("../pydoc/_Scoped.md")]
#[pyclass(module = "tidaldb._native", name = "_Scoped", subclass, frozen)]
pub struct PyScoped {
    pub(crate) simulation: Simulation,
    /// The tenant a `Tenant` serves; `None` on a `Cluster`, which serves any.
    own: Option<TenantId>,
}

impl PyScoped {
    /// The count and weight sum of one window of `item`, read where it is served, as of
    /// `at` (the cluster's now when None).
    #[allow(clippy::too_many_arguments)]
    fn window_reading(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        window: &str,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<WindowReading> {
        let scope = self.scope(py, tenant, region)?;
        let window = Window::parse(window).py_err(py)?;
        let at = timestamp(py, at)?;
        self.simulation.run(py, |c| {
            let signal = c.config().schema.resolve(signal)?;
            c.read_scoped(scope, item.0, |n, now| {
                n.ledger().window(signal, item.0, window, at.unwrap_or(now))
            })
        })
    }

    pub fn new(simulation: Simulation, own: Option<TenantId>) -> Self {
        PyScoped { simulation, own }
    }

    /// The tenant a call serves: its own on a `Tenant`, `tenant=` on a `Cluster`.
    fn tenant(&self, py: Python<'_>, arg: Option<TenantArg>) -> PyResult<TenantId> {
        match (self.own, arg) {
            (None, arg) => Ok(arg.map_or(TenantId::DEFAULT, |t| t.0)),
            (Some(own), None) => Ok(own),
            (Some(own), Some(TenantArg(t))) if t == own => Ok(own),
            (Some(own), Some(TenantArg(t))) => Err(invalid(
                py,
                "tenant",
                format!(
                    "this Tenant is {own}, not {t}; call the Cluster, or the other tenant, instead"
                ),
            )),
        }
    }

    fn scope(
        &self,
        py: Python<'_>,
        tenant: Option<TenantArg>,
        region: Option<&str>,
    ) -> PyResult<Scope> {
        let tenant = self.tenant(py, tenant)?;
        self.simulation.scope(py, tenant, region)
    }

    /// One client write of `op`, acknowledged with the region of the replica that
    /// appended it (its origin), looked up while the call is still detached.
    fn submit(
        &self,
        py: Python<'_>,
        scope: Scope,
        entity: EntityId,
        op: impl FnOnce(&SimulatedCluster) -> Result<ClientOp, tidaldb::TidalError> + Send,
        tag: Option<ClientTag>,
    ) -> PyResult<PyWriteAck> {
        let (ack, region) = self.simulation.run(py, |c| {
            let ack = c.write_scoped(scope, entity, &[op(c)?], tag)?;
            Ok((ack, c.handle(ack.event_id().origin).region()))
        })?;
        Ok(PyWriteAck::new(ack, self.simulation.name(region)))
    }
}

/// An `idempotency_key`: an int, str or bytes, turned into a key by the core.
fn idempotency_key(key: &Bound<'_, PyAny>) -> PyResult<ClientTag> {
    Ok(if let Ok(s) = key.cast::<PyString>() {
        idempotency_tag(KeyInput::Text(&s.to_cow()?))
    } else if let Ok(b) = key.cast::<PyBytes>() {
        idempotency_tag(KeyInput::Bytes(b.as_bytes()))
    } else if key.is_instance_of::<PyInt>() {
        idempotency_tag(KeyInput::Int(key.extract::<Natural<IdempotencyArg>>()?.0))
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "idempotency_key: expected an int, str or bytes, got {}",
            key.get_type().name()?
        )));
    })
}

#[pymethods]
impl PyScoped {
    #[doc = include_str!("../pydoc/_Scoped/write.md")]
    #[pyo3(signature = (
        signal, item, weight = Float::new(1.0), ts = None, region = None, tenant = None,
        idempotency_key = None,
    ),
        text_signature = "(self, /, signal, item, weight=1.0, ts=None, region=None, tenant=None, idempotency_key=None)")]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        weight: Float<Weight>,
        ts: Option<Float<Ts>>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, tenant, region)?;
        let ts = timestamp(py, ts)?;
        let tag = idempotency_key.map(self::idempotency_key).transpose()?;
        let op = |c: &SimulatedCluster| {
            Ok(ClientOp::Signal {
                signal: c.config().schema.resolve(signal)?,
                entity: item.0,
                weight: weight.0,
                ts,
            })
        };
        self.submit(py, scope, item.0, op, tag)
    }

    #[doc = include_str!("../pydoc/_Scoped/write_many.md")]
    #[pyo3(signature = (signal, items, weights = None, ts = None, region = None, tenant = None))]
    #[allow(clippy::too_many_arguments)]
    fn write_many(
        &self,
        py: Python<'_>,
        signal: &str,
        items: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<usize> {
        let scope = self.scope(py, tenant, region)?;
        // Copies, taken while attached: the arrays may change once the interpreter is released.
        let items = id_array(py, "items", items)?;
        let weights = weights_or_ones(py, weights, items.len())?;
        let ts = bulk_times(py, ts, items.len())?;
        self.simulation.run(py, move |c| {
            c.write_batch(scope, signal, &items, &weights, ts.as_deref())
        })
    }

    #[doc = include_str!("../pydoc/_Scoped/score.md")]
    #[pyo3(signature = (signal, item, region = None, tenant = None, at = None))]
    fn score(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        let scope = self.scope(py, tenant, region)?;
        let at = timestamp(py, at)?;
        self.simulation.run(py, |c| {
            let signal = c.config().schema.resolve(signal)?;
            c.read_scoped(scope, item.0, |n, now| {
                n.ledger().decay_score(signal, item.0, at.unwrap_or(now))
            })
        })
    }

    #[doc = include_str!("../pydoc/_Scoped/scores.md")]
    #[pyo3(signature = (signal, items, region = None, tenant = None, at = None, errors = "raise"))]
    #[allow(clippy::too_many_arguments)]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        signal: &str,
        items: &Bound<'py, PyAny>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
        errors: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let on_error = ItemErrors::parse(errors).py_err(py)?;
        let scope = self.scope(py, tenant, region)?;
        let at = timestamp(py, at)?;
        let items = id_array(py, "items", items)?;
        let (ids, scores) = self.simulation.run(py, move |c| {
            let mut out = vec![0.0; items.len()];
            c.scores_scoped_on_error(scope, signal, &items, at, on_error, &mut out)?;
            Ok((crate::tables::ids(&items), out))
        })?;
        crate::tables::scores(py, ids, scores)
    }

    #[doc = include_str!("../pydoc/_Scoped/window_count.md")]
    #[pyo3(signature = (signal, item, window, region = None, tenant = None, at = None))]
    #[allow(clippy::too_many_arguments)]
    fn window_count(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        window: &str,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<u64> {
        Ok(self
            .window_reading(py, signal, item, window, region, tenant, at)?
            .count)
    }

    #[doc = include_str!("../pydoc/_Scoped/window_sum.md")]
    #[pyo3(signature = (signal, item, window, region = None, tenant = None, at = None))]
    #[allow(clippy::too_many_arguments)]
    fn window_sum(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        window: &str,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        Ok(self
            .window_reading(py, signal, item, window, region, tenant, at)?
            .weight_sum)
    }

    #[doc = include_str!("../pydoc/_Scoped/velocity.md")]
    #[pyo3(signature = (signal, item, region = None, tenant = None, at = None))]
    fn velocity(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        let scope = self.scope(py, tenant, region)?;
        let at = timestamp(py, at)?;
        self.simulation.run(py, |c| {
            let signal = c.config().schema.resolve(signal)?;
            c.read_scoped(scope, item.0, |n, now| {
                n.ledger().velocity(signal, item.0, at.unwrap_or(now))
            })
        })
    }

    #[doc = include_str!("../pydoc/_Scoped/total_count.md")]
    #[pyo3(signature = (signal, region, tenant = None))]
    fn total_count(
        &self,
        py: Python<'_>,
        signal: &str,
        region: &str,
        tenant: Option<TenantArg>,
    ) -> PyResult<u64> {
        let tenant = self.tenant(py, tenant)?;
        let r = self.simulation.region(py, region)?;
        self.simulation
            .run(py, |c| c.total_signal_count_for_tenant(r, tenant, signal))
    }

    #[doc = include_str!("../pydoc/_Scoped/retrieve.md")]
    #[pyo3(signature = (
        candidates, rank_by, *, user = None, limit = Count(10), region = None, tenant = None,
        at = None,
    ),
        text_signature = "(self, /, candidates, rank_by, *, user=None, limit=10, region=None, tenant=None, at=None)")]
    #[allow(clippy::too_many_arguments)]
    fn retrieve(
        &self,
        py: Python<'_>,
        candidates: &Bound<'_, PyAny>,
        rank_by: &Bound<'_, PyDict>,
        user: Option<Id<User>>,
        limit: Count,
        region: Option<&str>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<PyResults> {
        let scope = self.scope(py, tenant, region)?;
        let args = QueryArgs::new(py, candidates, rank_by, user, limit, at)?;
        let results = self
            .simulation
            .run(py, move |c| c.retrieve_scoped(scope, &args.build()?))?;
        PyResults::with_region_names(py, results, self.simulation.names.names())
    }

    #[doc = include_str!("../pydoc/_Scoped/hide.md")]
    #[pyo3(signature = (user, item, ts = None, region = None, tenant = None))]
    fn hide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        ts: Option<Float<Ts>>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, tenant, region)?;
        let op = ClientOp::Hide {
            user: user.0,
            item: item.0,
            ts: timestamp(py, ts)?,
        };
        // A hide lives with its item, so that the replica scoring the item filters it.
        self.submit(py, scope, item.0, move |_| Ok(op), None)
    }

    #[doc = include_str!("../pydoc/_Scoped/unhide.md")]
    #[pyo3(signature = (user, item, ts = None, region = None, tenant = None))]
    fn unhide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        ts: Option<Float<Ts>>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<PyWriteAck> {
        let scope = self.scope(py, tenant, region)?;
        let op = ClientOp::Unhide {
            user: user.0,
            item: item.0,
            ts: timestamp(py, ts)?,
        };
        self.submit(py, scope, item.0, move |_| Ok(op), None)
    }

    #[doc = include_str!("../pydoc/_Scoped/is_hidden.md")]
    #[pyo3(signature = (user, item, region = None, tenant = None))]
    fn is_hidden(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        region: Option<&str>,
        tenant: Option<TenantArg>,
    ) -> PyResult<bool> {
        let scope = self.scope(py, tenant, region)?;
        self.simulation.run(py, |c| {
            c.read_scoped(scope, item.0, |n, _| {
                Ok(n.ledger().is_hidden(user.0, item.0))
            })
        })
    }
}
