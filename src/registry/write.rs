//! The registry's writes: create, PATCH and the status transitions (suspend, resume,
//! delete), each in one transaction with its tenant events, the row locked first.

use serde_json::{json, Value};
use tokio_postgres::GenericClient;

use super::read::lookup_slug;
use super::row::{insert_row, record_event, store_row, tenant_from_row};
use super::{
    lifecycle, model, Actor, NewTenant, Registry, RegistryError, Tenant, TenantPatch, TenantStatus,
    Transition,
};

/// Sets `*slot` to `new` and records the change when they differ.
pub(super) fn change<T: PartialEq + serde::Serialize + Clone>(
    changes: &mut serde_json::Map<String, Value>,
    field: &str,
    slot: &mut T,
    new: Option<T>,
) {
    if let Some(new) = new {
        if *slot != new {
            changes.insert(
                field.into(),
                json!({ "from": slot.clone(), "to": new.clone() }),
            );
            *slot = new;
        }
    }
}

impl Registry {
    /// A reference that is well-formed (checked by validation) must also be in scope: a
    /// 422 naming the rule, before anything is written.
    pub(super) fn check_scope(&self, reference: &str) -> Result<(), RegistryError> {
        let Ok(parsed) = reference.parse::<crate::secrets::SecretRef>() else {
            return Ok(());
        };
        self.scope
            .check(&parsed)
            .map_err(|e| RegistryError::Invalid {
                field: "db_secret_ref",
                message: e.to_string(),
            })
    }

    /// Registers a tenant and writes its `created` event.
    #[tracing::instrument(skip_all, fields(slug = %new.slug))]
    pub async fn create(&self, new: &NewTenant, actor: &Actor) -> Result<Tenant, RegistryError> {
        let mut new = new.clone();
        new.fill_display_name();
        let new = &new;
        let slug = new.validate()?;
        self.check_scope(&new.db_secret_ref)?;
        // Whether drover can provision is the caller's check (`crate::provision`); here a
        // provisioned tenant simply starts where its job expects it.
        if new.provision && new.status == Some(TenantStatus::Active) {
            return Err(RegistryError::Invalid {
                field: "status",
                message: "a tenant created with provision: true starts as provisioning and becomes active when its database is ready".into(),
            });
        }
        let status = new.status.unwrap_or(TenantStatus::Provisioning);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        self.check_reserved(&*tx, &slug).await?;
        let tenant = insert_row(&*tx, new, &slug, status, actor).await?;
        tx.commit().await?;
        tracing::info!(actor = actor.as_str(), "tenant created");
        Ok(self.present(tenant))
    }

    /// Every check [`Registry::create`] makes, with nothing written: the fields, the
    /// secret reference's scope, reserved names, and that neither the slug nor the
    /// database name is taken. Returns what was checked, for a dry run to show.
    pub async fn check_new(&self, new: &NewTenant) -> Result<Vec<String>, RegistryError> {
        const TAKEN: &str = "SELECT \
             EXISTS (SELECT 1 FROM control_plane.tenants WHERE lower(slug) = $1 AND deleted_at IS NULL) AS slug_taken, \
             EXISTS (SELECT 1 FROM control_plane.tenants WHERE lower(db_name) = lower($2) AND deleted_at IS NULL) AS db_taken";
        let slug = new.validate()?;
        self.check_scope(&new.db_secret_ref)?;
        let client = self.pool.get().await?;
        self.check_reserved(&**client, &slug).await?;
        let row = client
            .query_one(TAKEN, &[&slug.as_str(), &new.db_name])
            .await?;
        if row.try_get("slug_taken")? {
            return Err(RegistryError::DuplicateSlug(slug.to_string()));
        }
        if row.try_get("db_taken")? {
            return Err(RegistryError::DuplicateDbName(new.db_name.clone()));
        }
        Ok(vec![
            format!("slug {:?} is free and not reserved", slug.as_str()),
            format!("db_name {:?} is not used by a live tenant", new.db_name),
        ])
    }

