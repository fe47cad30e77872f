//! The tenant registry: it owns `control_plane.tenants` and `tenant_limits`, and writes
//! `tenant_events`. Every SQL text naming the tenant table lives under `src/registry/`:
//! the registry's own operations here and in its submodules, and in [`queries`] the
//! statements and fragments other modules run inside their own transactions (the wave
//! claim and outcome, wave selection, the lint gate, analysis canaries, resolution, the
//! events feed's slug filter). `fleet.rs` holds the one definition of a live tenant, used by
//! the fleet report, the fleet metrics and wave selection. `tenant_events` is read by the
//! events feed (`crate::events`), which owns the merged feed over it and `wave_events`.
//!
//! Each write runs in one control-DB transaction that also inserts the tenant event
//! describing it, so a change without its event (or an event without its change) cannot
//! be committed. Rows are locked with `SELECT … FOR UPDATE` before a status change, so two
//! concurrent operators serialize instead of both "winning". Validation happens in Rust
//! first (clear, field-named errors); the schema's constraints repeat the rules.
//!
//! No loops or background tasks: callers (HTTP handlers, the CLI's `check`) drive it.

mod error;
mod health;
mod model;
mod schema;

pub use error::RegistryError;
pub use fleet::{gauges as fleet_gauges, FleetGauges, FleetReport, Issue, VersionCount};
pub use health::{Finding, HealthReport};
pub use model::{
    validate_db_options, validate_labels, Actor, DbIdent, Event, ListFilter, NewTenant, Page,
    ProvisioningError, Slug, Tenant, TenantLimits, TenantPatch, TenantStatus, Transition,
    DEFAULT_PORT, RESERVED_SLUGS,
};
pub use put::{declared_transition, Declared, Refused};

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// All columns of `control_plane.tenants`, in [`tenant_from_row`] order.
macro_rules! tenant_cols {
    () => {
        "id, slug, display_name, db_name, db_host, db_port, db_user, db_secret_ref, db_options, \
         schema_version, app_version, status, labels, canary, billing_plan, contact_email, \
         suspended_reason, maintenance_flag, created_at, updated_at, deleted_at, server, \
         provisioned_at, provisioning_error, \
         (SELECT to_jsonb(l) - 'tenant_id' FROM control_plane.tenant_limits l \
          WHERE l.tenant_id = tenants.id) AS limits"
    };
}

/// What a live tenant is, as a condition on `control_plane.tenants`: not soft-deleted, and
/// active or suspended (a provisioning tenant has no schema yet; deleting and deleted ones
/// are leaving). The fleet report, the fleet metrics and wave selection count these.
macro_rules! live_tenant {
    () => {
        "deleted_at IS NULL AND status IN ('active', 'suspended')"
    };
}

/// The tenant table under `alias`, as a `FROM` item, for a statement that joins it to a
/// table of the caller's (the wave claim's `UPDATE … FROM`).
macro_rules! tenant_table {
    ($alias:literal) => {
        concat!("control_plane.tenants ", $alias)
    };
}
pub(crate) use tenant_table;

/// The tenant's state as a worker needs it, from the tenant table under `alias`: `status`
/// (NULL once deleted), the `db_*` columns, `schema_version` and `has_issue`. Read by
/// `waves::claim::TenantNow::from_row`.
macro_rules! tenant_now_cols {
    ($alias:literal) => {
        concat!(
            "CASE WHEN ",
            $alias,
            ".deleted_at IS NULL THEN ",
            $alias,
            ".status END AS status, ",
            $alias,
            ".db_host, ",
            $alias,
            ".db_port, ",
            $alias,
            ".db_name, ",
            $alias,
            ".db_user, ",
            $alias,
            ".db_secret_ref, ",
            $alias,
            ".db_options, ",
            $alias,
            ".schema_version, ",
            $alias,
            ".migration_issue IS NOT NULL AS has_issue"
        )
    };
}
pub(crate) use tenant_now_cols;

