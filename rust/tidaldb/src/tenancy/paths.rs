//! Where a tenant's files live. A tenant id reaches the filesystem only as a decimal
//! number, so no id or label can name a path outside the data directory.

use std::path::{Path, PathBuf};

use crate::event::TenantId;

/// `{data_dir}/wal/` for the default tenant (the single-tenant layout, unchanged), and
/// `{data_dir}/tenants/{id}/wal/` for every other tenant.
pub fn tenant_wal_dir(data_dir: &Path, tenant: TenantId) -> PathBuf {
    if tenant == TenantId::DEFAULT {
        data_dir.join("wal")
    } else {
        data_dir
            .join("tenants")
            .join(tenant.0.to_string())
            .join("wal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tenant_keeps_the_old_layout_and_others_are_namespaced() {
        let root = Path::new("/data");
        assert_eq!(
            tenant_wal_dir(root, TenantId::DEFAULT),
            Path::new("/data/wal")
        );
        assert_eq!(
            tenant_wal_dir(root, TenantId(42)),
            Path::new("/data/tenants/42/wal")
        );
        // The largest id is still a plain number under tenants/.
        let max = tenant_wal_dir(root, TenantId(u64::MAX));
        assert!(max.starts_with("/data/tenants"));
        assert_eq!(
            max.components().count(),
            Path::new("/data/tenants/x/wal").components().count()
        );
    }
}
