//! Quotas, checked at admission before anything reaches the log.
//!
//! The rate limit is GCRA from the `governor` crate (lock-free and correct under
//! contention, unlike a hand-rolled token bucket). It reads the time the driver handed
//! the node rather than the wall clock, so the simulator throttles on virtual time and a
//! seed replays exactly.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{RateLimiter, clock::Reference};

use super::TenantConfig;
pub use crate::error::{Quota, QuotaBreach};
use crate::error::{Result, TidalError};
use crate::event::{CapKind, TenantId};
use crate::schema::Timestamp;

/// Storage is accounted per applied event at the size of a signal's WAL record, so every
/// replica that applied the same events agrees on the usage, whatever its snapshots did.
pub const EVENT_STORAGE_BYTES: u64 = 64;

/// The time a driver handed the node: monotonic, because it only moves forward.
#[derive(Clone, Debug, Default)]
struct HandedClock(Arc<AtomicU64>);

impl HandedClock {
    fn advance_to(&self, now: Timestamp) -> Nanos {
        let ns = u64::try_from(now.as_nanos()).unwrap_or(0);
        Nanos::from(self.0.fetch_max(ns, Ordering::AcqRel).max(ns))
    }
}

impl Clock for HandedClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.load(Ordering::Acquire))
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, HandedClock, NoOpMiddleware<Nanos>>;

/// A tenant's signal rate limit: `rate` per second sustained, bursts of `2 × rate`.
pub struct TenantRateLimiter {
    tenant: TenantId,
    rate: u32,
    burst: NonZeroU32,
    clock: HandedClock,
    gcra: Gcra,
}

impl fmt::Debug for TenantRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRateLimiter")
            .field("tenant", &self.tenant)
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish()
    }
}

impl TenantRateLimiter {
    /// `rate` of 0 is refused: [`TenantConfig::validate`] reports it with the tenant.
    pub fn new(tenant: TenantId, rate: u32) -> Result<Self> {
        let per_sec = NonZeroU32::new(rate).ok_or(TidalError::InvalidTenantConfig {
            tenant: tenant.0,
            reason: "max_signals_per_sec must be at least 1".into(),
        })?;
        let burst = per_sec.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        let clock = HandedClock::default();
        let quota = governor::Quota::per_second(per_sec).allow_burst(burst);
        Ok(TenantRateLimiter {
            tenant,
            rate,
            burst,
            gcra: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// One signal now, by the wall clock. For callers outside a driver.
    pub fn try_acquire(&self) -> Result<()> {
        self.try_acquire_n_at(Timestamp::now(), 1)
    }

    /// `n` signals at the driver's time `now`, all or none.
    pub fn try_acquire_n_at(&self, now: Timestamp, n: u32) -> Result<()> {
        let at = self.clock.advance_to(now);
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        let breach = |retry_after| {
            TidalError::QuotaExceeded(QuotaBreach {
                tenant: self.tenant.0,
                quota: Quota::SignalsPerSec,
                limit: u64::from(self.rate),
                retry_after,
            })
        };
        match self.gcra.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(breach(Some(
                not_until.earliest_possible().duration_since(at).into(),
            ))),
            // More than a whole burst at once can never pass.
            Err(_) => Err(breach(None)),
        }
    }
}

/// What a tenant has used on one replica, as its ledger says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantUsage {
    pub entities: u64,
    pub events: u64,
}

/// Every quota of one tenant, as admission checks them.
#[derive(Debug)]
pub struct TenantQuotas {
    tenant: TenantId,
    rate: Option<Arc<TenantRateLimiter>>,
    max_entities: Option<u64>,
    max_storage_bytes: Option<u64>,
}

impl TenantQuotas {
    /// Quotas with a rate limiter of their own (one replica's view of the tenant).
    pub fn new(cfg: &TenantConfig) -> Result<Self> {
        let limiter = cfg
            .max_signals_per_sec
            .map(|r| TenantRateLimiter::new(cfg.tenant_id, r).map(Arc::new))
            .transpose()?;
        Self::with_limiter(cfg, limiter)
    }

    /// Quotas that spend from a shared limiter, such as the router's.
    pub fn with_limiter(cfg: &TenantConfig, rate: Option<Arc<TenantRateLimiter>>) -> Result<Self> {
        cfg.validate()?;
        Ok(TenantQuotas {
            tenant: cfg.tenant_id,
            rate,
            max_entities: cfg.max_entities,
            max_storage_bytes: cfg.max_storage_bytes,
        })
    }

    /// The rate limiter admission spends from; `None` when the rate is unlimited.
    pub fn rate_limiter(&self) -> Option<&Arc<TenantRateLimiter>> {
        self.rate.as_ref()
    }

    /// The cap on distinct entities, if any.
    pub fn max_entities(&self) -> Option<u64> {
        self.max_entities
    }

    /// A hard cap in rights of its bounded counter: entities, or events of the log for
    /// storage (a partial event's bytes buy nothing). `None` when uncapped.
    pub fn rights_cap(&self, kind: CapKind) -> Option<u64> {
        match kind {
            CapKind::Entities => self.max_entities,
            CapKind::Storage => self.max_storage_bytes.map(|b| b / EVENT_STORAGE_BYTES),
        }
    }

