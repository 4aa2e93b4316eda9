//! A tenant's configuration, checked once at registration so that a write never meets a
//! quota or placement that cannot make sense.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TidalError};
use crate::event::TenantId;
use crate::schema::RegionId;

/// Labels are for dashboards and logs, never for paths; the bound keeps them printable.
pub const MAX_LABEL_BYTES: usize = 128;

/// Per-tenant resource limits and residency. `None` means unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantConfig {
    pub tenant_id: TenantId,
    /// Sustained signals per second admitted per replica; bursts up to twice this pass.
    pub max_signals_per_sec: Option<u32>,
    /// Distinct entities that carry signals.
    pub max_entities: Option<u64>,
    /// The tenant's log, accounted at [`super::EVENT_STORAGE_BYTES`] per applied event.
    pub max_storage_bytes: Option<u64>,
    /// Regions the tenant's data may live in; empty means any.
    pub required_regions: Vec<RegionId>,
    /// A human-readable name for monitoring.
    pub label: String,
}

impl TenantConfig {
    /// Unlimited quotas and no residency constraint.
    pub fn new(tenant_id: TenantId, label: impl Into<String>) -> Self {
        TenantConfig {
            tenant_id,
            max_signals_per_sec: None,
            max_entities: None,
            max_storage_bytes: None,
            required_regions: Vec::new(),
            label: label.into(),
        }
    }

    /// The tenant of single-tenant deployments.
    pub fn default_tenant() -> Self {
        Self::new(TenantId::DEFAULT, "default")
    }

    /// Refuses quotas of zero (a tenant that can never write is a misconfiguration, not
    /// a policy), duplicate regions, and labels that are empty, too long or not printable.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(TidalError::InvalidTenantConfig {
                tenant: self.tenant_id.0,
                reason,
            })
        };
        if self.max_signals_per_sec == Some(0) {
            return bad("max_signals_per_sec must be at least 1 (or None for unlimited)".into());
        }
        if self.max_entities == Some(0) {
            return bad("max_entities must be at least 1 (or None for unlimited)".into());
        }
        if self
            .max_storage_bytes
            .is_some_and(|b| b < super::EVENT_STORAGE_BYTES)
        {
            return bad(format!(
                "max_storage_bytes must be at least {} (one event), or None for unlimited",
                super::EVENT_STORAGE_BYTES
            ));
        }
        let mut regions = self.required_regions.clone();
        regions.sort_unstable();
        if regions.windows(2).any(|w| w[0] == w[1]) {
            return bad(format!(
                "required_regions lists a region twice: {:?}",
                self.required_regions
            ));
        }
        if self.label.is_empty() || self.label.len() > MAX_LABEL_BYTES {
            return bad(format!(
                "the label must be 1 to {MAX_LABEL_BYTES} bytes long, not {}",
                self.label.len()
            ));
        }
        if self.label.chars().any(char::is_control) {
            return bad("the label may not contain control characters (NUL, newlines)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TenantConfig {
        TenantConfig::new(TenantId(7), "acme")
    }

    #[test]
    fn zero_quotas_bad_labels_and_repeated_regions_are_refused() {
        assert!(cfg().validate().is_ok());
        type Mutation = Box<dyn Fn(&mut TenantConfig)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|c| c.max_signals_per_sec = Some(0)),
            Box::new(|c| c.max_entities = Some(0)),
            Box::new(|c| c.max_storage_bytes = Some(0)),
            Box::new(|c| c.max_storage_bytes = Some(63)),
            Box::new(|c| c.required_regions = vec![RegionId(1), RegionId(1)]),
            Box::new(|c| c.label = String::new()),
            Box::new(|c| c.label = "x".repeat(MAX_LABEL_BYTES + 1)),
            Box::new(|c| c.label = "a\0b".into()),
            Box::new(|c| c.label = "a\nb".into()),
        ];
        for (i, mutate) in cases.iter().enumerate() {
            let mut c = cfg();
            mutate(&mut c);
            assert!(
                matches!(c.validate(), Err(TidalError::InvalidTenantConfig { tenant, .. }) if tenant == 7),
                "case {i} was accepted"
            );
        }
    }

    #[test]
    fn tenant_ids_display_as_t_and_default_is_zero() {
        assert_eq!(TenantId(42).to_string(), "t42");
        assert_eq!(TenantId::DEFAULT, TenantId(0));
        assert_eq!(TenantId::default(), TenantId::DEFAULT);
        let json = serde_json::to_string(&TenantId(42)).unwrap();
        assert_eq!(
            serde_json::from_str::<TenantId>(&json).unwrap(),
            TenantId(42)
        );
    }
}
