//! A writer that runs on its own thread while the test kills and restarts nodes: batch
//! after batch of "view" (explicit timestamps) and "count", each recorded in its model only
//! once acknowledged.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use tidaldb::runtime::net::Client;
use tidaldb::runtime::net::proto::Concern;

use super::model::{HOUR_NS, Model};
use super::{PATIENCE, wait_until, write_counts, write_views};

/// What the test and the writer share while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Batches acknowledged so far (a batch is one "view" and one "count" write).
    pub acked: AtomicU64,
    /// The node that answered the last acknowledged write.
    pub node: AtomicU16,
    pub stop: AtomicBool,
}

impl Progress {
    /// Blocks until at least `more` further batches have been acknowledged.
    pub fn await_more(&self, more: u64) {
        let target = self.acked.load(Ordering::SeqCst) + more;
        wait_until(PATIENCE, &format!("{target} batches acknowledged"), || {
            let now = self.acked.load(Ordering::SeqCst);
            if now >= target {
                Ok(())
            } else {
                Err(format!("{now} acknowledged"))
            }
        });
    }
}

/// What the writer did.
#[derive(Debug, Default)]
pub struct Ingested {
    pub model: Model,
    /// Calls that returned an error (they are not in the model).
    pub failures: Vec<String>,
    /// Acknowledged writes the node recognised as retries of one it already held.
    pub duplicates: u64,
}

/// Writes `items` batch after batch until `progress.stop`; "view" events are stamped
/// within the hour before `at`, one millisecond apart per batch.
pub fn ingest(
    mut client: Client,
    progress: &Progress,
    items: &[u64],
    at: i64,
    concern: Concern,
) -> Ingested {
    let mut out = Ingested::default();
    let weights = vec![1.0; items.len()];
    let mut batch = 0i64;
    while !progress.stop.load(Ordering::SeqCst) {
        batch += 1;
        let ts: Vec<i64> = items
            .iter()
            .map(|e| at - HOUR_NS + batch * 1_000_000 + *e as i64)
            .collect();
        let written = write_views(&mut client, &mut out.model, items, &weights, &ts, concern)
            .and_then(|v| {
                let c = write_counts(&mut client, &mut out.model, items, concern)?;
                Ok([v, c])
            });
        match written {
            Ok(ws) => {
                out.duplicates += ws.iter().filter(|w| w.duplicate).count() as u64;
                progress.node.store(ws[1].served.node.0, Ordering::SeqCst);
                progress.acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                out.failures.push(e.to_string());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    out
}
