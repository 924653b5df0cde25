//! The store as the config names its tenants.

use super::{Store, StoreError};
use crate::config::Config;

/// Records each configured tenant's `tenant_id` in the store and carries a renamed tenant's rows
/// over to its new name (see [`Store::reconcile_tenants`]), saying what it did.
pub fn reconcile_configured(store: &mut Store, config: &Config) -> Result<(), StoreError> {
    let configured: Vec<(&str, &str)> = config
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t.tenant_id.as_str()))
        .collect();
    for change in store.reconcile_tenants(&configured)? {
        tracing::warn!("{change}.");
    }
    Ok(())
}
