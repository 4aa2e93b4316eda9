//! The tenants of an embedded database besides the default one.
//!
//! Each tenant is an island (see `DESIGN.md`, Tenancy): its own [`Node`], so its own log,
//! seq space, version vector and ledger, and its own WAL directory
//! `{data_dir}/tenants/{id}/wal/`. Nothing is shared between tenants but the schema, the
//! durability policy and the data directory's lock, so one tenant's load or failed WAL
//! write never reaches another. Tenants of one embedded database are single-node; a
//! replicated tenant is a replica group of its own, placed by the cluster layer (see
//! [`LocalCluster`](super::LocalCluster)), under either driver.
//!
//! Each tenant's node checks its quotas at admission, built by the [`TenantRouter`] so that
//! [`TidalDb::rate_limiter_for`] hands out the very limiter its writes spend from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::db::TidalDb;
use super::layout::{create_tenant_dir, load_tenant_configs, remove_tenant_dir};
use super::state::{LogPolicy, OpenedLog, State, Submitted, open_log};
use crate::error::{Result, TidalError};
use crate::event::{EventId, TenantId};
use crate::node::{ClientOp, Node, NodeConfig, NodeRole, WriteConcern};
use crate::schema::{EntityId, Schema, Timestamp};
use crate::tenancy::{
    ClusterTopology, ShardAssignment, TenantConfig, TenantRateLimiter, TenantRouter, tenant_wal_dir,
};
use crate::wal::RecoveryReport;

/// What every tenant's node and log are opened with.
#[derive(Debug)]
pub(super) struct TenantEnv {
    /// `None` for an ephemeral database: tenants then live in memory too.
    pub data_dir: Option<PathBuf>,
    pub policy: LogPolicy,
    /// The default tenant's node config: a tenant's node takes its id, region, shard and
    /// clock bounds, so its events carry the same origin and are judged by the same clock.
    pub node: NodeConfig,
}

#[derive(Debug)]
struct TenantSlot {
    state: Mutex<State>,
    recovery: RecoveryReport,
}

#[derive(Debug)]
struct Registry {
    router: TenantRouter,
    slots: BTreeMap<TenantId, TenantSlot>,
    /// Ids whose registration is writing its files, outside the lock.
    reserved: std::collections::BTreeSet<TenantId>,
    /// Set by `close`: no tenant is registered, written or read after it.
    closed: bool,
}

/// Every registered tenant's state, and the router that holds their configs and rate
/// limiters. Writes to different tenants proceed in parallel: the registry is only read
/// on the write path, and each tenant has its own lock.
#[derive(Debug)]
pub(super) struct TenantSet {
    env: TenantEnv,
    schema: Arc<Schema>,
    registry: RwLock<Registry>,
}

fn poisoned<T>(_: PoisonError<T>) -> TidalError {
    TidalError::Unavailable("a thread panicked while holding the database; reopen it".into())
}

fn closed() -> TidalError {
    TidalError::Unavailable("the database is closed".into())
}

impl TenantSet {
    /// Opens every tenant registered in the data directory and replays its log.
    pub fn open(schema: Arc<Schema>, env: TenantEnv) -> Result<TenantSet> {
        let topology = ClusterTopology {
            shards: vec![ShardAssignment {
                shard_id: env.node.shard,
                region_id: env.node.region,
            }],
        };
        let mut registry = Registry {
            router: TenantRouter::new(topology),
            slots: BTreeMap::new(),
            reserved: std::collections::BTreeSet::new(),
            closed: false,
        };
        let stored = match &env.data_dir {
            Some(dir) => load_tenant_configs(dir)?,
            None => Vec::new(),
        };
        for cfg in stored {
            let tenant = cfg.tenant_id;
            registry.router.register_tenant(cfg).map_err(|e| match e {
                // The config parsed, but this database cannot host it (its region
                // changed since the tenant was registered, say).
                TidalError::InvalidTenantConfig { tenant, reason } => {
                    TidalError::InvalidTenantConfig {
                        tenant,
                        reason: format!("{reason} (the config stored for the tenant)"),
                    }
                }
                other => other,
            })?;
            let log = open_tenant_log(&env, &schema, tenant)?;
            tracing::info!(
                %tenant,
                snapshot_lsn = log.report.snapshot_lsn,
                replayed = log.report.events_replayed,
                torn_bytes = log.report.torn_bytes_truncated,
                "opened tenant"
            );
            let slot = tenant_slot(&env, &registry.router, tenant, log)?;
            registry.slots.insert(tenant, slot);
        }
        Ok(TenantSet {
            env,
            schema,
            registry: RwLock::new(registry),
        })
    }

