//! `tidaldb.connect(...)`: a client of `tidaldb serve` processes, with the read and write
//! API of one region of `tidaldb.Cluster`. Conversion only: the protocol, failover and
//! idempotency keys are the core's `runtime::net::Client`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tidaldb::ledger::ItemErrors;
use tidaldb::node::WriteAck;
use tidaldb::runtime::net::proto::{AdminOp, Concern, Served};
use tidaldb::runtime::net::{Client, ClientOptions, Security, TlsFiles, Written};
use tidaldb::{EntityId, QueryStats, Results, ScoredItem, TenantId, TidalError, Timestamp};

use crate::cluster_config::{TenantArg, tenant_options};
use crate::convert::{
    At, Count, Float, Id, Item, MaxEntities, MaxSignalsPerSec, MaxStorageBytes, Natural, Node,
    TenantIdArg, Ts, User, Weight, bulk_times, id_array, timestamp, weights_or_ones,
};
use crate::errors::{IntoPyResult, invalid};
use crate::fork_guard::Origin;
use crate::handles::PyWriteAck;
use crate::query_args::QueryArgs;
use crate::results::PyResults;
use crate::served::PyServed;

#[doc = include_str!("../pydoc/Client.md")]
#[pyclass(module = "tidaldb._native", name = "Client", frozen)]
pub struct PyClient {
    /// Shared with nobody: an `Arc` only so that a forked child can leak it (see `Drop`).
    inner: Arc<Mutex<Client>>,
    last: Mutex<Option<Served>>,
    concern: Concern,
    /// The process that connected: the only one that may use the connection.
    origin: Origin,
}

impl PyClient {
    /// Runs `f` on the client with the interpreter released, and remembers who answered.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Client) -> Result<(T, Served), TidalError> + Send,
    ) -> PyResult<T> {
        self.origin.check(py, "Client")?;
        let (value, served) = py
            .detach(|| {
                let mut client = self.inner.lock().map_err(|_| {
                    TidalError::Unavailable("a thread panicked while using this client".into())
                })?;
                f(&mut client)
            })
            .py_err(py)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(served);
        }
        Ok(value)
    }

    fn admin(&self, py: Python<'_>, op: AdminOp) -> PyResult<()> {
        self.call(py, |c| {
            c.admin(op)?;
            Ok(((), c.last_served().cloned().unwrap_or_default()))
        })
    }

    fn concern(&self, py: Python<'_>, arg: Option<&Bound<'_, PyAny>>) -> PyResult<Concern> {
        arg.map_or(Ok(self.concern), |a| write_concern(py, a))
    }

    fn ack(w: Written) -> (PyWriteAck, Served) {
        let first = w.first;
        let ack = if w.duplicate {
            WriteAck::Duplicate { original: first }
        } else {
            WriteAck::Applied {
                first,
                count: usize::try_from(w.count).unwrap_or(usize::MAX),
            }
        };
        (PyWriteAck::new(ack, w.served.region.clone()), w.served)
    }

    #[allow(clippy::too_many_arguments)] // the Python method's arguments, forwarded
    fn set_hidden(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        hidden: bool,
        ts: Option<Float<Ts>>,
        tenant: Option<TenantArg>,
        write_concern: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        let concern = self.concern(py, write_concern)?;
        let t = tenant_of(tenant);
        let ts_ns = timestamp(py, ts)?.map(Timestamp::as_nanos);
        self.call(py, |c| {
            c.set_hidden(t, user.0.0, item.0.0, hidden, ts_ns, concern)
                .map(Self::ack)
        })
    }
}

fn tenant_of(arg: Option<TenantArg>) -> TenantId {
    arg.map_or(TenantId::DEFAULT, |t| t.0)
}

fn ns(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_nanos)
}

/// `"local"`, `"majority"`, `"all"`, or a number of other replicas.
fn write_concern(py: Python<'_>, arg: &Bound<'_, PyAny>) -> PyResult<Concern> {
    if let Ok(text) = arg.extract::<String>() {
        return match text.as_str() {
            "local" => Ok(Concern::Local),
            "majority" => Ok(Concern::Majority),
            "all" => Ok(Concern::All),
            other => Err(invalid(
                py,
                "write_concern",
                format!(
                    "unknown write concern {other:?}; use \"local\", \"majority\", \"all\" or \
                     the number of other replicas to wait for"
                ),
            )),
        };
    }
    match arg.extract::<i64>() {
        Ok(0) => Ok(Concern::Local),
        Ok(k) => u8::try_from(k).map(Concern::Replicated).map_err(|_| {
            invalid(
                py,
                "write_concern",
                format!("{k} is not a number of replicas; give 0 to 255"),
            )
        }),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "write_concern: expected a str or an int, got {}",
            arg.get_type().name()?
        ))),
    }
}

