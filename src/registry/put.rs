//! Declared state: `PUT /v1/tenants/{slug}` and `drover apply` describe a tenant completely
//! (every field a person sets, and its status). [`Registry::put`] makes the live row match
//! in one transaction: it creates the tenant, or changes only what differs, and writes the
//! same events the equivalent manual calls would (`created`, `updated`, `status_changed`,
//! `suspended`, `resumed`). A declaration that matches the row writes nothing.
//!
//! A declared status is reached with at most one explicit transition of the state machine
//! in `model.rs`; anything else is refused, never forced:
//!
//! ```text
//!   live \ declared   provisioning     active           suspended
//!   (none)            create           create           create active, then suspend
//!   provisioning      -                activate         refused (activate first)
//!   active            refused          -                suspend (reason required)
//!   suspended         refused          resume           - (a new reason is an update)
//!   deleting          refused          refused          refused
//! ```
//!
//! `deleting` and `deleted` cannot be declared: deletion is `DELETE /v1/tenants/{slug}`
//! (or `drover apply --prune`), because it has side effects a field edit should not have.

use serde_json::json;
use tokio_postgres::GenericClient;

use super::model::validate_reason;
use super::{
    change, record_event, Actor, NewTenant, Registry, RegistryError, Slug, Tenant, TenantStatus,
    Transition,
};

/// The complete declared state of one tenant.
#[derive(Debug, Clone)]
pub struct Declared {
    /// Every field but the status. `tenant.status` and `tenant.provision` are not used.
    pub tenant: NewTenant,
    /// The status the tenant should be in.
    pub status: TenantStatus,
    /// Required when `status` is `suspended`, refused otherwise.
    pub suspended_reason: Option<String>,
    /// The limits to set; `None` leaves them as they are.
    pub limits: Option<super::TenantLimits>,
}

impl Declared {
    /// Every problem with the declaration (empty when it is valid), named by API field.
    pub fn problems(&self) -> Vec<RegistryError> {
        let fields = NewTenant {
            status: None,
            provision: false,
            ..self.tenant.clone()
        };
        let mut out = fields.problems();
        if let Some(l) = &self.limits {
            out.extend(l.problems());
        }
        let slug_ok = out
            .iter()
            .all(|e| !matches!(e, RegistryError::Invalid { field: "slug", .. }));
        // A declaration names the tenant exactly as it is stored, so files, exports and
        // diffs agree; lookups elsewhere fold case, a declaration does not.
        if slug_ok && self.tenant.slug.parse::<Slug>().is_err() {
            out.insert(0, invalid("slug", "must be lower case"));
        }
        match (self.status, self.suspended_reason.as_deref()) {
            (TenantStatus::Deleting | TenantStatus::Deleted, _) => out.push(invalid(
                "status",
                "cannot be declared; delete the tenant instead (DELETE /v1/tenants/{slug}, or drover apply --prune)",
            )),
            (TenantStatus::Suspended, None) => out.push(invalid(
                "suspended_reason",
                "required when status is suspended",
            )),
            (TenantStatus::Suspended, Some(r)) => {
                if let Err(e) = validate_reason("suspended_reason", r) {
                    out.push(e);
                }
            }
            (_, Some(_)) => out.push(invalid(
                "suspended_reason",
                "only allowed with status suspended",
            )),
            (_, None) => {}
        }
        out
    }

    /// The reason as stored: trimmed, and only for a suspended tenant.
    fn reason(&self) -> Option<String> {
        match self.status {
            TenantStatus::Suspended => self.suspended_reason.as_deref().map(|r| r.trim().into()),
            _ => None,
        }
    }
}

fn invalid(field: &'static str, message: &str) -> RegistryError {
    RegistryError::Invalid {
        field,
        message: message.into(),
    }
}

/// Why a live tenant cannot reach a declared status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The verb for [`RegistryError::IllegalTransition`].
    pub verb: &'static str,
    /// What the operator can do about it.
    pub hint: &'static str,
}

/// The transition that takes a live tenant from `from` to the declared `to`: `Ok(None)`
/// when it is already there.
pub fn declared_transition(
    from: TenantStatus,
    to: TenantStatus,
) -> Result<Option<Transition>, Refused> {
    use TenantStatus::*;
    let refused = |verb, hint| Err(Refused { verb, hint });
    match (from, to) {
        _ if from == to => Ok(None),
        (Provisioning, Active) => Ok(Some(Transition::Activate)),
        (Active, Suspended) => Ok(Some(Transition::Suspend)),
        (Suspended, Active) => Ok(Some(Transition::Resume)),
        (Deleting | Deleted, _) => refused("change the status of", "it is being deleted"),
        (_, Provisioning) => refused("re-provision", "a tenant never returns to provisioning"),
        (Provisioning, Suspended) => refused(
            "suspend",
            "only an active tenant can be suspended; declare it active first",
        ),
        (_, Deleting | Deleted) => refused(
            "delete",
            "delete it with DELETE /v1/tenants/{slug} or drover apply --prune",
        ),
        _ => refused("change the status of", "no such transition"),
    }
}