    /// Registers a tenant: validated in full first, then its config is made durable (the
    /// commit point), then its log is created. A failure at any step leaves no tenant.
    pub fn register(&self, config: TenantConfig) -> Result<()> {
        let tenant = config.tenant_id;
        if tenant == TenantId::DEFAULT {
            return Err(TidalError::InvalidTenantConfig {
                tenant: tenant.0,
                reason: "tenant 0 is the built-in default tenant, which always exists and is \
                         addressed as TenantId::DEFAULT; register other tenants with ids >= 1"
                    .into(),
            });
        }
        config.validate()?;
        // Reserve the id under the lock, do the file work without it (several fsyncs, which
        // would otherwise stall every tenant's writes), then publish under the lock again.
        {
            let mut reg = self.registry.write().map_err(poisoned)?;
            if reg.closed {
                return Err(closed());
            }
            if reg.router.is_registered(tenant) || reg.reserved.contains(&tenant) {
                return Err(TidalError::Conflict(format!(
                    "tenant {tenant} is already registered; tenants are registered once"
                )));
            }
            // The residency check, on a scratch router, before anything touches the disk.
            TenantRouter::new(reg.router.topology().clone()).register_tenant(config.clone())?;
            reg.reserved.insert(tenant);
        }
        let created = self.create_tenant(&config);
        let mut reg = self.registry.write().map_err(poisoned)?;
        reg.reserved.remove(&tenant);
        let (dir, log) = created?;
        let undo = |e: TidalError| {
            if let Some(dir) = &dir {
                remove_tenant_dir(dir);
            }
            e
        };
        if reg.closed {
            drop(log);
            return Err(undo(closed()));
        }
        if let Err(e) = reg.router.register_tenant(config) {
            drop(log);
            return Err(undo(e));
        }
        // Cannot fail: the tenant was just registered with a validated config.
        let slot = tenant_slot(&self.env, &reg.router, tenant, log)?;
        reg.slots.insert(tenant, slot);
        tracing::info!(%tenant, "registered tenant");
        Ok(())
    }

    /// The file work of a registration: the directory and config (the commit point), then
    /// the log. A failure removes what was created.
    fn create_tenant(&self, config: &TenantConfig) -> Result<(Option<PathBuf>, OpenedLog)> {
        let dir = match &self.env.data_dir {
            Some(data_dir) => Some(create_tenant_dir(data_dir, config)?),
            None => None,
        };
        let opened = open_tenant_log(&self.env, &self.schema, config.tenant_id).and_then(|log| {
            // The log's directory entry must survive a power cut too.
            if let Some(dir) = &dir {
                crate::wal::sync_dir(dir)?;
            }
            Ok(log)
        });
        match opened {
            Ok(log) => Ok((dir, log)),
            Err(e) => {
                if let Some(dir) = &dir {
                    remove_tenant_dir(dir);
                }
                Err(e)
            }
        }
    }

    /// Runs `f` on a registered tenant's state.
    pub fn with_state<R>(
        &self,
        tenant: TenantId,
        f: impl FnOnce(&mut State) -> Result<R>,
    ) -> Result<R> {
        let reg = self.registry.read().map_err(poisoned)?;
        if reg.closed {
            return Err(closed());
        }
        let slot = reg
            .slots
            .get(&tenant)
            .ok_or(TidalError::UnknownTenant(tenant.0))?;
        let mut st = slot.state.lock().map_err(poisoned)?;
        if st.closed {
            return Err(closed());
        }
        f(&mut st)
    }

    /// Registered tenants' configs in id order. Readable after close: configs are not data.
    pub fn configs(&self) -> Vec<TenantConfig> {
        let reg = self.registry.read().unwrap_or_else(PoisonError::into_inner);
        reg.router.tenants().cloned().collect()
    }

