//! The Rust client: talks to any node of a cluster over the client protocol, and fails over
//! to the next address when the node it uses stops answering.
//!
//! Failover never counts a write twice. A read moves to the next node freely, also when a
//! node refuses it as unavailable (it is shutting down, or lost its log). A write
//! moves only while no node has received it; once sent, a write whose node stops answering
//! fails with `TidalError::OutcomeUnknown`: it may be applied, and it then replicates, or
//! it may be lost with the node. A node recognises a retried idempotency key only once the
//! original has reached it, so a blind retry elsewhere could count the write twice; the
//! caller decides (every write carries a key, so a retry to the same node after it
//! recovers is recognised).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, StreamExt};
use tokio::net::TcpStream;

use super::frame::{self, CLIENT_MAX_FRAME_BYTES, Conn, Dialer, Hello, Welcome};
use super::peers::host_of;
use super::proto::{Answer, Concern, Op, PeerLag, Ranked, Reply, Request, Served};
use super::tls::{Security, Stream};
use crate::error::{ErrorKind, Result, TidalError};
use crate::event::{EventId, TenantId};
use crate::ledger::ItemErrors;
use crate::schema::{NodeId, format_duration};

/// How a client reaches a cluster.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub cluster_id: String,
    pub security: Security,
    /// How long one request may take before the node counts as not answering.
    pub timeout: Duration,
}

impl ClientOptions {
    pub fn new(cluster_id: impl Into<String>, security: Security) -> ClientOptions {
        ClientOptions {
            cluster_id: cluster_id.into(),
            security,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub count: u64,
    /// The first event written; for a recognised retry, the original's.
    pub first: EventId,
    /// True when the node recognised the write as a retry and wrote nothing.
    pub duplicate: bool,
    pub served: Served,
}

/// The result of a retrieve: the top items, best first, and what the filter removed.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieved {
    pub items: Vec<Ranked>,
    /// Candidates dropped because the user hid them.
    pub hidden_filtered: u64,
    /// Distinct candidates considered.
    pub candidates: u64,
}

/// An answer and the node that gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answered<T> {
    pub value: T,
    pub served: Served,
}

/// A blocking connection to a cluster. It keeps one connection, to the first address that
/// answers, and moves to the next when that one fails.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    addrs: Vec<String>,
    current: usize,
    conn: Option<(Conn<Stream>, NodeId)>,
    options: ClientOptions,
    next_id: u64,
    key_state: u64,
    last_served: Option<Served>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addrs", &self.addrs)
            .field("connected_to", &self.conn.as_ref().map(|(_, n)| *n))
            .finish_non_exhaustive()
    }
}

/// For people: the nodes it may use and the one it is connected to.
impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "of {}", self.addrs.join(", "))?;
        match self.node() {
            Some(node) => write!(f, ", connected to node {}", node.0),
            None => write!(f, ", not connected"),
        }
    }
}