impl Registry {
    /// Makes the live tenant match `declared`, creating it when there is none. Returns the
    /// tenant and whether it was created. One transaction: the row and its events commit
    /// together or not at all.
    #[tracing::instrument(skip_all, fields(slug = %declared.tenant.slug))]
    pub async fn put(
        &self,
        declared: &Declared,
        actor: &Actor,
    ) -> Result<(Tenant, bool), RegistryError> {
        if let Some(problem) = declared.problems().into_iter().next() {
            return Err(problem);
        }
        self.check_scope(&declared.tenant.db_secret_ref)?;
        match self.put_once(declared, actor).await {
            // Another request created it between our lookup and our insert: it exists
            // now, so the declaration is an update (two identical PUTs both succeed).
            Err(RegistryError::DuplicateSlug(_)) => self.put_once(declared, actor).await,
            other => other,
        }
    }

    async fn put_once(
        &self,
        declared: &Declared,
        actor: &Actor,
    ) -> Result<(Tenant, bool), RegistryError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (tenant, created) = match Self::lock_live(&*tx, &declared.tenant.slug).await {
            Ok(before) => (converge(&*tx, before, declared, actor).await?, false),
            Err(RegistryError::NotFound(_)) => {
                let slug = Slug::for_lookup(&declared.tenant.slug)?;
                self.check_reserved(&*tx, &slug).await?;
                let inserted = insert(&*tx, declared, actor).await?;
                // A tenant declared suspended is created active and suspended at once, so
                // its history shows the suspension (and the reason) like any other.
                (converge(&*tx, inserted, declared, actor).await?, true)
            }
            Err(e) => return Err(e),
        };
        let tenant = match &declared.limits {
            Some(l) if super::limits::store(&*tx, tenant.id, l, actor).await? => {
                Self::lock_live(&*tx, &tenant.slug).await?
            }
            _ => tenant,
        };
        tx.commit().await?;
        tracing::info!(
            actor = actor.as_str(),
            created,
            status = %tenant.status,
            "tenant declared"
        );
        Ok((self.present(tenant), created))
    }
}

/// Inserts the declared tenant (active when it is declared suspended) with its `created`
/// event.
async fn insert(
    tx: &impl GenericClient,
    declared: &Declared,
    actor: &Actor,
) -> Result<Tenant, RegistryError> {
    let status = match declared.status {
        TenantStatus::Suspended => TenantStatus::Active,
        s => s,
    };
    let new = NewTenant {
        // The `created` event says whether a provisioning job owns the tenant; a
        // declaration never provisions (apply --provision goes through POST).
        provision: false,
        ..declared.tenant.clone()
    };
    let slug = Slug::for_lookup(&new.slug)?;
    super::insert_row(tx, &new, &slug, status, actor).await
}