    pub(super) async fn lock_live(
        tx: &impl GenericClient,
        slug: &str,
    ) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM control_plane.tenants WHERE lower(slug) = $1 AND deleted_at IS NULL FOR UPDATE"
        );
        let slug = lookup_slug(slug)?;
        match tx.query_opt(SQL, &[&slug.as_str()]).await? {
            Some(row) => tenant_from_row(&row),
            None => Err(RegistryError::NotFound(slug.to_string())),
        }
    }

    /// Applies a PATCH. Writes `updated` (with each changed field's old and new value) and,
    /// for provisioning → active, `status_changed`. A patch that changes nothing writes
    /// nothing.
    #[tracing::instrument(skip_all, fields(slug))]
    pub async fn update(
        &self,
        slug: &str,
        patch: &TenantPatch,
        actor: &Actor,
    ) -> Result<Tenant, RegistryError> {
        patch.validate()?;
        if let Some(r) = &patch.db_secret_ref {
            self.check_scope(r)?;
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let before = Self::lock_live(&*tx, slug).await?;
        let mut t = before.clone();
        let changes = patch_fields(&mut t, patch);
        let mut status_change = patch_status(&*tx, &before, patch.status).await?;
        if let Some((_, to)) = status_change {
            t.status = to;
        }
        let converted = trial_lifted(&before, &t);
        if converted {
            t.status = TenantStatus::Active;
            t.suspended_reason = None;
            status_change = None;
        }
        if changes.is_empty() && status_change.is_none() && !converted {
            return Ok(self.present(before));
        }
        let after = store_row(&*tx, &t).await?;
        if !changes.is_empty() {
            record_event(&*tx, t.id, "updated", actor, json!({ "changed": changes })).await?;
        }
        if let Some((from, to)) = status_change {
            let payload = json!({ "from": from, "to": to });
            record_event(&*tx, t.id, "status_changed", actor, payload).await?;
        }
        if converted {
            let payload =
                json!({ "from": before.status, "to": t.status, "reason": "trial_ends_at changed" });
            record_event(&*tx, t.id, "resumed", actor, payload).await?;
        }
        tx.commit().await?;
        tracing::info!(
            actor = actor.as_str(),
            fields = changes.len(),
            "tenant updated"
        );
        Ok(self.present(after))
    }

    /// active → suspended, with a reason resolution will report (423).
    pub async fn suspend(
        &self,
        slug: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<Tenant, RegistryError> {
        model::validate_reason("reason", reason)?;
        let reason = reason.trim();
        self.transition(slug, &[Transition::Suspend], Some(reason), actor)
            .await
    }

    /// suspended → active.
    pub async fn resume(&self, slug: &str, actor: &Actor) -> Result<Tenant, RegistryError> {
        self.transition(slug, &[Transition::Resume], None, actor)
            .await
    }

    /// Soft delete: → deleting → deleted in one transaction, `deleted_at` set, so the
    /// slug and database name are free again. The tenant's database is left alone.
    pub async fn delete(&self, slug: &str, actor: &Actor) -> Result<Tenant, RegistryError> {
        self.transition(
            slug,
            &[Transition::StartDelete, Transition::FinishDelete],
            None,
            actor,
        )
        .await
    }

    /// Runs `steps` in order on the locked row, one event per step, all in one transaction.
    #[tracing::instrument(skip_all, fields(slug))]
    async fn transition(
        &self,
        slug: &str,
        steps: &[Transition],
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "UPDATE control_plane.tenants SET status = $2, suspended_reason = $3, \
             deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE deleted_at END \
             WHERE id = $1 RETURNING ",
            tenant_cols!()
        );
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut tenant = Self::lock_live(&*tx, slug).await?;
        for step in steps {
            let from = tenant.status;
            let to = step
                .apply(from)
                .ok_or_else(|| RegistryError::IllegalTransition {
                    slug: tenant.slug.clone(),
                    verb: step.verb(),
                    from: from.to_string(),
                })?;
            let row = tx
                .query_one(SQL, &[&tenant.id, &to.as_str(), &reason])
                .await?;
            tenant = tenant_from_row(&row)?;
            let mut payload = json!({ "from": from, "to": to });
            if let Some(r) = reason {
                payload["reason"] = json!(r);
            }
            record_event(&*tx, tenant.id, step.event_type(), actor, payload).await?;
        }
        tx.commit().await?;
        tracing::info!(actor = actor.as_str(), status = %tenant.status, "tenant status changed");
        Ok(self.present(tenant))
    }
}

