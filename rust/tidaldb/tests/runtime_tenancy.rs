//! The embedded runtime as a multi-tenant database: isolation, quotas through the public
//! API, persistence of tenants and their data, and what it refuses. Scores are checked
//! against the analytical decay Σ w·2^(-Δ/h) of the acknowledged writes, and counts
//! against the number of acknowledged writes.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{SplitMix, T0, ts};
use tidaldb::tenancy::{EVENT_STORAGE_BYTES, Quota, QuotaBreach, TenantConfig};
use tidaldb::wal::list_segments;
use tidaldb::{
    Durability, EntityId, RegionId, Schema, ShardId, TenantId, TidalDb, TidalError, Timestamp,
};

#[path = "runtime_tenancy/files.rs"]
mod files;
#[path = "runtime_tenancy/quotas.rs"]
mod quotas;

const HOUR_NS: i64 = 3_600_000_000_000;

fn schema() -> Schema {
    common::hourly_view_schema()
}

fn open(dir: &Path) -> TidalDb {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .open()
        .unwrap()
}

fn tenant(id: u64, label: &str) -> TenantConfig {
    TenantConfig::new(TenantId(id), label)
}

/// The acknowledged writes of one tenant, and what they must add up to.
#[derive(Default)]
struct Oracle {
    writes: Vec<(EntityId, f64, i64)>,
}

impl Oracle {
    fn score(&self, entity: EntityId, at: i64) -> f64 {
        self.writes
            .iter()
            .filter(|(e, _, _)| *e == entity)
            .map(|(_, w, t)| w * (-((at - t) as f64) / HOUR_NS as f64).exp2())
            .sum()
    }

    fn count(&self) -> u64 {
        self.writes.len() as u64
    }
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: got {got}, the oracle says {want}"
    );
}

fn breach(r: tidaldb::Result<tidaldb::EventId>) -> QuotaBreach {
    match r {
        Err(TidalError::QuotaExceeded(b)) => b,
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
}

/// Every path under `root`, without following symbolic links.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// File names and sizes in a directory.
fn listing(dir: &Path) -> BTreeMap<String, u64> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

/// Batched, so that hundreds of writes fit well inside one rate-limit token (10 ms).
fn open_batched(dir: &Path) -> TidalDb {
    TidalDb::builder()
        .with_data_dir(dir)
        .with_schema(schema())
        .durability(Durability::Batched {
            max_batch: 1 << 16,
            max_delay: Duration::from_millis(20),
        })
        .open()
        .unwrap()
}

#[test]
fn tenants_are_islands_sharing_entity_ids_but_no_data_or_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let default_wal = listing(&dir.path().join("wal"));
    for (id, label) in [(1, "alpha"), (2, "beta")] {
        db.register_tenant(tenant(id, label)).unwrap();
    }
    // Both tenants write to entities 0..8, from two threads at once, with different weights.
    let writers: Vec<_> = [1u64, 2]
        .into_iter()
        .map(|id| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut rng = SplitMix(id);
                let mut oracle = Oracle::default();
                for i in 0..300 {
                    let e = EntityId(rng.below(8));
                    let w = (id * 10 + rng.below(5)) as f64;
                    let t = T0 + i * 1_000_000_000;
                    let eid = db
                        .signal_for_tenant(TenantId(id), "view", e, w, Some(ts(t)))
                        .unwrap();
                    // Each tenant has its own seq space, dense from 1.
                    assert_eq!(eid.seq, i as u64 + 1, "tenant {id}");
                    oracle.writes.push((e, w, t));
                }
                (id, oracle)
            })
        })
        .collect();
    let oracles: BTreeMap<u64, Oracle> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    let at = T0 + 2 * HOUR_NS;
    for (id, oracle) in &oracles {
        let t = TenantId(*id);
        assert_eq!(
            db.total_signal_count_for_tenant(t, "view").unwrap(),
            oracle.count()
        );
        assert_eq!(db.events_applied_for_tenant(t).unwrap(), oracle.count());
        for e in (0..8).map(EntityId) {
            let got = db.read_score_for_tenant_at(t, e, "view", ts(at)).unwrap();
            assert_close(
                got,
                oracle.score(e, at),
                &format!("tenant {id} entity {}", e.0),
            );
        }
    }
    // The default tenant sees neither, by either API.
    assert_eq!(db.events_applied().unwrap(), 0);
    assert_eq!(
        db.total_signal_count_for_tenant(TenantId::DEFAULT, "view")
            .unwrap(),
        0
    );
    for e in (0..8).map(EntityId) {
        assert_eq!(db.read_decay_score_at(e, "view", ts(at)).unwrap(), 0.0);
        let via_tenant_api = db
            .read_score_for_tenant_at(TenantId::DEFAULT, e, "view", ts(at))
            .unwrap();
        assert_eq!(via_tenant_api, 0.0);
    }
    // TenantId::DEFAULT addresses the default tenant, the one `signal` writes to.
    db.signal_for_tenant(TenantId::DEFAULT, "view", EntityId(3), 5.0, Some(ts(T0)))
        .unwrap();
    assert_eq!(
        db.read_decay_score_at(EntityId(3), "view", ts(T0)).unwrap(),
        5.0
    );
    assert_close(
        db.read_score_for_tenant_at(TenantId(1), EntityId(3), "view", ts(at))
            .unwrap(),
        oracles[&1].score(EntityId(3), at),
        "tenant 1 after a default write",
    );
    // Files: each tenant its own log; the default log untouched by them.
    db.flush().unwrap();
    for id in [1, 2] {
        let wal = dir.path().join(format!("tenants/{id}/wal"));
        let segments = list_segments(&wal, ShardId(0)).unwrap();
        let bytes: u64 = segments
            .iter()
            .map(|(_, p)| fs::metadata(p).unwrap().len())
            .sum();
        assert!(bytes > 0, "tenant {id}'s segments {segments:?} are empty");
        assert!(
            dir.path()
                .join(format!("tenants/{id}/tenant.json"))
                .is_file()
        );
    }
    db.close().unwrap();
    let default_after = listing(&dir.path().join("wal"));
    // The default log grew by exactly the one default write, nothing of the tenants'.
    // A segment file appears with its first write: none before, one after.
    assert!(default_wal.is_empty(), "{default_wal:?}");
    assert_eq!(default_after.len(), 1, "{default_after:?}");
    let grown: u64 = default_after.values().sum::<u64>() - default_wal.values().sum::<u64>();
    assert!(
        grown > 0 && grown < 200,
        "the default log grew by {grown} bytes for one event"
    );
}