/// Changes the locked row `before` to the declared state: one UPDATE, an `updated` event
/// listing each changed field, and the status transition's own event.
async fn converge(
    tx: &impl GenericClient,
    before: Tenant,
    declared: &Declared,
    actor: &Actor,
) -> Result<Tenant, RegistryError> {
    let step = declared_transition(before.status, declared.status).map_err(|r| {
        RegistryError::IllegalTransition {
            slug: before.slug.clone(),
            verb: r.verb,
            from: before.status.to_string(),
        }
    })?;
    if step == Some(Transition::Activate)
        && super::lifecycle::created_for_provisioning(tx, before.id).await?
    {
        return Err(super::lifecycle::job_activates(&before.slug));
    }
    let new = declared.tenant.clone();
    let port = new.port();
    let mut t = before.clone();
    let mut changes = serde_json::Map::new();
    change(
        &mut changes,
        "display_name",
        &mut t.display_name,
        Some(new.display_name),
    );
    change(&mut changes, "db_name", &mut t.db_name, Some(new.db_name));
    change(&mut changes, "db_host", &mut t.db_host, Some(new.db_host));
    change(&mut changes, "db_port", &mut t.db_port, Some(port));
    change(&mut changes, "db_user", &mut t.db_user, Some(new.db_user));
    change(
        &mut changes,
        "db_secret_ref",
        &mut t.db_secret_ref,
        Some(new.db_secret_ref),
    );
    change(
        &mut changes,
        "db_options",
        &mut t.db_options,
        Some(new.db_options),
    );
    change(&mut changes, "labels", &mut t.labels, Some(new.labels));
    change(&mut changes, "canary", &mut t.canary, Some(new.canary));
    change(
        &mut changes,
        "billing_plan",
        &mut t.billing_plan,
        Some(new.billing_plan),
    );
    change(
        &mut changes,
        "contact_email",
        &mut t.contact_email,
        Some(new.contact_email),
    );
    change(
        &mut changes,
        "app_version",
        &mut t.app_version,
        Some(new.app_version),
    );
    change(
        &mut changes,
        "maintenance_flag",
        &mut t.maintenance_flag,
        Some(new.maintenance_flag),
    );
    change(
        &mut changes,
        "portal_url",
        &mut t.portal_url,
        Some(new.portal_url),
    );
    t.portal_url_explicit = t.portal_url.is_some();
    change(
        &mut changes,
        "trial_ends_at",
        &mut t.trial_ends_at,
        Some(new.trial_ends_at),
    );
    let reason = declared.reason();
    match step {
        // A new reason for a tenant that stays suspended is a field edit.
        None => change(
            &mut changes,
            "suspended_reason",
            &mut t.suspended_reason,
            Some(reason.clone()),
        ),
        Some(step) => {
            t.status = step.apply(before.status).unwrap_or(declared.status);
            t.suspended_reason = reason.clone();
        }
    }
    if changes.is_empty() && step.is_none() {
        return Ok(before);
    }
    let after = super::store_row(tx, &t).await?;
    if !changes.is_empty() {
        record_event(tx, t.id, "updated", actor, json!({ "changed": changes })).await?;
    }
    if let Some(step) = step {
        let mut payload = json!({ "from": before.status, "to": after.status });
        if let Some(r) = &reason {
            payload["reason"] = json!(r);
        }
        record_event(tx, t.id, step.event_type(), actor, payload).await?;
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TenantStatus::*;

    fn declared(status: TenantStatus, reason: Option<&str>) -> Declared {
        Declared {
            tenant: NewTenant {
                slug: "acme".into(),
                display_name: "Acme".into(),
                db_name: "t_acme".into(),
                db_host: "db1".into(),
                db_port: Some(5432),
                db_user: "t_acme".into(),
                db_secret_ref: "file:tenants/acme".into(),
                db_options: Default::default(),
                labels: Default::default(),
                canary: false,
                status: None,
                provision: false,
                server: None,
                billing_plan: None,
                contact_email: None,
                app_version: None,
                maintenance_flag: false,
                portal_url: None,
                trial_ends_at: None,
            },
            status,
            suspended_reason: reason.map(str::to_string),
            limits: None,
        }
    }

    fn fields(problems: Vec<RegistryError>) -> Vec<&'static str> {
        problems
            .into_iter()
            .map(|e| match e {
                RegistryError::Invalid { field, .. } => field,
                other => panic!("not a field problem: {other}"),
            })
            .collect()
    }

    #[test]
    fn a_suspended_declaration_needs_a_reason_and_only_it_may_carry_one() {
        assert!(declared(Suspended, Some("unpaid")).problems().is_empty());
        assert_eq!(
            fields(declared(Suspended, None).problems()),
            ["suspended_reason"]
        );
        assert_eq!(
            fields(declared(Suspended, Some("  ")).problems()),
            ["suspended_reason"]
        );
        assert_eq!(
            fields(declared(Active, Some("unpaid")).problems()),
            ["suspended_reason"]
        );
    }

    #[test]
    fn deletion_cannot_be_declared_and_the_slug_must_be_lower_case() {
        assert_eq!(fields(declared(Deleted, None).problems()), ["status"]);
        assert_eq!(fields(declared(Deleting, None).problems()), ["status"]);
        let mut upper = declared(Active, None);
        upper.tenant.slug = "Acme".into();
        assert_eq!(fields(upper.problems()), ["slug"]);
    }

    #[test]
    fn every_field_problem_is_reported_not_just_the_first() {
        let mut d = declared(Suspended, None);
        d.tenant.db_port = Some(0);
        d.tenant.db_host = "db 1".into();
        d.tenant.contact_email = Some("nobody".into());
        assert_eq!(
            fields(d.problems()),
            ["db_host", "db_port", "contact_email", "suspended_reason"]
        );
    }

    #[test]
    fn declared_statuses_are_reached_by_one_drawn_transition_or_refused() {
        assert_eq!(declared_transition(Active, Active), Ok(None));
        assert_eq!(
            declared_transition(Provisioning, Active),
            Ok(Some(Transition::Activate))
        );
        assert_eq!(
            declared_transition(Active, Suspended),
            Ok(Some(Transition::Suspend))
        );
        assert_eq!(
            declared_transition(Suspended, Active),
            Ok(Some(Transition::Resume))
        );
        for (from, to) in [
            (Active, Provisioning),
            (Suspended, Provisioning),
            (Provisioning, Suspended),
            (Deleting, Active),
            (Active, Deleted),
        ] {
            assert!(declared_transition(from, to).is_err(), "{from} -> {to}");
        }
    }
}