#[doc = include_str!("../pydoc/connect.md")]
#[pyfunction]
#[pyo3(signature = (addrs, *, cluster_id, ca = None, cert = None, key = None, insecure = false, timeout = 10.0, write_concern = None))]
#[allow(clippy::too_many_arguments)]
pub fn connect(
    py: Python<'_>,
    addrs: Vec<String>,
    cluster_id: String,
    ca: Option<std::path::PathBuf>,
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
    insecure: bool,
    timeout: f64,
    write_concern: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyClient> {
    let security = match (ca, cert, key, insecure) {
        (Some(ca), Some(cert), Some(key), false) => {
            Security::from_files(&TlsFiles { ca, cert, key }).py_err(py)?
        }
        (None, None, None, true) => Security::Insecure,
        (None, None, None, false) => {
            return Err(invalid(
                py,
                "tls",
                "give tls=tidaldb.TLS(ca=..., cert=..., key=...), or insecure=True for a \
                 server run with --insecure",
            ));
        }
        (_, _, _, true) => {
            return Err(invalid(py, "tls", "give tls or insecure=True, not both"));
        }
        _ => return Err(invalid(py, "tls", "TLS needs all of ca, cert and key")),
    };
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(invalid(
            py,
            "timeout",
            format!("{timeout} is not a positive number of seconds"),
        ));
    }
    let concern = write_concern.map_or(Ok(Concern::Local), |a| self::write_concern(py, a))?;
    let mut options = ClientOptions::new(cluster_id, security);
    options.timeout = Duration::from_secs_f64(timeout);
    let client = py.detach(|| Client::connect(&addrs, options)).py_err(py)?;
    Ok(PyClient {
        inner: Arc::new(Mutex::new(client)),
        last: Mutex::new(None),
        concern,
        origin: Origin::here(),
    })
}