/// Whether a PATCH lifts the suspension of an expired trial: the tenant was suspended
/// because its trial ended, and the trial is now converted (no end) or ends later.
fn trial_lifted(before: &Tenant, after: &Tenant) -> bool {
    before.status == TenantStatus::Suspended
        && before.suspended_reason.as_deref() == Some(super::trials::TRIAL_EXPIRED)
        && before.trial_ends_at != after.trial_ends_at
        && after
            .trial_ends_at
            .is_none_or(|end| end > chrono::Utc::now())
}

/// Copies the fields a PATCH gives into `t`; returns each changed one's old and new value.
fn patch_fields(t: &mut Tenant, patch: &TenantPatch) -> serde_json::Map<String, Value> {
    let mut changes = serde_json::Map::new();
    let c = &mut changes;
    change(
        c,
        "display_name",
        &mut t.display_name,
        patch.display_name.clone(),
    );
    change(c, "db_name", &mut t.db_name, patch.db_name.clone());
    change(c, "db_host", &mut t.db_host, patch.db_host.clone());
    change(c, "db_port", &mut t.db_port, patch.db_port);
    change(c, "db_user", &mut t.db_user, patch.db_user.clone());
    change(
        c,
        "db_secret_ref",
        &mut t.db_secret_ref,
        patch.db_secret_ref.clone(),
    );
    change(c, "db_options", &mut t.db_options, patch.db_options.clone());
    change(c, "labels", &mut t.labels, patch.labels.clone());
    change(c, "canary", &mut t.canary, patch.canary);
    change(
        c,
        "billing_plan",
        &mut t.billing_plan,
        patch.billing_plan.clone(),
    );
    change(
        c,
        "contact_email",
        &mut t.contact_email,
        patch.contact_email.clone(),
    );
    change(
        c,
        "app_version",
        &mut t.app_version,
        patch.app_version.clone(),
    );
    change(
        c,
        "maintenance_flag",
        &mut t.maintenance_flag,
        patch.maintenance_flag,
    );
    change(c, "portal_url", &mut t.portal_url, patch.portal_url.clone());
    change(
        c,
        "trial_ends_at",
        &mut t.trial_ends_at,
        patch.trial_ends_at,
    );
    t.portal_url_explicit = t.portal_url.is_some();
    changes
}

/// The status change a PATCH asks for, as (from, to). PATCH only activates (provisioning →
/// active), and never a tenant whose provisioning job is what activates it.
async fn patch_status(
    tx: &impl GenericClient,
    before: &Tenant,
    want: Option<TenantStatus>,
) -> Result<Option<(TenantStatus, TenantStatus)>, RegistryError> {
    // Validation allows only `active` here; the transition decides whether it is reachable.
    if !want.is_some_and(|w| w != before.status) {
        return Ok(None);
    }
    if lifecycle::created_for_provisioning(tx, before.id).await? {
        return Err(lifecycle::job_activates(&before.slug));
    }
    let to = Transition::Activate.apply(before.status).ok_or_else(|| {
        RegistryError::IllegalTransition {
            slug: before.slug.clone(),
            verb: "activate",
            from: before.status.to_string(),
        }
    })?;
    Ok(Some((before.status, to)))
}
