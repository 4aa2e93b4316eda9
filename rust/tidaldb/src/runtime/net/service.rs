//! The node's side of the client protocol: accepts clients on the client port, checks
//! their hello, and answers each request from the replica of the tenant it names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::drain::InFlight;
use super::frame::{self, CLIENT_MAX_FRAME_BYTES, Dialer, Hello, Welcome};
use super::proto::{Answer, Concern, Op, Ranked, Refused, Reply, Request, Served};
use super::tls::Security;
use crate::error::{Result, TidalError};
use crate::event::{IdempotencyKey, TenantId};
use crate::node::{ClientOp, WriteAck, WriteConcern};
use crate::query::Retrieve;
use crate::runtime::TidalDb;
use crate::runtime::db::check_batch_lengths;
use crate::schema::{EntityId, NodeId, Timestamp, Window};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client port has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct ServiceStats {
    pub requests: AtomicU64,
    pub events_written: AtomicU64,
    pub refusals: AtomicU64,
    pub quota_refusals: AtomicU64,
    pub connections_refused: AtomicU64,
}

/// Answers clients from this process's replicas, one per hosted tenant.
#[derive(Debug)]
pub struct ClientService {
    cluster_id: String,
    node: NodeId,
    region: String,
    region_names: Vec<String>,
    security: Security,
    replicas: RwLock<BTreeMap<TenantId, TidalDb>>,
    /// For each hosted replica, the migration that placed it here (see
    /// [`HostOrder::placed_by`](super::placement::HostOrder::placed_by)).
    placed_by: RwLock<BTreeMap<TenantId, u64>>,
    /// Tenants migrating or migrated away from this process: refused, so clients move on.
    retired: RwLock<BTreeSet<TenantId>>,
    control: std::sync::OnceLock<super::control_host::ControlHost>,
    in_flight: InFlight,
    pub stats: ServiceStats,
}

impl ClientService {
    pub fn new(
        cluster_id: String,
        node: NodeId,
        region: crate::schema::RegionId,
        region_names: Vec<String>,
        security: Security,
    ) -> Arc<ClientService> {
        let region = region_names
            .get(usize::from(region.0))
            .cloned()
            .unwrap_or_else(|| format!("region {}", region.0));
        Arc::new(ClientService {
            cluster_id,
            node,
            region,
            region_names,
            security,
            replicas: RwLock::new(BTreeMap::new()),
            placed_by: RwLock::new(BTreeMap::new()),
            retired: RwLock::new(BTreeSet::new()),
            control: std::sync::OnceLock::new(),
            in_flight: InFlight::default(),
            stats: ServiceStats::default(),
        })
    }

    /// Serves `tenant` from `db`, placed here by migration `placed_by` (0: at
    /// registration), from now on; unless `db` stopped serving for good (a migration's
    /// source that restarted): then its requests are refused as before.
    pub fn host(&self, tenant: TenantId, db: TidalDb, placed_by: u64) {
        if let Ok(mut placed) = self.placed_by.write() {
            placed.insert(tenant, placed_by);
        }
        let stopped = db.hard_state().is_ok_and(|h| h.stopped_serving);
        if let Ok(mut retired) = self.retired.write() {
            match stopped {
                true => retired.insert(tenant),
                false => retired.remove(&tenant),
            };
        }
        if let Ok(mut r) = self.replicas.write() {
            r.insert(tenant, db);
        }
    }

    /// Stops serving `tenant` and hands back its replica (a migration moved it away);
    /// from now on its requests are refused as unavailable, so clients fail over.
    pub fn unhost(&self, tenant: TenantId) -> Option<TidalDb> {
        self.retire(tenant);
        if let Ok(mut placed) = self.placed_by.write() {
            placed.remove(&tenant);
        }
        self.replicas.write().ok()?.remove(&tenant)
    }

    /// Stops serving `tenant` while its replica keeps replicating: requests are refused
    /// as unavailable, so clients fail over to the tenant's other replicas.
    pub fn retire(&self, tenant: TenantId) {
        if let Ok(mut retired) = self.retired.write() {
            retired.insert(tenant);
        }
    }