#[pymethods]
impl PyClient {
    #[doc = include_str!("../pydoc/Client/last_served.md")]
    #[getter]
    fn last_served(&self) -> Option<PyServed> {
        self.last
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(PyServed::from))
    }

    #[doc = include_str!("../pydoc/Client/node.md")]
    #[getter]
    fn node(&self, py: Python<'_>) -> PyResult<Option<u16>> {
        self.origin.check(py, "Client")?;
        Ok(self.inner.lock().ok().and_then(|c| c.node()).map(|n| n.0))
    }

    #[doc = include_str!("../pydoc/Client/write.md")]
    #[pyo3(signature = (signal, item, weight = Float::new(1.0), ts = None, tenant = None, write_concern = None),
        text_signature = "(self, /, signal, item, weight=1.0, ts=None, tenant=None, write_concern=None)")]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        weight: Float<Weight>,
        ts: Option<Float<Ts>>,
        tenant: Option<TenantArg>,
        write_concern: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        let ts = ns(timestamp(py, ts)?);
        let concern = self.concern(py, write_concern)?;
        let t = tenant_of(tenant);
        self.call(py, |c| {
            c.write(t, signal, item.0.0, weight.0, ts, concern)
                .map(Self::ack)
        })
    }

    #[doc = include_str!("../pydoc/Client/write_many.md")]
    #[pyo3(signature = (signal, items, weights = None, ts = None, tenant = None, write_concern = None))]
    #[allow(clippy::too_many_arguments)]
    fn write_many(
        &self,
        py: Python<'_>,
        signal: &str,
        items: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
        tenant: Option<TenantArg>,
        write_concern: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let items: Vec<u64> = id_array(py, "items", items)?
            .into_iter()
            .map(|e| e.0)
            .collect();
        let weights = weights_or_ones(py, weights, items.len())?;
        let ts = bulk_times(py, ts, items.len())?.map(|t| t.iter().map(|t| t.as_nanos()).collect());
        let concern = self.concern(py, write_concern)?;
        let t = tenant_of(tenant);
        self.call(py, move |c| {
            let w = c.write_many(t, signal, items, weights, ts, concern)?;
            Ok((w.count, w.served))
        })
    }

    #[doc = include_str!("../pydoc/Client/score.md")]
    #[pyo3(signature = (signal, item, tenant = None, at = None))]
    fn score(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<f64> {
        let at = ns(timestamp(py, at)?);
        let t = tenant_of(tenant);
        self.call(py, |c| {
            let a = c.scores(t, signal, vec![item.0.0], at)?;
            let score = a
                .value
                .first()
                .copied()
                .ok_or_else(|| TidalError::Unavailable("the node answered no score".into()))?;
            Ok((score, a.served))
        })
    }

    #[doc = include_str!("../pydoc/Client/scores.md")]
    #[pyo3(signature = (signal, items, tenant = None, at = None, errors = "raise"))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        signal: &str,
        items: &Bound<'py, PyAny>,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
        errors: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let on_error = ItemErrors::parse(errors).py_err(py)?;
        let at = ns(timestamp(py, at)?);
        let items = crate::tables::ids(&id_array(py, "items", items)?);
        let ids = items.clone();
        let t = tenant_of(tenant);
        let scores = self.call(py, move |c| {
            let a = c.scores_on_error(t, signal, items, at, on_error)?;
            Ok((a.value, a.served))
        })?;
        crate::tables::scores(py, ids, scores)
    }

    #[doc = include_str!("../pydoc/Client/window_count.md")]
    #[pyo3(signature = (signal, item, window, tenant = None))]
    fn window_count(
        &self,
        py: Python<'_>,
        signal: &str,
        item: Id<Item>,
        window: &str,
        tenant: Option<TenantArg>,
    ) -> PyResult<u64> {
        let t = tenant_of(tenant);
        self.call(py, |c| {
            let a = c.window(t, signal, item.0.0, window, None)?;
            Ok((a.value.0, a.served))
        })
    }

    #[doc = include_str!("../pydoc/Client/retrieve.md")]
    #[pyo3(signature = (candidates, rank_by, *, user = None, limit = Count(10), tenant = None, at = None),
        text_signature = "(self, /, candidates, rank_by, *, user=None, limit=10, tenant=None, at=None)")]
    #[allow(clippy::too_many_arguments)]
    fn retrieve(
        &self,
        py: Python<'_>,
        candidates: &Bound<'_, PyAny>,
        rank_by: &Bound<'_, PyDict>,
        user: Option<Id<User>>,
        limit: Count,
        tenant: Option<TenantArg>,
        at: Option<Float<At>>,
    ) -> PyResult<PyResults> {
        let args = QueryArgs::new(py, candidates, rank_by, user, limit, at)?;
        let t = tenant_of(tenant);
        let results = self.call(py, move |c| {
            let (candidates, terms, user, limit, at) = args.into_parts();
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            let a = c.retrieve(t, user, candidates, terms, limit, at)?;
            let items: Vec<ScoredItem> = a
                .value
                .items
                .iter()
                .map(|r| ScoredItem {
                    item: EntityId(r.item),
                    score: r.score,
                })
                .collect();
            let considered = usize::try_from(a.value.candidates).unwrap_or(usize::MAX);
            let hidden = usize::try_from(a.value.hidden_filtered).unwrap_or(usize::MAX);
            let stats = QueryStats {
                candidates_considered: considered,
                candidates_after_filter: considered.saturating_sub(hidden),
                hidden_filtered: hidden,
                returned: items.len(),
                degraded: a.served.degraded,
                ..QueryStats::default()
            };
            Ok((Results { items, stats }, a.served))
        })?;
        PyResults::new(py, results)
    }

    #[doc = include_str!("../pydoc/Client/hide.md")]
    #[pyo3(signature = (user, item, ts = None, tenant = None, write_concern = None))]
    fn hide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        ts: Option<Float<Ts>>,
        tenant: Option<TenantArg>,
        write_concern: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        self.set_hidden(py, user, item, true, ts, tenant, write_concern)
    }

    #[doc = include_str!("../pydoc/Client/unhide.md")]
    #[pyo3(signature = (user, item, ts = None, tenant = None, write_concern = None))]
    fn unhide(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        ts: Option<Float<Ts>>,
        tenant: Option<TenantArg>,
        write_concern: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyWriteAck> {
        self.set_hidden(py, user, item, false, ts, tenant, write_concern)
    }

    #[doc = include_str!("../pydoc/Client/is_hidden.md")]
    #[pyo3(signature = (user, item, tenant = None))]
    fn is_hidden(
        &self,
        py: Python<'_>,
        user: Id<User>,
        item: Id<Item>,
        tenant: Option<TenantArg>,
    ) -> PyResult<bool> {
        let t = tenant_of(tenant);
        self.call(py, |c| {
            let hidden = c.is_hidden(t, user.0.0, item.0.0)?;
            let served = c.last_served().cloned().unwrap_or_default();
            Ok((hidden, served))
        })
    }

    #[doc = include_str!("../pydoc/Client/lag.md")]
    #[pyo3(signature = (tenant = None))]
    fn lag(
        &self,
        py: Python<'_>,
        tenant: Option<TenantArg>,
    ) -> PyResult<std::collections::BTreeMap<u16, (u64, f64, bool)>> {
        let t = tenant_of(tenant);
        self.call(py, |c| {
            let a = c.lag(t)?;
            let lag = a
                .value
                .iter()
                .map(|l| (l.peer.0, (l.events, l.seconds, l.reachable)))
                .collect();
            Ok((lag, a.served))
        })
    }

    #[doc = include_str!("../pydoc/Client/health.md")]
    #[pyo3(signature = (tenant = None))]
    fn health<'py>(
        &self,
        py: Python<'py>,
        tenant: Option<TenantArg>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = tenant_of(tenant);
        let (json, names) = self.call(py, |c| {
            let json = c.health(t)?;
            let names = c.regions_json()?;
            let served = c.last_served().cloned().unwrap_or_default();
            Ok(((json, names), served))
        })?;
        let names: Vec<String> =
            serde_json::from_str(&names).map_err(|e| invalid(py, "regions", e.to_string()))?;
        let health = py.import("tidaldb._display")?.getattr("Health")?;
        health.call_method1("_from_json", (json, PyTuple::new(py, names)?))
    }

    #[doc = include_str!("../pydoc/Client/control.md")]
    fn control<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self.call(py, |c| {
            let json = c.control_json()?;
            let served = c.last_served().cloned().unwrap_or_default();
            Ok((json, served))
        })?;
        py.import("json")?.call_method1("loads", (json,))
    }

    #[doc = include_str!("../pydoc/Client/drain.md")]
    fn drain(&self, py: Python<'_>, region: String) -> PyResult<()> {
        self.admin(py, AdminOp::Drain { region })
    }

    #[doc = include_str!("../pydoc/Client/rejoin.md")]
    fn rejoin(&self, py: Python<'_>, region: String) -> PyResult<()> {
        self.admin(py, AdminOp::Rejoin { region })
    }

    #[doc = include_str!("../pydoc/Client/register_tenant.md")]
    #[pyo3(signature = (
        id,
        max_signals_per_sec = None,
        max_entities = None,
        max_storage_bytes = None,
        regions = None,
        label = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn register_tenant(
        &self,
        py: Python<'_>,
        id: Natural<TenantIdArg>,
        max_signals_per_sec: Option<Natural<MaxSignalsPerSec>>,
        max_entities: Option<Natural<MaxEntities>>,
        max_storage_bytes: Option<Natural<MaxStorageBytes>>,
        regions: Option<&Bound<'_, PyAny>>,
        label: Option<String>,
    ) -> PyResult<()> {
        let quotas = (max_signals_per_sec, max_entities, max_storage_bytes);
        let options = tenant_options(id, quotas, regions, label)?;
        self.admin(py, AdminOp::RegisterTenant(options))
    }

    #[doc = include_str!("../pydoc/Client/migrate_tenant.md")]
    #[pyo3(signature = (id, to_region, from_region = None))]
    fn migrate_tenant(
        &self,
        py: Python<'_>,
        id: Natural<TenantIdArg>,
        to_region: String,
        from_region: Option<String>,
    ) -> PyResult<()> {
        let op = AdminOp::MigrateTenant {
            tenant: id.0,
            from: from_region,
            to: to_region,
        };
        self.admin(py, op)
    }

    #[doc = include_str!("../pydoc/Client/add_voter.md")]
    fn add_voter(&self, py: Python<'_>, node: Natural<Node>) -> PyResult<()> {
        let node = node.narrow(py)?;
        self.admin(py, AdminOp::ChangeVoters { node, add: true })
    }

    #[doc = include_str!("../pydoc/Client/remove_voter.md")]
    fn remove_voter(&self, py: Python<'_>, node: Natural<Node>) -> PyResult<()> {
        let node = node.narrow(py)?;
        self.admin(py, AdminOp::ChangeVoters { node, add: false })
    }

    #[doc = include_str!("../pydoc/Client/regions.md")]
    fn regions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let json = self.call(py, |c| {
            let json = c.regions_json()?;
            let served = c.last_served().cloned().unwrap_or_default();
            Ok((json, served))
        })?;
        serde_json::from_str(&json).map_err(|e| invalid(py, "regions", e.to_string()))
    }

    #[doc = include_str!("../pydoc/Client/__reduce__.md")]
    fn __reduce__(&self) -> PyResult<()> {
        Err(crate::pickling::client())
    }

    fn __repr__(&self) -> String {
        if !self.origin.is_here() {
            return "<tidaldb.Client inherited through a fork: unusable here>".into();
        }
        match self.inner.lock() {
            Ok(c) => format!("<tidaldb.Client {c}>"),
            Err(_) => "<tidaldb.Client (poisoned)>".into(),
        }
    }
}

impl Drop for PyClient {
    fn drop(&mut self) {
        // In a forked child, closing the connection could shut down the parent's sockets.
        self.origin.let_go(&self.inner);
    }
}
