//! Monitoring over HTTP, on its own port so it can be exposed to a scraper without exposing
//! the data: `GET /health` (the replica group's `ClusterHealth` JSON, as this node sees
//! it) and `GET /metrics` (Prometheus text).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tidaldb::TenantId;
use tidaldb::runtime::net::Server;
use tidaldb::runtime::net::proto::PeerLag;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `/health` and `/metrics` for `server` until `stop` turns true.
pub async fn serve(listener: TcpListener, server: Arc<Server>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a monitoring connection failed");
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, server.clone()));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
            {
                tracing::debug!(error = %e, "monitoring connection ended");
            }
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    server: Arc<Server>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => match health(&server) {
            Ok(json) => (StatusCode::OK, "application/json", json),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", e),
        },
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics(&server),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "tidaldb serves GET /health and GET /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(response)
}

fn health(server: &Server) -> Result<String, String> {
    let replicas = server.service().replicas();
    let default = replicas
        .iter()
        .find(|(t, _)| *t == TenantId(0))
        .ok_or("the default tenant's replica is not open")?;
    default
        .1
        .group_health()
        .map(|h| h.to_json())
        .map_err(|e| e.to_string())
}

/// A per-peer lag gauge: its name, its help text, and its value for one peer.
type LagMetric = (&'static str, &'static str, fn(&PeerLag) -> f64);

/// The Prometheus exposition: counters end in `_total`, and every series of one metric is
/// written under a single `# TYPE` line.
pub fn metrics(server: &Server) -> String {
    let mut out = String::new();
    let node = server.node().0;
    let stats = &server.service().stats;
    let counters = [
        (
            "tidaldb_client_requests_total",
            "Client requests answered.",
            &stats.requests,
        ),
        (
            "tidaldb_client_events_written_total",
            "Events written through the client port (the ingest rate is its rate()).",
            &stats.events_written,
        ),
        (
            "tidaldb_client_refusals_total",
            "Client requests refused with an error.",
            &stats.refusals,
        ),
        (
            "tidaldb_quota_refusals_total",
            "Writes refused by a tenant quota.",
            &stats.quota_refusals,
        ),
        (
            "tidaldb_connections_refused_total",
            "Client connections refused at TLS or handshake.",
            &stats.connections_refused,
        ),
    ];
    for (name, help, value) in counters {
        let v = value.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{node}\"}} {v}"
        );
    }

    let replicas = server.service().replicas();
    let _ = writeln!(
        out,
        "# HELP tidaldb_events_applied_total Events applied by this replica, from every origin.\n# TYPE tidaldb_events_applied_total counter"
    );
    for (tenant, db) in &replicas {
        if let Ok(n) = db.events_applied() {
            let _ = writeln!(
                out,
                "tidaldb_events_applied_total{{node=\"{node}\",tenant=\"{}\"}} {n}",
                tenant.0
            );
        }
    }
    let lags: Vec<_> = replicas
        .iter()
        .filter_map(|(t, db)| db.peer_lag().ok().map(|l| (*t, l)))
        .collect();
    let lag_metrics: [LagMetric; 2] = [
        (
            "tidaldb_replication_lag_events",
            "Events this replica holds that the peer has not acknowledged.",
            |l| l.events as f64,
        ),
        (
            "tidaldb_replication_lag_seconds",
            "Age of the oldest event the peer has not acknowledged.",
            |l| l.seconds,
        ),
    ];
    for (name, help, value) in lag_metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (tenant, lag) in &lags {
            for l in lag {
                let _ = writeln!(
                    out,
                    "{name}{{node=\"{node}\",tenant=\"{}\",peer=\"{}\"}} {}",
                    tenant.0,
                    l.peer.0,
                    value(l)
                );
            }
        }
    }
    let links = server.network().links();
    let link_metric =
        |out: &mut String,
         name: &str,
         kind: &str,
         help: &str,
         f: &dyn Fn(&tidaldb::runtime::net::LinkReading) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for l in &links {
                let _ = writeln!(
                    out,
                    "{name}{{node=\"{node}\",peer=\"{}\"}} {}",
                    l.peer.0,
                    f(l)
                );
            }
        };
    link_metric(
        &mut out,
        "tidaldb_peer_messages_sent_total",
        "counter",
        "Replication messages sent to the peer.",
        &|l| l.sent,
    );
    link_metric(
        &mut out,
        "tidaldb_peer_queue_dropped_total",
        "counter",
        "Replication messages dropped because the peer's send queue was full (the protocol retransmits).",
        &|l| l.dropped,
    );
    link_metric(
        &mut out,
        "tidaldb_peer_messages_received_total",
        "counter",
        "Replication messages received from the peer.",
        &|l| l.received,
    );
    link_metric(
        &mut out,
        "tidaldb_peer_connected",
        "gauge",
        "1 while the link to the peer is up.",
        &|l| u64::from(l.connected),
    );

    let fsync = tidaldb::wal::fsync_latency();
    let _ = writeln!(
        out,
        "# HELP tidaldb_wal_fsync_seconds Time the disk took to make the log durable.\n# TYPE tidaldb_wal_fsync_seconds histogram"
    );
    for (le, n) in &fsync.cumulative {
        let _ = writeln!(
            out,
            "tidaldb_wal_fsync_seconds_bucket{{node=\"{node}\",le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "tidaldb_wal_fsync_seconds_bucket{{node=\"{node}\",le=\"+Inf\"}} {}",
        fsync.count
    );
    let _ = writeln!(
        out,
        "tidaldb_wal_fsync_seconds_sum{{node=\"{node}\"}} {}",
        fsync.sum_secs
    );
    let _ = writeln!(
        out,
        "tidaldb_wal_fsync_seconds_count{{node=\"{node}\"}} {}",
        fsync.count
    );
    out
}

/// Binds the monitoring port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for monitoring: {e}"))
}