    /// Whether this process hosts a replica of `tenant`.
    pub fn hosts(&self, tenant: TenantId) -> bool {
        self.replicas.read().is_ok_and(|r| r.contains_key(&tenant))
    }

    /// The migration that placed this process's replica of `tenant` here, if it hosts one.
    pub fn placed_by(&self, tenant: TenantId) -> Option<u64> {
        self.placed_by.read().ok()?.get(&tenant).copied()
    }

    /// The replica of `tenant` this process hosts.
    pub fn replica(&self, tenant: TenantId) -> Option<TidalDb> {
        self.replicas.read().ok()?.get(&tenant).cloned()
    }

    /// Answers `Op::Control` from `host` from now on.
    pub fn set_control(&self, host: super::control_host::ControlHost) {
        let _ = self.control.set(host);
    }

    /// The replicas this process hosts, by tenant.
    pub fn replicas(&self) -> Vec<(TenantId, TidalDb)> {
        self.replicas
            .read()
            .map(|r| r.iter().map(|(t, db)| (*t, db.clone())).collect())
            .unwrap_or_default()
    }

    /// Accepts clients until `stop` turns true.
    pub async fn listen(self: Arc<Self>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, from)) => {
                        let service = self.clone();
                        let stop = stop.clone();
                        tokio::spawn(async move {
                            if let Err(reason) = service.serve(tcp, stop).await {
                                tracing::warn!(%from, %reason, "closed a client connection");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a client failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    async fn serve(
        &self,
        tcp: TcpStream,
        mut stop: watch::Receiver<bool>,
    ) -> std::result::Result<(), String> {
        let _ = tcp.set_nodelay(true);
        let refused = |why: String| {
            self.stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            why
        };
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.security.accept(tcp))
            .await
            .map_err(|_| refused("TLS handshake timed out".into()))?
            .map_err(|e| refused(format!("TLS handshake failed: {e}")))?;
        let mut conn = frame::framed(stream);
        let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, frame::recv::<_, Hello>(&mut conn))
            .await
            .map_err(|_| refused("no hello within 5 s".into()))?
            .map_err(|e| refused(format!("bad hello: {e}")))?
            .ok_or_else(|| refused("closed before its hello".into()))?;
        let checked = frame::check_hello(&hello, &self.cluster_id, |d| match d {
            Dialer::Client => Ok(()),
            Dialer::Peer(_) => {
                Err("this is the client port; replicas connect to the peer port".into())
            }
        });
        if let Err(reason) = checked {
            let _ = frame::send(&mut conn, &Welcome::Refused(reason.0.clone())).await;
            return Err(refused(format!("refused: {reason}")));
        }
        frame::send(&mut conn, &Welcome::Ok { node: self.node })
            .await
            .map_err(|e| e.to_string())?;
        frame::open_up(&mut conn, CLIENT_MAX_FRAME_BYTES);
        loop {
            let request = tokio::select! {
                biased;
                _ = stop.changed() => return Ok(()),
                r = frame::recv::<_, Request>(&mut conn) => r,
            };
            let request = match request {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            let Some(_answering) = self.in_flight.enter() else {
                let reply = self.refuse_while_stopping(request.id);
                let _ = frame::send(&mut conn, &reply).await;
                return Ok(());
            };
            let reply = self.answer(request).await;
            frame::send(&mut conn, &reply)
                .await
                .map_err(|e| e.to_string())?;
        }
    }

    /// Stops answering: requests that arrive from now on are refused untouched, and this
    /// waits up to `patience` for those being answered, so none meets a closed replica.
    /// Returns how many were still running when it gave up.
    pub fn stop_answering(&self, patience: Duration) -> usize {
        self.in_flight.stop_and_wait(patience)
    }

    fn refuse_while_stopping(&self, id: u64) -> Reply {
        let stopping = TidalError::Unavailable(format!(
            "node {} is shutting down; the request was not applied, another node can take it",
            self.node.0
        ));
        debug_assert!(self.in_flight.is_stopping());
        Reply {
            id,
            served: self.served_here(),
            result: Err(Refused::from(&stopping)),
        }
    }

    fn served_here(&self) -> Served {
        Served {
            node: self.node,
            region: self.region.clone(),
            ..Served::default()
        }
    }

    /// One request's reply. Never fails: every error becomes a `Refused` for the client.
    pub async fn answer(&self, request: Request) -> Reply {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let db = self.replica(request.tenant);
        let mut served = self.served_here();
        let retired = self
            .retired
            .read()
            .is_ok_and(|r| r.contains(&request.tenant));
        let result = match db {
            _ if retired => Err(TidalError::Unavailable(format!(
                "tenant {} has moved away from node {}; its other replicas serve it",
                request.tenant.0, self.node.0
            ))),
            None => Err(TidalError::UnknownTenant(request.tenant.0)),
            Some(db) => {
                if let Ok(unreachable) = db.unreachable_peers() {
                    served.degraded = !unreachable.is_empty();
                    served.unreachable = unreachable;
                }
                self.run(&db, request.op).await
            }
        };
        let result = result.map_err(|e| {
            self.stats.refusals.fetch_add(1, Ordering::Relaxed);
            if e.kind() == crate::error::ErrorKind::QuotaExceeded {
                self.stats.quota_refusals.fetch_add(1, Ordering::Relaxed);
            }
            Refused::from(&e)
        });
        Reply {
            id: request.id,
            served,
            result,
        }
    }

    async fn run(&self, db: &TidalDb, op: Op) -> Result<Answer> {
        match op {
            Op::Write {
                signal,
                entities,
                weights,
                ts_ns,
                concern,
                idempotency_key,
            } => {
                let ops = signal_ops(db, &signal, &entities, &weights, ts_ns.as_deref())?;
                let ack = write(db, &ops, concern, idempotency_key).await?;
                Ok(self.written(ack))
            }
            Op::Hide {
                user,
                item,
                hidden,
                ts_ns,
                concern,
                idempotency_key,
            } => {
                let (user, item) = (EntityId(user), EntityId(item));
                let ts = ts_ns.map(Timestamp::from_nanos).transpose()?;
                let op = if hidden {
                    ClientOp::Hide { user, item, ts }
                } else {
                    ClientOp::Unhide { user, item, ts }
                };
                let ack = write(db, &[op], concern, idempotency_key).await?;
                Ok(self.written(ack))
            }
            Op::Scores {
                signal,
                entities,
                at_ns,
                errors,
            } => {
                let ids: Vec<EntityId> = entities.into_iter().map(EntityId).collect();
                let mut out = vec![0.0; ids.len()];
                db.read_decay_scores_on_error_at(&signal, &ids, at(at_ns)?, errors, &mut out)?;
                Ok(Answer::Scores(out))
            }
            Op::Window {
                signal,
                entity,
                window,
                at_ns,
            } => {
                let window = Window::parse(&window)?;
                let r = db.read_window_at(EntityId(entity), &signal, window, at(at_ns)?)?;
                Ok(Answer::Window {
                    count: r.count,
                    weight: r.weight_sum,
                })
            }
            Op::IsHidden { user, item } => {
                Ok(Answer::Bool(db.is_hidden(EntityId(user), EntityId(item))?))
            }
            Op::Retrieve {
                user,
                candidates,
                rank_by,
                limit,
                at_ns,
            } => {
                let terms: Vec<(&str, f64)> =
                    rank_by.iter().map(|(s, w)| (s.as_str(), *w)).collect();
                let mut q = Retrieve::builder()
                    .candidates(candidates.into_iter().map(EntityId))
                    .rank_by(&terms)
                    .limit(limit as usize);
                if let Some(u) = user {
                    q = q.for_user(EntityId(u));
                }
                if let Some(t) = at_ns {
                    q = q.at(Timestamp::from_nanos(t)?);
                }
                let results = db.retrieve(&q.build()?)?;
                Ok(Answer::Ranked {
                    items: results
                        .items
                        .iter()
                        .map(|s| Ranked {
                            item: s.item.0,
                            score: s.score,
                        })
                        .collect(),
                    hidden_filtered: results.stats.hidden_filtered as u64,
                    candidates: results.stats.candidates_considered as u64,
                })
            }
            Op::Lag => Ok(Answer::Lag(db.peer_lag()?)),
            Op::Health => Ok(Answer::Json(db.group_health()?.to_json())),
            Op::Admin(op) => match self.control.get() {
                Some(host) => host.admin(op).await.map(|()| Answer::Bool(true)),
                None => Err(TidalError::Unavailable(format!(
                    "node {} runs no control plane (its config has no [control] section)",
                    self.node.0
                ))),
            },
            Op::Control => {
                let status = self.control.get().map(|c| c.status()).unwrap_or_default();
                serde_json::to_string(&status)
                    .map(Answer::Json)
                    .map_err(|e| TidalError::InvalidArgument {
                        name: "control status",
                        reason: e.to_string(),
                    })
            }
            Op::Regions => Ok(Answer::Json(
                serde_json::to_string(&self.region_names).unwrap_or_else(|_| "[]".into()),
            )),
            Op::Schema => serde_json::to_string(db.schema().as_ref())
                .map(Answer::Json)
                .map_err(|e| TidalError::InvalidArgument {
                    name: "schema",
                    reason: e.to_string(),
                }),
        }
    }

    fn written(&self, ack: WriteAck) -> Answer {
        match ack {
            WriteAck::Applied { first, count } => {
                self.stats
                    .events_written
                    .fetch_add(count as u64, Ordering::Relaxed);
                Answer::Written {
                    count: count as u64,
                    first,
                    duplicate: false,
                }
            }
            WriteAck::Duplicate { original } => Answer::Written {
                count: 0,
                first: original,
                duplicate: true,
            },
        }
    }
}

fn clamp(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

fn at(at_ns: Option<i64>) -> Result<Timestamp> {
    at_ns.map_or_else(|| Ok(Timestamp::now()), Timestamp::from_nanos)
}

fn signal_ops(
    db: &TidalDb,
    signal: &str,
    entities: &[u64],
    weights: &[f64],
    ts_ns: Option<&[i64]>,
) -> Result<Vec<ClientOp>> {
    let signal = db.resolve(signal)?;
    check_batch_lengths(entities.len(), weights.len(), ts_ns.map(<[i64]>::len))?;
    (0..entities.len())
        .map(|i| {
            let ts = match ts_ns {
                Some(t) => Some(Timestamp::from_nanos(t[i])?),
                None => None,
            };
            Ok(ClientOp::Signal {
                signal,
                entity: EntityId(entities[i]),
                weight: weights[i],
                ts,
            })
        })
        .collect()
}

async fn write(
    db: &TidalDb,
    ops: &[ClientOp],
    concern: Concern,
    key: Option<u64>,
) -> Result<WriteAck> {
    // The group's size is looked up only for the concerns that depend on it, not on
    // every write.
    let others = || db.peer_lag().map(|peers| peers.len());
    let concern = match concern {
        Concern::Local => WriteConcern::Local,
        Concern::Replicated(k) => WriteConcern::Replicated(k),
        // A majority of the group, this node included, so `n / 2` others.
        Concern::Majority => WriteConcern::Replicated(clamp(others()?.div_ceil(2))),
        Concern::All => WriteConcern::Replicated(clamp(others()?)),
    };
    let tag = key.map(|k| crate::event::ClientTag::Key(IdempotencyKey(k)));
    db.write_request(ops, concern, tag).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::ledger::ItemErrors;
    use crate::schema::RegionId;

    #[test]
    fn a_replica_that_stopped_serving_is_refused_when_hosted_again() {
        const T: TenantId = TenantId(5);
        let service = ClientService::new(
            "c".into(),
            NodeId(0),
            RegionId(0),
            vec!["r0".into()],
            Security::Insecure,
        );
        let schema = crate::schema::hourly_view_schema();
        let db = TidalDb::builder()
            .ephemeral()
            .with_schema(schema)
            .open()
            .unwrap();
        let read = || Request {
            id: 1,
            tenant: T,
            op: Op::Scores {
                signal: "view".into(),
                entities: vec![1],
                at_ns: None,
                errors: ItemErrors::Raise,
            },
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        service.host(T, db.clone(), 0);
        assert!(runtime.block_on(service.answer(read())).result.is_ok());

        db.stop_serving(NodeId(1)).unwrap();
        // As the process hosts it again after a restart, with no order to stop since.
        service.host(T, db, 0);
        let refused = runtime.block_on(service.answer(read())).result.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Unavailable, "{refused:?}");
    }
}
