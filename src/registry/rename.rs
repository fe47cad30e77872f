//! Renaming a tenant (`POST /v1/tenants/{slug}/rename`): the slug changes, and the old
//! one becomes an alias in `control_plane.tenant_aliases` for `rename_alias_ttl`.
//!
//! ```text
//!  lock the live row ──► new slug free? (not reserved, not another tenant's alias,
//!                        not a live tenant's slug)
//!     ──► UPDATE slug ──► alias old → tenant until now() + ttl ──► `renamed` {from, to,
//!         alias_expires_at}                                          (one transaction)
//! ```
//!
//! While the alias lasts, resolving the old slug answers for the tenant (with its new
//! slug), and no new tenant may take it (422 `slug_reserved`). Renaming back to an alias
//! of the same tenant is allowed and removes that alias. The leader's sweep
//! ([`super::trials`]) removes expired aliases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::row::{record_event, tenant_from_row};
use super::{Actor, Registry, RegistryError, Slug, Tenant};

impl Registry {
    /// Renames the live tenant `slug` to `to`, keeping the old slug as an alias.
    #[tracing::instrument(skip_all, fields(slug))]
    pub async fn rename(
        &self,
        slug: &str,
        to: &str,
        actor: &Actor,
    ) -> Result<Tenant, RegistryError> {
        const RENAME: &str = concat!(
            "UPDATE control_plane.tenants SET slug = $2 WHERE id = $1 RETURNING ",
            tenant_cols!()
        );
        const ALIAS: &str = "INSERT INTO control_plane.tenant_aliases (slug, tenant_id, expires_at) \
             VALUES ($1, $2, $3) ON CONFLICT (slug) DO UPDATE \
             SET tenant_id = EXCLUDED.tenant_id, created_at = now(), expires_at = EXCLUDED.expires_at";
        const UNALIAS: &str = "DELETE FROM control_plane.tenant_aliases WHERE slug = $1";
        let new = Slug::for_lookup(to)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let before = Self::lock_live(&*tx, slug).await?;
        if before.slug == new.as_str() {
            return Err(RegistryError::Invalid {
                field: "slug",
                message: format!("the tenant is already called '{new}'"),
            });
        }
        self.check_reserved_for(&*tx, &new, Some(before.id)).await?;
        let expires = alias_expiry(self.lifecycle.rename_alias_ttl);
        let row = tx.query_one(RENAME, &[&before.id, &new.as_str()]).await?;
        let tenant = tenant_from_row(&row)?;
        tx.execute(UNALIAS, &[&new.as_str()]).await?;
        tx.execute(ALIAS, &[&before.slug, &before.id, &expires])
            .await?;
        let payload =
            json!({ "from": before.slug, "to": tenant.slug, "alias_expires_at": expires });
        record_event(&*tx, tenant.id, "renamed", actor, payload).await?;
        tx.commit().await?;
        tracing::info!(actor = actor.as_str(), from = %before.slug, to = %tenant.slug, "tenant renamed");
        Ok(self.present(tenant))
    }
}

/// When an alias made now expires.
fn alias_expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(7))
}