    pub fn rate_limiter_for(&self, tenant: TenantId) -> Result<Option<Arc<TenantRateLimiter>>> {
        self.registry
            .read()
            .map_err(poisoned)?
            .router
            .rate_limiter_for(tenant)
    }

    pub fn recovery_report(&self, tenant: TenantId) -> Result<RecoveryReport> {
        let reg = self.registry.read().map_err(poisoned)?;
        reg.slots
            .get(&tenant)
            .map(|s| s.recovery.clone())
            .ok_or(TidalError::UnknownTenant(tenant.0))
    }

    /// Runs `f` on every open tenant's state (the flusher's round); `None` once closed.
    pub fn for_each_open(&self, mut f: impl FnMut(&mut State)) -> Option<()> {
        let reg = self.registry.read().ok()?;
        if reg.closed {
            return None;
        }
        for slot in reg.slots.values() {
            if let Ok(mut st) = slot.state.lock()
                && !st.closed
            {
                f(&mut st);
            }
        }
        Some(())
    }

    /// Syncs every tenant's acknowledged writes. Every tenant is tried; the first failure
    /// is returned.
    pub fn flush(&self) -> Result<()> {
        let reg = self.registry.read().map_err(poisoned)?;
        let mut first = Ok(());
        for slot in reg.slots.values() {
            let done = match slot.state.lock() {
                Ok(mut st) if !st.closed => st.commit(),
                Ok(_) => Ok(()),
                Err(e) => Err(poisoned(e)),
            };
            if first.is_ok() {
                first = done;
            }
        }
        first
    }

    /// Syncs and closes every tenant's log; later calls fail with `Unavailable`. Returns
    /// the first failure, which may be the only report of a lost batched write.
    pub fn close(&self) -> Result<()> {
        let mut reg = self.registry.write().map_err(poisoned)?;
        if reg.closed {
            return Ok(());
        }
        reg.closed = true;
        let mut first = Ok(());
        for slot in reg.slots.values() {
            let done = match slot.state.lock() {
                Ok(mut st) => {
                    let synced = st.commit();
                    st.disk = None;
                    st.closed = true;
                    synced
                }
                Err(e) => Err(poisoned(e)),
            };
            if first.is_ok() {
                first = done;
            }
        }
        first
    }

    /// The final commit of every tenant when the database is dropped without `close`.
    /// Closes every tenant's log as a crash would: nothing more is synced.
    pub fn close_without_sync(&self) {
        let Ok(mut reg) = self.registry.write() else {
            return;
        };
        reg.closed = true;
        for slot in reg.slots.values() {
            if let Ok(mut st) = slot.state.lock() {
                st.disk = None;
                st.closed = true;
            }
        }
    }

    pub fn commit_all_on_drop(&mut self) {
        let Ok(reg) = self.registry.get_mut() else {
            return;
        };
        for slot in reg.slots.values_mut() {
            if let Ok(st) = slot.state.get_mut() {
                st.commit_at_drop();
            }
        }
    }
}

fn open_tenant_log(env: &TenantEnv, schema: &Arc<Schema>, tenant: TenantId) -> Result<OpenedLog> {
    let wal_dir = env.data_dir.as_deref().map(|d| tenant_wal_dir(d, tenant));
    open_log(schema, wal_dir.as_deref(), &env.policy, None)
}

/// The tenant's node over its recovered log, with the router's quotas for it.
fn tenant_slot(
    env: &TenantEnv,
    router: &TenantRouter,
    tenant: TenantId,
    log: OpenedLog,
) -> Result<TenantSlot> {
    let cfg = NodeConfig {
        tenant,
        role: NodeRole::Single,
        peers: Vec::new(),
        quotas: Some(Arc::new(router.quotas_for(tenant)?)),
        ..env.node.clone()
    };
    let node = Node::new(cfg, log.ledger, log.clock);
    Ok(TenantSlot {
        state: Mutex::new(State::new(node, log.disk, None)),
        recovery: log.report,
    })
}

