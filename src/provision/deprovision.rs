//! Deprovisioning (`DELETE /v1/tenants/{slug}?drop_database=true`), in the request:
//! check ownership, `deleting`, drop the database and role, remove the secret (only the one
//! drover wrote for this tenant, still in scope and not shared; otherwise kept, and the
//! `deleted` event's payload says why), `deleted`.

use serde_json::json;

use super::{admin, ProvisionError, Provisioner};
use crate::registry::{Actor, DbIdent, Tenant, TenantStatus};
use crate::secrets::SecretRef;

impl Provisioner {
    /// `DELETE …?drop_database=true`: drops the database, the role and the secret, then
    /// finishes the soft delete. Refuses, before changing anything, when the database or
    /// role was not created by drover for this tenant.
    pub async fn deprovision(&self, slug: &str, actor: &Actor) -> Result<Tenant, ProvisionError> {
        let t = self
            .registry
            .get(slug)
            .await
            .map_err(ProvisionError::Lookup)?;
        let role = DbIdent::parse("db_user", &t.db_user).map_err(ProvisionError::invalid)?;
        let db = DbIdent::parse("db_name", &t.db_name).map_err(ProvisionError::invalid)?;
        let server = self.server_for(&t)?;
        if server.external().is_some() {
            return self.request_deprovisioning(&t, actor).await;
        }
        let admin = self.admin_client(server).await?;
        admin::lock(&admin, t.id).await?;
        let nothing_here = admin::refuse_foreign(&admin, &db, &role, t.id).await?;
        // Absent both: on a first attempt, the tenant lives on another server (or was never
        // provisioned): say so rather than report a drop that did not happen. On a retry
        // (`deleting`), an earlier attempt dropped them.
        if nothing_here && t.status != TenantStatus::Deleting {
            return Err(ProvisionError::NothingToDrop {
                server: server.name.clone(),
                database: db.as_str().to_string(),
                role: role.as_str().to_string(),
            });
        }
        self.registry
            .begin_delete(&t.slug, json!({ "drop_database": true }), actor)
            .await
            .map_err(ProvisionError::Lookup)?;
        let result = self.drop_all(&admin, &t, &db, &role, actor).await;
        if let Err(e) = &result {
            let payload = json!({
                "operation": "deprovision", "step": e.step(),
                "error": e.to_string(), "retryable": e.is_retryable(),
            });
            if let Err(re) = self.registry.record_error(t.id, actor, payload).await {
                tracing::error!(error = %re, "could not record the deprovisioning error");
            }
        }
        result
    }

    async fn drop_all(
        &self,
        admin: &tokio_postgres::Client,
        t: &Tenant,
        db: &DbIdent,
        role: &DbIdent,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let (db_dropped, role_dropped) = admin::drop_tenant(admin, db, role, t.id).await?;
        let kept = self.secret_kept(t).await?;
        let secret_removed = match (&kept, t.db_secret_ref.parse::<SecretRef>()) {
            (None, Ok(r)) => {
                self.secrets
                    .remove(&r)
                    .await
                    .map_err(ProvisionError::Secret)?;
                self.resolver.forget_secret(&t.db_secret_ref);
                true
            }
            _ => false,
        };
        let mut payload = json!({
            "database_dropped": db_dropped, "role_dropped": role_dropped,
            "secret_removed": secret_removed,
        });
        if let Some(why) = &kept {
            payload["secret_kept"] = json!(why);
            tracing::warn!(slug = %t.slug, secret_ref = %t.db_secret_ref, reason = %why,
                "deprovisioning keeps the tenant's secret");
        }
        let tenant = self
            .registry
            .finish_delete(t.id, payload, actor)
            .await
            .map_err(|e| ProvisionError::Registry(e.to_string()))?;
        tracing::info!(slug = %t.slug, db_dropped, role_dropped, "tenant deprovisioned");
        Ok(tenant)
    }

    /// Why the secret behind the tenant's reference stays, or `None` when it goes. It goes
    /// only when drover wrote it for this tenant (the reference provisioning wrote behind is
    /// the one it has now: a PATCHed reference may name anything), it is still inside the
    /// tenant scope, and no other live tenant logs in with it; also on a retry whose
    /// database and role are already gone.
    async fn secret_kept(&self, t: &Tenant) -> Result<Option<String>, ProvisionError> {
        let Ok(r) = t.db_secret_ref.parse::<SecretRef>() else {
            return Ok(Some("the reference does not parse".into()));
        };
        if !r.scheme().writable {
            return Ok(Some(format!(
                "drover never writes {} references",
                r.scheme().name
            )));
        }
        let written = self
            .registry
            .secret_written_ref(t.id)
            .await
            .map_err(ProvisionError::Lookup)?;
        if written.as_deref() != Some(t.db_secret_ref.as_str()) {
            return Ok(Some(
                "drover did not write it for this tenant (not provisioned by drover, the password was there before, or the reference changed since)".into(),
            ));
        }
        if let Err(rule) = self.registry.scope().check(&r) {
            return Ok(Some(format!("outside the tenant scope: {rule}")));
        }
        let shared = self
            .registry
            .secret_ref_shared(&t.db_secret_ref, Some(t.id))
            .await
            .map_err(ProvisionError::Lookup)?;
        Ok(shared.then(|| "another live tenant uses the same reference".into()))
    }
}