// Declared after the macros so their statements can use them.
mod fleet;
mod lifecycle;
mod limits;
mod put;
pub mod queries;

/// Handle on the registry; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Registry {
    pool: Pool,
    /// Which secret references a tenant may be given (checked on every write).
    scope: std::sync::Arc<crate::secrets::RefScope>,
}

/// A jsonb object of strings as a map; non-string values are kept as their JSON text.
pub fn string_map(v: Value) -> BTreeMap<String, String> {
    match v {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn tenant_from_row(row: &Row) -> Result<Tenant, RegistryError> {
    let labels = string_map(row.try_get("labels")?);
    let status: String = row.try_get("status")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        display_name: row.try_get("display_name")?,
        db_name: row.try_get("db_name")?,
        db_host: row.try_get("db_host")?,
        db_port: row.try_get("db_port")?,
        db_user: row.try_get("db_user")?,
        db_secret_ref: row.try_get("db_secret_ref")?,
        db_options: string_map(row.try_get("db_options")?),
        schema_version: row.try_get("schema_version")?,
        app_version: row.try_get("app_version")?,
        status: status.parse()?,
        labels,
        canary: row.try_get("canary")?,
        billing_plan: row.try_get("billing_plan")?,
        contact_email: row.try_get("contact_email")?,
        suspended_reason: row.try_get("suspended_reason")?,
        maintenance_flag: row.try_get("maintenance_flag")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
        server: row.try_get("server")?,
        provisioned_at: row.try_get("provisioned_at")?,
        provisioning_error: json_column(row, "provisioning_error")?,
        limits: json_column(row, "limits")?,
    })
}

/// A jsonb column as a typed value; a value drover cannot read is a corrupt row.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    column: &str,
) -> Result<Option<T>, RegistryError> {
    let v: Option<Value> = row.try_get(column)?;
    v.map(serde_json::from_value)
        .transpose()
        .map_err(|e| RegistryError::Db(crate::db::DbError::Internal(format!("{column}: {e}"))))
}

/// Writes one tenant event. Call it inside the transaction that makes the change.
pub async fn record_event(
    client: &impl GenericClient,
    tenant_id: Uuid,
    event_type: &str,
    actor: &Actor,
    payload: Value,
) -> Result<(), RegistryError> {
    const SQL: &str =
        "INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload) \
                       VALUES ($1, $2, $3, $4)";
    let payload = match (actor.behalf(), payload) {
        (Some(who), Value::Object(mut map)) => {
            map.insert("on_behalf_of".into(), json!(who));
            Value::Object(map)
        }
        (Some(who), Value::Null) => json!({ "on_behalf_of": who }),
        (_, payload) => payload,
    };
    client
        .execute(SQL, &[&tenant_id, &event_type, &actor.as_str(), &payload])
        .await?;
    Ok(())
}

/// A slug from a URL or command line. One that cannot be valid cannot exist either,
/// so it reads as "not found" rather than as a validation error.
fn lookup_slug(slug: &str) -> Result<Slug, RegistryError> {
    Slug::for_lookup(slug).map_err(|_| RegistryError::NotFound(slug.to_string()))
}

/// `key=value[,key=value]` → a JSON object for `labels @> $n`.
fn parse_label_filter(s: &str) -> Result<Value, RegistryError> {
    let mut map = serde_json::Map::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| RegistryError::Invalid {
            field: "label",
            message: format!("expected key=value, got {pair:?}"),
        })?;
        map.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Ok(Value::Object(map))
}

