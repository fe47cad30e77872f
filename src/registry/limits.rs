//! `control_plane.tenant_limits`: the optional 1:1 limits of a tenant (docs/design.md#data-model).
//! Setting them replaces all four values; a change writes the tenant's `limits_updated` event
//! (`{"changed": {"limits": {"from", "to"}}}`) in the same transaction, and setting them
//! all to null removes the row.

use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{record_event, Actor, Registry, RegistryError, TenantLimits};

/// The tenant's limits (all `None` when it has none).
async fn read(tx: &impl GenericClient, id: Uuid) -> Result<TenantLimits, RegistryError> {
    const SQL: &str = "SELECT max_db_size_mb, max_users, max_attachments_gb, notes, updated_at \
         FROM control_plane.tenant_limits WHERE tenant_id = $1";
    Ok(match tx.query_opt(SQL, &[&id]).await? {
        None => TenantLimits::default(),
        Some(r) => TenantLimits {
            max_db_size_mb: r.try_get("max_db_size_mb")?,
            max_users: r.try_get("max_users")?,
            max_attachments_gb: r.try_get("max_attachments_gb")?,
            notes: r.try_get("notes")?,
            updated_at: r.try_get("updated_at")?,
        },
    })
}

/// Makes the tenant's limits `want` inside the caller's transaction (the tenant row is
/// already locked) and writes `limits_updated` when they changed. Returns whether they did.
pub(super) async fn store(
    tx: &impl GenericClient,
    id: Uuid,
    want: &TenantLimits,
    actor: &Actor,
) -> Result<bool, RegistryError> {
    const UPSERT: &str = "INSERT INTO control_plane.tenant_limits \
         (tenant_id, max_db_size_mb, max_users, max_attachments_gb, notes) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id) DO UPDATE SET max_db_size_mb = EXCLUDED.max_db_size_mb, \
         max_users = EXCLUDED.max_users, max_attachments_gb = EXCLUDED.max_attachments_gb, \
         notes = EXCLUDED.notes";
    const DELETE: &str = "DELETE FROM control_plane.tenant_limits WHERE tenant_id = $1";
    want.validate()?;
    let want = want.values();
    let before = read(tx, id).await?.values();
    if before == want {
        return Ok(false);
    }
    if want.is_empty() {
        tx.execute(DELETE, &[&id]).await?;
    } else {
        tx.execute(
            UPSERT,
            &[
                &id,
                &want.max_db_size_mb,
                &want.max_users,
                &want.max_attachments_gb,
                &want.notes,
            ],
        )
        .await?;
    }
    let changed = json!({ "limits": { "from": before, "to": want } });
    record_event(
        tx,
        id,
        "limits_updated",
        actor,
        json!({ "changed": changed }),
    )
    .await?;
    Ok(true)
}

impl Registry {
    /// `GET /v1/tenants/{slug}/limits`.
    pub async fn limits(&self, slug: &str) -> Result<TenantLimits, RegistryError> {
        let tenant = self.get(slug).await?;
        let client = self.pool.get().await?;
        read(&**client, tenant.id).await
    }

    /// `PUT /v1/tenants/{slug}/limits`: replaces them (absent fields become null).
    pub async fn set_limits(
        &self,
        slug: &str,
        want: &TenantLimits,
        actor: &Actor,
    ) -> Result<TenantLimits, RegistryError> {
        want.validate()?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let tenant = Self::lock_live(&*tx, slug).await?;
        if store(&*tx, tenant.id, want, actor).await? {
            tracing::info!(actor = actor.as_str(), slug = %tenant.slug, "tenant limits changed");
        }
        let now = read(&*tx, tenant.id).await?;
        tx.commit().await?;
        Ok(now)
    }
}