    /// The refusal of a write that hard cap `kind` does not let through; `retry_after`
    /// is left for the caller, who knows whether a transfer of rights is under way.
    pub fn breach(&self, kind: CapKind) -> TidalError {
        let (quota, limit) = match kind {
            CapKind::Entities => (Quota::Entities, self.max_entities),
            CapKind::Storage => (Quota::StorageBytes, self.max_storage_bytes),
        };
        TidalError::QuotaExceeded(QuotaBreach {
            tenant: self.tenant.0,
            quota,
            limit: limit.unwrap_or(u64::MAX),
            retry_after: None,
        })
    }

    /// Admits `events` events bringing `new_entities` entities the tenant has not seen,
    /// against this replica's own view (see [`TenantQuotas::check_caps`]) and the rate.
    pub fn admit(
        &self,
        now: Timestamp,
        usage: TenantUsage,
        events: u64,
        new_entities: u64,
    ) -> Result<()> {
        self.check_caps(usage, events, new_entities)?;
        self.spend_rate(now, events)
    }

    /// The hard caps against what this replica holds. Across replicas the bounded
    /// counters hold them; this check also covers data written before those existed.
    pub fn check_caps(&self, usage: TenantUsage, events: u64, new_entities: u64) -> Result<()> {
        if let Some(max) = self.max_entities
            && usage.entities.saturating_add(new_entities) > max
        {
            return Err(self.breach(CapKind::Entities));
        }
        if let Some(max) = self.max_storage_bytes
            && usage
                .events
                .saturating_add(events)
                .saturating_mul(EVENT_STORAGE_BYTES)
                > max
        {
            return Err(self.breach(CapKind::Storage));
        }
        Ok(())
    }

    /// Spends `events` rate tokens at the driver's time `now`, all or none. Called after
    /// the hard caps, so a write they refuse spends no tokens.
    pub fn spend_rate(&self, now: Timestamp, events: u64) -> Result<()> {
        match &self.rate {
            Some(limiter) => {
                limiter.try_acquire_n_at(now, u32::try_from(events).unwrap_or(u32::MAX))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_nanos(1_700_000_000_000_000_000 + ms * 1_000_000).unwrap()
    }

    fn breach(r: Result<()>) -> QuotaBreach {
        match r {
            Err(TidalError::QuotaExceeded(b)) => b,
            other => panic!("expected a quota breach, got {other:?}"),
        }
    }

    #[test]
    fn burst_is_twice_the_rate_and_refills_at_the_rate() {
        let l = TenantRateLimiter::new(TenantId(1), 100).unwrap();
        for i in 0..200 {
            assert!(
                l.try_acquire_n_at(at(0), 1).is_ok(),
                "acquire {i} of the burst"
            );
        }
        let b = breach(l.try_acquire_n_at(at(0), 1));
        assert_eq!((b.quota, b.limit), (Quota::SignalsPerSec, 100));
        // One token every 10 ms.
        assert_eq!(b.retry_after, Some(Duration::from_millis(10)));
        assert!(l.try_acquire_n_at(at(9), 1).is_err());
        assert!(l.try_acquire_n_at(at(10), 1).is_ok());
        assert!(l.try_acquire_n_at(at(10), 1).is_err());
        // A second later, 100 more have accrued, and no more.
        for _ in 0..100 {
            assert!(l.try_acquire_n_at(at(1010), 1).is_ok());
        }
        assert!(l.try_acquire_n_at(at(1010), 1).is_err());
    }

    #[test]
    fn a_batch_is_all_or_nothing_and_one_beyond_the_burst_never_passes() {
        let l = TenantRateLimiter::new(TenantId(1), 10).unwrap();
        assert!(l.try_acquire_n_at(at(0), 15).is_ok());
        assert!(l.try_acquire_n_at(at(0), 6).is_err());
        assert!(l.try_acquire_n_at(at(0), 5).is_ok());
        assert_eq!(breach(l.try_acquire_n_at(at(0), 21)).retry_after, None);
    }

    #[test]
    fn a_clock_that_steps_back_does_not_mint_tokens() {
        let l = TenantRateLimiter::new(TenantId(1), 10).unwrap();
        assert!(l.try_acquire_n_at(at(5000), 20).is_ok());
        assert!(l.try_acquire_n_at(at(0), 1).is_err());
    }

    #[test]
    fn hard_caps_spend_no_tokens_and_say_no_retry_helps() {
        let mut cfg = TenantConfig::new(TenantId(3), "capped");
        cfg.max_signals_per_sec = Some(1);
        cfg.max_entities = Some(10);
        cfg.max_storage_bytes = Some(100 * EVENT_STORAGE_BYTES);
        let q = TenantQuotas::new(&cfg).unwrap();
        let used = TenantUsage {
            entities: 10,
            events: 50,
        };
        let b = breach(q.admit(at(0), used, 1, 1));
        assert_eq!(
            (b.quota, b.limit, b.retry_after),
            (Quota::Entities, 10, None)
        );
        let full = TenantUsage {
            entities: 1,
            events: 100,
        };
        assert_eq!(
            breach(q.admit(at(0), full, 1, 0)).quota,
            Quota::StorageBytes
        );
        // Neither refusal spent the burst of 2.
        assert!(q.admit(at(0), used, 2, 0).is_ok());
        assert_eq!(
            breach(q.admit(at(0), used, 1, 0)).quota,
            Quota::SignalsPerSec
        );
        let msg = breach(q.admit(at(0), used, 1, 0)).to_string();
        assert!(
            msg.contains("max_signals_per_sec") && msg.contains("retry after"),
            "{msg}"
        );
    }
}