impl Client {
    /// Connects to the first of `addrs` (each `host:port`, a node's client port) that
    /// answers.
    pub fn connect<S: AsRef<str>>(addrs: &[S], options: ClientOptions) -> Result<Client> {
        if addrs.is_empty() {
            return Err(TidalError::InvalidArgument {
                name: "addrs",
                reason: "give at least one node's client address, as \"host:port\"".into(),
            });
        }
        refuse_inside_async()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TidalError::io("starting the client's runtime"))?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        let mut client = Client {
            runtime,
            addrs: addrs.iter().map(|a| a.as_ref().to_owned()).collect(),
            current: 0,
            conn: None,
            options,
            next_id: 1,
            key_state: seed,
            last_served: None,
        };
        client.ensure_connected()?;
        Ok(client)
    }

    /// The node this client is talking to now, if connected.
    pub fn node(&self) -> Option<NodeId> {
        self.conn.as_ref().map(|(_, n)| *n)
    }

    /// Which node answered the last call that got an answer, and how.
    pub fn last_served(&self) -> Option<&Served> {
        self.last_served.as_ref()
    }

    /// Sends `op` for `tenant` and waits for the answer. A read whose node does not answer
    /// goes to the next address, until each has been tried once. A write goes to the next
    /// address only while none has received it: once sent, a write whose node stops
    /// answering fails with `OutcomeUnknown`, because retrying it elsewhere could count it
    /// twice. The next call uses the next node.
    pub fn call(&mut self, tenant: TenantId, op: Op) -> Result<Answered<Answer>> {
        refuse_inside_async()?;
        let mut last_failure = None;
        // One request, re-sent with a new id on each attempt (not copied: its arrays may
        // hold a bulk call's whole batch).
        let mut request = Request { id: 0, tenant, op };
        for _ in 0..self.addrs.len() {
            if let Err(e) = self.ensure_connected() {
                last_failure = Some(e);
                continue;
            }
            request.id = self.next_id;
            self.next_id += 1;
            match self.exchange(&request) {
                Ok(reply) if request.op.is_read() && is_unavailable(&reply) => {
                    // A node that is shutting down (or lost its log) refuses, and another
                    // node can answer the same read.
                    let refused = self.unpack(reply).err();
                    tracing::warn!(addr = %self.addrs[self.current], error = ?refused, "node refused a read as unavailable; failing over");
                    self.conn = None;
                    self.current = (self.current + 1) % self.addrs.len();
                    last_failure = refused;
                }
                Ok(reply) => {
                    self.last_served = Some(reply.served.clone());
                    return self.unpack(reply);
                }
                Err(e) => {
                    tracing::warn!(addr = %self.addrs[self.current], error = %e, "node stopped answering; failing over");
                    let node = self.node().map_or(0, |n| n.0);
                    self.conn = None;
                    self.current = (self.current + 1) % self.addrs.len();
                    if request.op.is_write() {
                        // The request may have reached the node and been applied there, and
                        // a node recognises a retry's key only once the original reaches it:
                        // a retry elsewhere could count the write twice. The next call goes
                        // to the next node.
                        return Err(TidalError::OutcomeUnknown(format!(
                            "node {node} stopped answering after the write was sent ({e}); \
                             it may or may not have been applied"
                        )));
                    }
                    last_failure = Some(e);
                }
            }
        }
        Err(last_failure.unwrap_or_else(|| TidalError::Unavailable("no node answered".into())))
    }

    fn unpack(&self, reply: Reply) -> Result<Answered<Answer>> {
        match reply.result {
            Ok(value) => Ok(Answered {
                value,
                served: reply.served,
            }),
            Err(refused) => Err(TidalError::Remote {
                kind: refused.kind,
                server: format!("node {}", reply.served.node.0),
                message: refused.message,
                quota: refused.quota.map(Box::new),
            }),
        }
    }

    fn exchange(&mut self, request: &Request) -> Result<Reply> {
        let timeout = self.options.timeout;
        let Some((conn, _)) = self.conn.as_mut() else {
            return Err(TidalError::Unavailable("not connected".into()));
        };
        self.runtime.block_on(async {
            let roundtrip = async {
                frame::send(conn, request).await?;
                frame::recv::<_, Reply>(conn)
                    .await?
                    .ok_or_else(|| TidalError::Unavailable("the node closed the connection".into()))
            };
            tokio::time::timeout(timeout, roundtrip)
                .await
                .map_err(|_| {
                    TidalError::Timeout(format!("no answer within {}", format_duration(timeout)))
                })?
        })
    }

    /// Connects to the current address, or to the next ones in turn. A connection the node
    /// has closed since the last call (it restarted, or stopped) is replaced before anything
    /// is sent on it, so a write is not put in doubt by a connection that was already gone.
    fn ensure_connected(&mut self) -> Result<()> {
        if let Some((conn, _)) = self.conn.as_mut() {
            // Between calls the node sends nothing: anything readable now is its close. The
            // yield lets the runtime poll its I/O driver first (tokio learns that a socket is
            // readable only then), so a close that came while the client was idle is seen.
            let closed = self.runtime.block_on(async {
                tokio::task::yield_now().await;
                conn.next().now_or_never().is_some()
            });
            if !closed {
                return Ok(());
            }
            self.conn = None;
        }
        let mut failures = Vec::new();
        for _ in 0..self.addrs.len() {
            let addr = self.addrs[self.current].clone();
            let (timeout, options) = (self.options.timeout, &self.options);
            // The timer is made inside the runtime: tokio's timers need its context.
            let dialed = self
                .runtime
                .block_on(async { tokio::time::timeout(timeout, dial(&addr, options)).await });
            match dialed {
                Ok(Ok(conn)) => {
                    self.conn = Some(conn);
                    return Ok(());
                }
                Ok(Err(e)) if e.kind() == ErrorKind::InvalidArgument => return Err(e),
                Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
                Err(_) => failures.push(format!("{addr}: timed out")),
            }
            self.current = (self.current + 1) % self.addrs.len();
        }
        Err(TidalError::Unavailable(format!(
            "no node answered: {}",
            failures.join("; ")
        )))
    }

    /// A fresh idempotency key (splitmix64 over a per-client seed).
    pub fn new_key(&mut self) -> u64 {
        self.key_state = self.key_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.key_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Writes one signal. `ts_ns = None` stamps it with the node's clock.
    pub fn write(
        &mut self,
        tenant: TenantId,
        signal: &str,
        entity: u64,
        weight: f64,
        ts_ns: Option<i64>,
        concern: Concern,
    ) -> Result<Written> {
        self.write_many(
            tenant,
            signal,
            vec![entity],
            vec![weight],
            ts_ns.map(|t| vec![t]),
            concern,
        )
    }

    /// Writes many signals of one kind, whole or not at all.
    pub fn write_many(
        &mut self,
        tenant: TenantId,
        signal: &str,
        entities: Vec<u64>,
        weights: Vec<f64>,
        ts_ns: Option<Vec<i64>>,
        concern: Concern,
    ) -> Result<Written> {
        let idempotency_key = Some(self.new_key());
        let op = Op::Write {
            signal: signal.to_owned(),
            entities,
            weights,
            ts_ns,
            concern,
            idempotency_key,
        };
        written(self.call(tenant, op)?)
    }

    /// Hides `item` from `user` (or unhides it) as of `ts_ns` (`None`: the server's now).
    pub fn set_hidden(
        &mut self,
        tenant: TenantId,
        user: u64,
        item: u64,
        hidden: bool,
        ts_ns: Option<i64>,
        concern: Concern,
    ) -> Result<Written> {
        let idempotency_key = Some(self.new_key());
        let op = Op::Hide {
            user,
            item,
            hidden,
            ts_ns,
            concern,
            idempotency_key,
        };
        written(self.call(tenant, op)?)
    }

    pub fn scores(
        &mut self,
        tenant: TenantId,
        signal: &str,
        entities: Vec<u64>,
        at_ns: Option<i64>,
    ) -> Result<Answered<Vec<f64>>> {
        self.scores_on_error(tenant, signal, entities, at_ns, ItemErrors::Raise)
    }

    /// [`scores`](Self::scores), with an entity whose score cannot be read (a read that
    /// would overflow, or before a linear signal's retained history) read as NaN when
    /// `errors` is [`ItemErrors::Nan`].
    pub fn scores_on_error(
        &mut self,
        tenant: TenantId,
        signal: &str,
        entities: Vec<u64>,
        at_ns: Option<i64>,
        errors: ItemErrors,
    ) -> Result<Answered<Vec<f64>>> {
        let op = Op::Scores {
            signal: signal.to_owned(),
            entities,
            at_ns,
            errors,
        };
        let a = self.call(tenant, op)?;
        match a.value {
            Answer::Scores(v) => Ok(Answered {
                value: v,
                served: a.served,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Count and weight sum of `signal` on `entity` in `window` (e.g. "1h").
    pub fn window(
        &mut self,
        tenant: TenantId,
        signal: &str,
        entity: u64,
        window: &str,
        at_ns: Option<i64>,
    ) -> Result<Answered<(u64, f64)>> {
        let op = Op::Window {
            signal: signal.to_owned(),
            entity,
            window: window.to_owned(),
            at_ns,
        };
        let a = self.call(tenant, op)?;
        match a.value {
            Answer::Window { count, weight } => Ok(Answered {
                value: (count, weight),
                served: a.served,
            }),
            other => Err(unexpected(&other)),
        }
    }

    pub fn is_hidden(&mut self, tenant: TenantId, user: u64, item: u64) -> Result<bool> {
        match self.call(tenant, Op::IsHidden { user, item })?.value {
            Answer::Bool(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    /// The top `limit` candidates by the weighted sum of `rank_by`'s signals, without the
    /// user's hidden items.
    pub fn retrieve(
        &mut self,
        tenant: TenantId,
        user: Option<u64>,
        candidates: Vec<u64>,
        rank_by: Vec<(String, f64)>,
        limit: u32,
        at_ns: Option<i64>,
    ) -> Result<Answered<Retrieved>> {
        let op = Op::Retrieve {
            user,
            candidates,
            rank_by,
            limit,
            at_ns,
        };
        let a = self.call(tenant, op)?;
        match a.value {
            Answer::Ranked {
                items,
                hidden_filtered,
                candidates,
            } => Ok(Answered {
                value: Retrieved {
                    items,
                    hidden_filtered,
                    candidates,
                },
                served: a.served,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// The answering node's replication lag behind each of its peers.
    pub fn lag(&mut self, tenant: TenantId) -> Result<Answered<Vec<PeerLag>>> {
        let a = self.call(tenant, Op::Lag)?;
        match a.value {
            Answer::Lag(v) => Ok(Answered {
                value: v,
                served: a.served,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// The answering node's view of its group, as `ClusterHealth` JSON.
    pub fn health(&mut self, tenant: TenantId) -> Result<String> {
        self.json(tenant, Op::Health)
    }

    /// What the answering node's control-plane voter knows, as JSON: its Raft term and
    /// leader, and each replica group's committed leader and term.
    pub fn control_json(&mut self) -> Result<String> {
        self.json(TenantId(0), Op::Control)
    }

    /// Sends an operator's command to the control plane; returns once it is committed
    /// and applied. Refused commands (an unknown region, say) change nothing.
    pub fn admin(&mut self, op: super::proto::AdminOp) -> Result<()> {
        match self.call(TenantId(0), Op::Admin(op))?.value {
            Answer::Bool(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The schema the cluster serves, as JSON.
    pub fn schema_json(&mut self) -> Result<String> {
        self.json(TenantId(0), Op::Schema)
    }

    /// The cluster's region names, indexed by region id, as a JSON list.
    pub fn regions_json(&mut self) -> Result<String> {
        self.json(TenantId(0), Op::Regions)
    }

    fn json(&mut self, tenant: TenantId, op: Op) -> Result<String> {
        match self.call(tenant, op)?.value {
            Answer::Json(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }
}

fn is_unavailable(reply: &Reply) -> bool {
    matches!(&reply.result, Err(refused) if refused.kind == ErrorKind::Unavailable)
}

fn written(a: Answered<Answer>) -> Result<Written> {
    match a.value {
        Answer::Written {
            count,
            first,
            duplicate,
        } => Ok(Written {
            count,
            first,
            duplicate,
            served: a.served,
        }),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(answer: &Answer) -> TidalError {
    TidalError::Unavailable(format!(
        "the node answered with {answer:?}, which does not fit the request; \
         is it running the same tidaldb release?"
    ))
}

/// A blocking client call inside async code would stall that runtime's thread.
fn refuse_inside_async() -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(TidalError::InvalidArgument {
            name: "client",
            reason: "the blocking client was called from async code; call it from a \
                     plain thread (e.g. tokio::task::spawn_blocking)"
                .into(),
        });
    }
    Ok(())
}

async fn dial(addr: &str, options: &ClientOptions) -> Result<(Conn<Stream>, NodeId)> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(TidalError::io(format!("connecting to {addr}")))?;
    let _ = tcp.set_nodelay(true);
    let stream = options
        .security
        .connect(host_of(addr), tcp)
        .await
        .map_err(TidalError::io(format!("TLS handshake with {addr}")))?;
    let mut conn = frame::framed(stream);
    frame::send(&mut conn, &Hello::new(&options.cluster_id, Dialer::Client)).await?;
    match frame::recv::<_, Welcome>(&mut conn).await? {
        Some(Welcome::Ok { node }) => {
            frame::open_up(&mut conn, CLIENT_MAX_FRAME_BYTES);
            Ok((conn, node))
        }
        Some(Welcome::Refused(reason)) => Err(TidalError::InvalidArgument {
            name: "cluster_id",
            reason: format!("{addr} refused this client: {reason}"),
        }),
        None => Err(TidalError::Unavailable(format!(
            "{addr} closed the connection during the handshake"
        ))),
    }
}
