//! Quotas through the database: each refusal is the right breach, and writes nothing,
//! before and after a reopen.

use super::*;

#[test]
fn the_rate_limit_admits_a_burst_of_twice_the_rate_and_a_refusal_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_batched(dir.path());
    let t = TenantId(1);
    db.register_tenant(TenantConfig {
        max_signals_per_sec: Some(100),
        ..tenant(1, "rated")
    })
    .unwrap();
    let limiter = db.rate_limiter_for(t).unwrap().unwrap();
    assert_eq!((limiter.rate(), limiter.burst()), (100, 200));
    let mut oracle = Oracle::default();
    let started = Instant::now();
    let refused = loop {
        let i = oracle.writes.len() as i64;
        let (e, w, at) = (EntityId(i as u64 % 5), 1.0 + (i % 3) as f64, T0 + i * 1_000);
        match db.signal_for_tenant(t, "view", e, w, Some(ts(at))) {
            Ok(_) => oracle.writes.push((e, w, at)),
            Err(err) => break err,
        }
        assert!(oracle.writes.len() < 10_000, "the rate limit never refused");
    };
    let elapsed = started.elapsed();
    // A token accrues every 10 ms; on a machine that took longer, some may have.
    let accrued = (elapsed.as_millis() / 10) as u64;
    let passed = oracle.count();
    assert!(
        (200..=200 + accrued).contains(&passed),
        "{passed} writes passed in {elapsed:?}"
    );
    if accrued == 0 {
        assert_eq!(passed, 200);
    }
    let b = breach(Err(refused));
    assert_eq!(
        (b.tenant, b.quota, b.limit),
        (t.0, Quota::SignalsPerSec, 100)
    );
    let retry = b.retry_after.expect("waiting helps a rate limit");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(10),
        "{retry:?}"
    );
    let check = |db: &TidalDb| {
        assert_eq!(db.total_signal_count_for_tenant(t, "view").unwrap(), passed);
        assert_eq!(db.events_applied_for_tenant(t).unwrap(), passed);
        for e in (0..5).map(EntityId) {
            let got = db.read_score_for_tenant_at(t, e, "view", ts(T0)).unwrap();
            assert_close(got, oracle.score(e, T0), "rated tenant");
        }
    };
    check(&db);
    db.close().unwrap();
    check(&open(dir.path()));
}

#[test]
fn writes_spend_from_the_limiter_rate_limiter_for_returns() {
    let db = TidalDb::builder()
        .ephemeral()
        .with_schema(schema())
        .open()
        .unwrap();
    let t = TenantId(3);
    db.register_tenant(TenantConfig {
        max_signals_per_sec: Some(1),
        ..tenant(3, "shared")
    })
    .unwrap();
    let limiter = db.rate_limiter_for(t).unwrap().unwrap();
    // Spend the whole burst (2) outside the database: its next write must be refused.
    while limiter.try_acquire_n_at(Timestamp::now(), 1).is_ok() {}
    let b = breach(db.signal_for_tenant(t, "view", EntityId(1), 1.0, None));
    assert_eq!((b.quota, b.limit), (Quota::SignalsPerSec, 1));
    assert_eq!(db.events_applied_for_tenant(t).unwrap(), 0);
    // Unlimited tenants, and the default tenant built without quotas, have no limiter.
    db.register_tenant(tenant(4, "free")).unwrap();
    assert!(db.rate_limiter_for(TenantId(4)).unwrap().is_none());
    assert!(db.rate_limiter_for(TenantId::DEFAULT).unwrap().is_none());
}

#[test]
fn max_entities_refuses_only_the_write_that_brings_one_too_many() {
    let dir = tempfile::tempdir().unwrap();
    let t = TenantId(2);
    let mut oracle = Oracle::default();
    {
        let db = open(dir.path());
        db.register_tenant(TenantConfig {
            max_entities: Some(3),
            ..tenant(2, "capped")
        })
        .unwrap();
        for (i, e) in [1, 2, 3, 1, 3].into_iter().enumerate() {
            let at = T0 + i as i64 * 1_000_000_000;
            db.signal_for_tenant(t, "view", EntityId(e), 2.0, Some(ts(at)))
                .unwrap();
            oracle.writes.push((EntityId(e), 2.0, at));
        }
        let b = breach(db.signal_for_tenant(t, "view", EntityId(4), 2.0, Some(ts(T0))));
        assert_eq!(
            b,
            QuotaBreach {
                tenant: t.0,
                quota: Quota::Entities,
                limit: 3,
                retry_after: None
            }
        );
        // Existing entities still take writes.
        db.signal_for_tenant(t, "view", EntityId(2), 1.0, Some(ts(T0)))
            .unwrap();
        oracle.writes.push((EntityId(2), 1.0, T0));
    }
    let db = open(dir.path());
    // The usage is recovered with the log, so the cap still holds after a reopen.
    assert_eq!(
        breach(db.signal_for_tenant(t, "view", EntityId(4), 2.0, Some(ts(T0)))).quota,
        Quota::Entities
    );
    assert_eq!(db.total_signal_count_for_tenant(t, "view").unwrap(), 6);
    let at = T0 + HOUR_NS;
    for e in (1..=4).map(EntityId) {
        let got = db.read_score_for_tenant_at(t, e, "view", ts(at)).unwrap();
        assert_close(got, oracle.score(e, at), "capped tenant");
    }
}

#[test]
fn max_storage_bytes_caps_the_tenants_log() {
    let dir = tempfile::tempdir().unwrap();
    let t = TenantId(6);
    let cfg = TenantConfig {
        max_storage_bytes: Some(5 * EVENT_STORAGE_BYTES),
        ..tenant(6, "small")
    };
    {
        let db = open(dir.path());
        db.register_tenant(cfg).unwrap();
        for i in 0..5 {
            db.signal_for_tenant(t, "view", EntityId(i), 1.0, Some(ts(T0)))
                .unwrap();
        }
        let b = breach(db.signal_for_tenant(t, "view", EntityId(0), 1.0, Some(ts(T0))));
        assert_eq!(
            (b.quota, b.limit, b.retry_after),
            (Quota::StorageBytes, 5 * EVENT_STORAGE_BYTES, None)
        );
        assert_eq!(db.events_applied_for_tenant(t).unwrap(), 5);
        assert_eq!(
            db.read_score_for_tenant_at(t, EntityId(0), "view", ts(T0))
                .unwrap(),
            1.0
        );
    }
    let db = open(dir.path());
    assert_eq!(
        breach(db.signal_for_tenant(t, "view", EntityId(0), 1.0, Some(ts(T0)))).quota,
        Quota::StorageBytes
    );
    assert_eq!(db.total_signal_count_for_tenant(t, "view").unwrap(), 5);
    assert_eq!(
        db.read_score_for_tenant_at(t, EntityId(0), "view", ts(T0))
            .unwrap(),
        1.0
    );
}