#[test]
fn ephemeral_tenants_live_in_memory() {
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    db.register_tenant(tenant(4, "mem")).unwrap();
    db.signal_for_tenant(TenantId(4), "view", EntityId(1), 2.0, Some(ts(T0)))
        .unwrap();
    assert_eq!(
        db.read_score_for_tenant_at(TenantId(4), EntityId(1), "view", ts(T0 + HOUR_NS))
            .unwrap(),
        1.0
    );
    assert_eq!(db.tenants(), vec![tenant(4, "mem")]);
}

#[test]
fn tenants_and_their_data_survive_close_and_reopen_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let configs = vec![
        TenantConfig {
            max_signals_per_sec: Some(1_000_000),
            max_entities: Some(1_000),
            max_storage_bytes: Some(1 << 30),
            required_regions: vec![RegionId(0)],
            ..tenant(1, "everything set")
        },
        tenant(u64::MAX, "largest id"),
        tenant(42, "../not a path"),
    ];
    let reopen = || {
        TidalDb::builder()
            .with_data_dir(dir.path())
            .with_schema(schema())
            .snapshot_every(50)
            .open()
            .unwrap()
    };
    let mut rng = SplitMix(9);
    let mut written = BTreeMap::new();
    let at = ts(T0 + 3 * HOUR_NS);
    let read_all = |db: &TidalDb| -> Vec<(u64, u64, Vec<u64>)> {
        configs
            .iter()
            .map(|c| {
                let t = c.tenant_id;
                let scores = (0..10)
                    .map(|e| {
                        db.read_score_for_tenant_at(t, EntityId(e), "view", at)
                            .unwrap()
                            .to_bits()
                    })
                    .collect();
                let count = db.total_signal_count_for_tenant(t, "view").unwrap();
                (t.0, count, scores)
            })
            .collect()
    };
    let before = {
        let db = reopen();
        for c in &configs {
            db.register_tenant(c.clone()).unwrap();
        }
        for (k, c) in configs.iter().enumerate() {
            let n = 120 + 7 * k as u64;
            let mut oracle = Oracle::default();
            for i in 0..n as i64 {
                let (e, w) = (EntityId(rng.below(10)), 1.0 + rng.below(4) as f64);
                let t = T0 + i * 60_000_000_000;
                db.signal_for_tenant(c.tenant_id, "view", e, w, Some(ts(t)))
                    .unwrap();
                oracle.writes.push((e, w, t));
            }
            written.insert(c.tenant_id, oracle);
        }
        let before = read_all(&db);
        db.close().unwrap();
        before
    };
    for (t, count, scores) in &before {
        let oracle = &written[&TenantId(*t)];
        assert_eq!(*count, oracle.count());
        for (e, bits) in scores.iter().enumerate() {
            let want = oracle.score(EntityId(e as u64), at.as_nanos());
            assert_close(f64::from_bits(*bits), want, &format!("tenant {t}"));
        }
    }
    let mut sorted = configs.clone();
    sorted.sort_by_key(|c| c.tenant_id);
    {
        // Reopened: the same configs, bit-identical scores, recovered through snapshots.
        let db = reopen();
        assert_eq!(db.tenants(), sorted);
        assert_eq!(read_all(&db), before);
        let report = db.tenant_recovery_report(TenantId(1)).unwrap();
        assert!(report.snapshot_lsn >= 100, "{report:?}");
        // Seqs continue where they stopped; dropped without close this time.
        let next = db
            .signal_for_tenant(TenantId(42), "view", EntityId(0), 1.0, Some(ts(T0)))
            .unwrap();
        assert_eq!(next.seq, written[&TenantId(42)].count() + 1);
    }
    let db = reopen();
    assert_eq!(db.tenants(), sorted);
    assert_eq!(
        db.total_signal_count_for_tenant(TenantId(42), "view")
            .unwrap(),
        written[&TenantId(42)].count() + 1
    );
}

