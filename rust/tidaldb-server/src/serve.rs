//! `tidaldb serve`: one server process, from its config to a graceful stop on SIGTERM or
//! SIGINT (stop accepting, sync every log, close).

use std::path::Path;
use std::sync::Arc;

use tidaldb::runtime::net::Server;
use tokio::sync::watch;

use crate::{config, http};

pub fn serve(config_path: &Path, insecure: bool) -> Result<(), String> {
    let loaded = config::load(config_path, insecure)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tidaldb")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let server = Arc::new(
            Server::start(loaded.spec)
                .await
                .map_err(|e| e.to_string())?,
        );
        let (stop, stopped) = watch::channel(false);
        if let Some(addr) = loaded.http {
            let listener = http::bind(addr).await?;
            tracing::info!(%addr, "monitoring on /health and /metrics");
            tokio::spawn(http::serve(listener, server.clone(), stopped));
        }
        let signal = shutdown_signal().await?;
        tracing::info!(
            signal,
            "shutting down: no new connections, syncing every log"
        );
        stop.send_replace(true);
        server
            .shutdown()
            .map_err(|e| format!("final sync failed: {e}"))
    })
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> Result<&'static str, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