fn like_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Sets `*slot` to `new` and records the change when they differ.
fn change<T: PartialEq + serde::Serialize + Clone>(
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

/// Inserts a tenant in `status` and writes its `created` event (POST and PUT both create
/// through here). `new` is validated by the caller; `slug` is its lower-case form.
async fn insert_row(
    tx: &impl GenericClient,
    new: &NewTenant,
    slug: &Slug,
    status: TenantStatus,
    actor: &Actor,
) -> Result<Tenant, RegistryError> {
    const SQL: &str = concat!(
        "INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_port, db_user, \
         db_secret_ref, labels, canary, status, billing_plan, contact_email, app_version, maintenance_flag, \
         db_options, server) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         RETURNING ",
        tenant_cols!()
    );
    let labels = serde_json::to_value(&new.labels).unwrap_or_else(|_| json!({}));
    let options = serde_json::to_value(&new.db_options).unwrap_or_else(|_| json!({}));
    let row = tx
        .query_one(
            SQL,
            &[
                &slug.as_str(),
                &new.display_name,
                &new.db_name,
                &new.db_host,
                &new.port(),
                &new.db_user,
                &new.db_secret_ref,
                &labels,
                &new.canary,
                &status.as_str(),
                &new.billing_plan,
                &new.contact_email,
                &new.app_version,
                &new.maintenance_flag,
                &options,
                &new.server,
            ],
        )
        .await?;
    let tenant = tenant_from_row(&row)?;
    let payload = json!({
        "status": tenant.status, "db_name": tenant.db_name, "db_host": tenant.db_host,
        "db_port": tenant.db_port, "canary": tenant.canary, "labels": tenant.labels,
        "provision": new.provision, "server": tenant.server,
    });
    record_event(tx, tenant.id, "created", actor, payload).await?;
    Ok(tenant)
}

/// Writes every settable column of `t` (PATCH and PUT compute the row, this stores it).
async fn store_row(tx: &impl GenericClient, t: &Tenant) -> Result<Tenant, RegistryError> {
    const SQL: &str = concat!(
        "UPDATE control_plane.tenants SET display_name = $2, db_name = $3, db_host = $4, db_port = $5, \
         db_user = $6, db_secret_ref = $7, labels = $8, canary = $9, billing_plan = $10, \
         contact_email = $11, app_version = $12, maintenance_flag = $13, status = $14, db_options = $15, \
         suspended_reason = $16 WHERE id = $1 RETURNING ",
        tenant_cols!()
    );
    let labels = serde_json::to_value(&t.labels).unwrap_or_else(|_| json!({}));
    let options = serde_json::to_value(&t.db_options).unwrap_or_else(|_| json!({}));
    let row = tx
        .query_one(
            SQL,
            &[
                &t.id,
                &t.display_name,
                &t.db_name,
                &t.db_host,
                &t.db_port,
                &t.db_user,
                &t.db_secret_ref,
                &labels,
                &t.canary,
                &t.billing_plan,
                &t.contact_email,
                &t.app_version,
                &t.maintenance_flag,
                &t.status.as_str(),
                &options,
                &t.suspended_reason,
            ],
        )
        .await?;
    tenant_from_row(&row)
}

impl Registry {
    /// A registry over the control-plane pool.
    pub fn new(pool: Pool) -> Self {
        Self::with_scope(pool, crate::secrets::RefScope::default())
    }

    /// A registry that refuses secret references outside `scope`.
    pub fn with_scope(pool: Pool, scope: crate::secrets::RefScope) -> Self {
        Registry {
            pool,
            scope: std::sync::Arc::new(scope),
        }
    }

    /// The secret reference rules this registry enforces.
    pub fn scope(&self) -> &crate::secrets::RefScope {
        &self.scope
    }

    /// A reference that is well-formed (checked by validation) must also be in scope: a
    /// 422 naming the rule, before anything is written.
    fn check_scope(&self, reference: &str) -> Result<(), RegistryError> {
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
        let tenant = insert_row(&*tx, new, &slug, status, actor).await?;
        tx.commit().await?;
        tracing::info!(actor = actor.as_str(), "tenant created");
        Ok(tenant)
    }

    /// The live tenant with this slug (case-insensitive).
    pub async fn get(&self, slug: &str) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM control_plane.tenants WHERE lower(slug) = $1 AND deleted_at IS NULL"
        );
        let slug = lookup_slug(slug)?;
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(SQL).await?;
        match client.query_opt(&stmt, &[&slug.as_str()]).await? {
            Some(row) => tenant_from_row(&row),
            None => Err(RegistryError::NotFound(slug.to_string())),
        }
    }

    /// Lists tenants ordered by slug, one keyset page at a time. `q` is a case-insensitive
    /// substring of the slug or the display name: the trigram indexes of V14 answer it when
    /// pg_trgm is installed, a sequential scan otherwise (same query, same results).
    pub async fn list(&self, filter: &ListFilter) -> Result<Page<Tenant>, RegistryError> {
        const SQL: &str = concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM control_plane.tenants \
             WHERE ($1::text IS NULL OR status = $1) \
               AND ($2::jsonb IS NULL OR labels @> $2) \
               AND ($3::text IS NULL OR slug ILIKE $3 OR display_name ILIKE $3) \
               AND ($4::boolean OR deleted_at IS NULL) \
               AND ($5::text IS NULL OR (lower(slug), id) > ($5, $6::uuid)) \
               AND ($8::text IS NULL OR lower(contact_email) = lower($8)) \
               AND ($9::int IS NULL OR schema_version = $9) \
             ORDER BY lower(slug), id LIMIT $7"
        );
        let limit = filter.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(RegistryError::Invalid {
                field: "limit",
                message: "must be between 1 and 1000".into(),
            });
        }
        let status = filter.status.map(|s| s.as_str());
        let labels = filter
            .label
            .as_deref()
            .map(parse_label_filter)
            .transpose()?;
        let q = filter.q.as_deref().map(like_pattern);
        let (after_slug, after_id) = match filter.cursor.as_deref() {
            None => (None, Uuid::nil()),
            Some(c) => {
                let bad = || RegistryError::Invalid {
                    field: "cursor",
                    message: "not a cursor from a previous page".into(),
                };
                let (s, id) = c.split_once(':').ok_or_else(bad)?;
                (Some(s.to_string()), id.parse::<Uuid>().map_err(|_| bad())?)
            }
        };
        let client = self.pool.get().await?;
        let rows = client
            .query(
                SQL,
                &[
                    &status,
                    &labels,
                    &q,
                    &filter.include_deleted,
                    &after_slug,
                    &after_id,
                    &(limit + 1),
                    &filter.email.as_deref().map(str::trim),
                    &filter.schema_version,
                ],
            )
            .await?;
        let mut items = rows
            .iter()
            .map(tenant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items
                .last()
                .map(|t| format!("{}:{}", t.slug.to_lowercase(), t.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn lock_live(tx: &impl GenericClient, slug: &str) -> Result<Tenant, RegistryError> {
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
        let mut changes = serde_json::Map::new();
        change(
            &mut changes,
            "display_name",
            &mut t.display_name,
            patch.display_name.clone(),
        );
        change(
            &mut changes,
            "db_name",
            &mut t.db_name,
            patch.db_name.clone(),
        );
        change(
            &mut changes,
            "db_host",
            &mut t.db_host,
            patch.db_host.clone(),
        );
        change(&mut changes, "db_port", &mut t.db_port, patch.db_port);
        change(
            &mut changes,
            "db_user",
            &mut t.db_user,
            patch.db_user.clone(),
        );
        change(
            &mut changes,
            "db_secret_ref",
            &mut t.db_secret_ref,
            patch.db_secret_ref.clone(),
        );
        change(
            &mut changes,
            "db_options",
            &mut t.db_options,
            patch.db_options.clone(),
        );
        change(&mut changes, "labels", &mut t.labels, patch.labels.clone());
        change(&mut changes, "canary", &mut t.canary, patch.canary);
        change(
            &mut changes,
            "billing_plan",
            &mut t.billing_plan,
            patch.billing_plan.clone(),
        );
        change(
            &mut changes,
            "contact_email",
            &mut t.contact_email,
            patch.contact_email.clone(),
        );
        change(
            &mut changes,
            "app_version",
            &mut t.app_version,
            patch.app_version.clone(),
        );
        change(
            &mut changes,
            "maintenance_flag",
            &mut t.maintenance_flag,
            patch.maintenance_flag,
        );
        let status_change = match patch.status {
            Some(want)
                if want != before.status
                    && lifecycle::created_for_provisioning(&*tx, before.id).await? =>
            {
                return Err(lifecycle::job_activates(&before.slug));
            }
            Some(want) if want != before.status => {
                let to = Transition::Activate.apply(before.status).ok_or_else(|| {
                    RegistryError::IllegalTransition {
                        slug: before.slug.clone(),
                        verb: "activate",
                        from: before.status.to_string(),
                    }
                })?;
                t.status = to;
                Some((before.status, to))
            }
            _ => None,
        };
        if changes.is_empty() && status_change.is_none() {
            return Ok(before);
        }
        let after = store_row(&*tx, &t).await?;
        if !changes.is_empty() {
            record_event(&*tx, t.id, "updated", actor, json!({ "changed": changes })).await?;
        }
        if let Some((from, to)) = status_change {
            record_event(
                &*tx,
                t.id,
                "status_changed",
                actor,
                json!({ "from": from, "to": to }),
            )
            .await?;
        }
        tx.commit().await?;
        tracing::info!(
            actor = actor.as_str(),
            fields = changes.len(),
            "tenant updated"
        );
        Ok(after)
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
        Ok(tenant)
    }

    /// The live tenant's events, newest first. `before` is the `id` of the last event of
    /// the previous page.
    pub async fn events(
        &self,
        slug: &str,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Page<Event>, RegistryError> {
        const SQL: &str = "SELECT e.id, e.event_type, e.actor, e.payload, e.created_at \
             FROM control_plane.tenant_events e \
             WHERE e.tenant_id = $1 AND ($2::bigint IS NULL OR (e.created_at, e.id) < \
                 (SELECT created_at, id FROM control_plane.tenant_events WHERE id = $2)) \
             ORDER BY e.created_at DESC, e.id DESC LIMIT $3";
        if !(1..=1000).contains(&limit) {
            return Err(RegistryError::Invalid {
                field: "limit",
                message: "must be between 1 and 1000".into(),
            });
        }
        let tenant = self.get(slug).await?;
        let client = self.pool.get().await?;
        let rows = client
            .query(SQL, &[&tenant.id, &before, &(limit + 1)])
            .await?;
        let mut items = rows
            .iter()
            .map(|r| {
                Ok(Event {
                    id: r.try_get("id")?,
                    event_type: r.try_get("event_type")?,
                    actor: r.try_get("actor")?,
                    payload: r.try_get("payload")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Schema versions across the fleet against `latest`.
    pub async fn fleet(&self, latest: Option<i32>) -> Result<FleetReport, RegistryError> {
        let client = self.pool.get().await?;
        let client: &tokio_postgres::Client = &client;
        fleet::report(client, latest).await
    }

    /// Runs the registry health queries (see `health.sql`).
    pub async fn health(&self, stuck_after: Duration) -> Result<HealthReport, RegistryError> {
        let client = self.pool.get().await?;
        let client: &tokio_postgres::Client = &client;
        health::report(client, stuck_after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_filter_parses_pairs() {
        assert_eq!(
            parse_label_filter("plan=pro,region=eu").unwrap(),
            json!({"plan": "pro", "region": "eu"})
        );
        assert!(parse_label_filter("plan").is_err());
    }

    #[test]
    fn text_search_escapes_like_wildcards() {
        assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
    }
}