#[test]
fn bad_registrations_and_calls_fail_with_their_own_variants() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t5 = TenantId(5);
    let zero_quotas = [
        TenantConfig {
            max_signals_per_sec: Some(0),
            ..tenant(5, "z")
        },
        TenantConfig {
            max_entities: Some(0),
            ..tenant(5, "z")
        },
        TenantConfig {
            max_storage_bytes: Some(0),
            ..tenant(5, "z")
        },
        TenantConfig {
            required_regions: vec![RegionId(9)],
            ..tenant(5, "elsewhere")
        },
    ];
    for cfg in zero_quotas {
        let r = db.register_tenant(cfg.clone());
        assert!(
            matches!(r, Err(TidalError::InvalidTenantConfig { tenant, .. }) if tenant == t5.0),
            "{cfg:?}: {r:?}"
        );
    }
    assert!(db.tenants().is_empty());
    assert!(!dir.path().join("tenants/5").exists());
    // The default tenant is built in.
    let r = db.register_tenant(TenantConfig::default_tenant());
    assert!(
        matches!(&r, Err(TidalError::InvalidTenantConfig { tenant, reason })
            if *tenant == TenantId::DEFAULT.0 && reason.contains("default")),
        "{r:?}"
    );
    db.register_tenant(tenant(5, "five")).unwrap();
    let r = db.register_tenant(tenant(5, "five again"));
    assert!(matches!(r, Err(TidalError::Conflict(_))), "{r:?}");
    assert_eq!(db.tenants(), vec![tenant(5, "five")]);

    let u = TenantId(99);
    let unknown = |r: Result<(), TidalError>, api: &str| {
        assert!(
            matches!(r, Err(TidalError::UnknownTenant(t)) if t == u.0),
            "{api}: {r:?}"
        );
    };
    let now = Timestamp::now();
    unknown(
        db.signal_for_tenant(u, "view", EntityId(1), 1.0, None)
            .map(drop),
        "signal_for_tenant",
    );
    // The tenant is looked up before the signal name.
    unknown(
        db.signal_for_tenant(u, "nope", EntityId(1), 1.0, None)
            .map(drop),
        "signal_for_tenant, unknown signal",
    );
    unknown(
        db.read_score_for_tenant(u, EntityId(1), "view").map(drop),
        "read_score_for_tenant",
    );
    unknown(
        db.read_score_for_tenant_at(u, EntityId(1), "view", now)
            .map(drop),
        "read_score_for_tenant_at",
    );
    unknown(
        db.total_signal_count_for_tenant(u, "view").map(drop),
        "total_signal_count_for_tenant",
    );
    unknown(db.rate_limiter_for(u).map(drop), "rate_limiter_for");
    unknown(
        db.events_applied_for_tenant(u).map(drop),
        "events_applied_for_tenant",
    );
    unknown(
        db.tenant_recovery_report(u).map(drop),
        "tenant_recovery_report",
    );

    let r = db.signal_for_tenant(t5, "view", EntityId(1), f64::NAN, None);
    assert!(
        matches!(r, Err(TidalError::InvalidWeight { weight, .. }) if weight.is_nan()),
        "{r:?}"
    );
    let r = db.signal_for_tenant(t5, "nope", EntityId(1), 1.0, None);
    assert!(
        matches!(&r, Err(TidalError::UnknownSignal { name, .. }) if name == "nope"),
        "{r:?}"
    );
    let r = db.read_score_for_tenant(t5, EntityId(1), "nope");
    assert!(
        matches!(&r, Err(TidalError::UnknownSignal { name, .. }) if name == "nope"),
        "{r:?}"
    );
    assert_eq!(db.events_applied_for_tenant(t5).unwrap(), 0);

    db.close().unwrap();
    let gone = |r: Result<(), TidalError>, api: &str| {
        assert!(matches!(r, Err(TidalError::Unavailable(_))), "{api}: {r:?}");
    };
    gone(db.register_tenant(tenant(6, "late")), "register_tenant");
    gone(
        db.signal_for_tenant(t5, "view", EntityId(1), 1.0, None)
            .map(drop),
        "signal_for_tenant",
    );
    gone(
        db.read_score_for_tenant(t5, EntityId(1), "view").map(drop),
        "read_score_for_tenant",
    );
    gone(
        db.signal_for_tenant(TenantId::DEFAULT, "view", EntityId(1), 1.0, None)
            .map(drop),
        "signal_for_tenant(DEFAULT)",
    );
    // Configs stay readable, like the schema.
    assert_eq!(db.tenants(), vec![tenant(5, "five")]);
}