/// The per-tenant API. `TenantId::DEFAULT` addresses the default tenant, the one the
/// tenant-less methods (`signal`, `read_decay_score`, ...) use; any other id must have
/// been registered, or the call fails with `UnknownTenant`.
impl TidalDb {
    /// Registers a tenant with its own log, state and WAL directory
    /// (`{data_dir}/tenants/{id}/wal/`), durably: it is there again after a reopen.
    ///
    /// Fails with `InvalidTenantConfig` for a config that cannot work (a zero quota, a bad
    /// label, a region this database is not in, or `TenantId::DEFAULT`, which is built in),
    /// and with `Conflict` for a tenant registered already.
    pub fn register_tenant(&self, config: TenantConfig) -> Result<()> {
        self.shared.tenants.register(config)
    }

    /// The registered tenants' configs, in id order. The built-in default tenant is not
    /// listed: it has no config of its own (its quotas, if any, are the builder's).
    pub fn tenants(&self) -> Vec<TenantConfig> {
        self.shared.tenants.configs()
    }

    /// The limiter the tenant's writes spend from; `None` when its rate is unlimited.
    /// Spending from it (say, for writes admitted elsewhere) throttles this database's
    /// writes for the tenant too.
    pub fn rate_limiter_for(&self, tenant: TenantId) -> Result<Option<Arc<TenantRateLimiter>>> {
        if tenant == TenantId::DEFAULT {
            let st = self.lock()?;
            return Ok(st
                .node
                .config()
                .quotas
                .as_ref()
                .and_then(|q| q.rate_limiter().cloned()));
        }
        self.shared.tenants.rate_limiter_for(tenant)
    }

    /// Records one signal for `tenant`, as [`signal`](Self::signal) does for the default
    /// tenant. A write its quotas refuse fails with `QuotaExceeded` and writes nothing.
    pub fn signal_for_tenant(
        &self,
        tenant: TenantId,
        name: &str,
        entity: EntityId,
        weight: f64,
        ts: Option<Timestamp>,
    ) -> Result<EventId> {
        self.with_tenant(tenant, |st| {
            let op = ClientOp::Signal {
                signal: self.resolve(name)?,
                entity,
                weight,
                ts,
            };
            match st.submit(&[op], WriteConcern::Local, None)? {
                Submitted::Done(ack) => Ok(ack.event_id()),
                Submitted::Waiting(..) => Err(TidalError::Unavailable(
                    "the node held back the reply to a local write".into(),
                )),
            }
        })
    }

    /// The tenant's decayed score of `entity` on `signal` now.
    pub fn read_score_for_tenant(
        &self,
        tenant: TenantId,
        entity: EntityId,
        signal: &str,
    ) -> Result<f64> {
        self.read_score_for_tenant_at(tenant, entity, signal, Timestamp::now())
    }

    pub fn read_score_for_tenant_at(
        &self,
        tenant: TenantId,
        entity: EntityId,
        signal: &str,
        at: Timestamp,
    ) -> Result<f64> {
        self.with_tenant(tenant, |st| {
            st.node
                .ledger()
                .decay_score(self.resolve(signal)?, entity, at)
        })
    }

    /// Events of `signal` the tenant has recorded, over all time and every entity. Only
    /// signals that declare windows keep counts; others fail with `InvalidArgument`.
    pub fn total_signal_count_for_tenant(&self, tenant: TenantId, signal: &str) -> Result<u64> {
        self.with_tenant(tenant, |st| {
            st.node.ledger().total_signal_count(self.resolve(signal)?)
        })
    }

    /// Events the tenant has applied (every kind), which its storage quota is charged for.
    pub fn events_applied_for_tenant(&self, tenant: TenantId) -> Result<u64> {
        self.with_tenant(tenant, |st| Ok(st.node.ledger().version_vector().sum()))
    }

    /// What the last open recovered from the tenant's log (empty for a tenant registered
    /// since).
    pub fn tenant_recovery_report(&self, tenant: TenantId) -> Result<RecoveryReport> {
        if tenant == TenantId::DEFAULT {
            return Ok(self.recovery_report().clone());
        }
        self.shared.tenants.recovery_report(tenant)
    }

    fn with_tenant<R>(
        &self,
        tenant: TenantId,
        f: impl FnOnce(&mut State) -> Result<R>,
    ) -> Result<R> {
        if tenant == TenantId::DEFAULT {
            let mut st = self.lock()?;
            return f(&mut st);
        }
        self.shared.tenants.with_state(tenant, f)
    }
}
