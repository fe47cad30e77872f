//! A tenant row in and out of `control_plane.tenants`: reading one by column name, the
//! insert and the update every write goes through, and the `tenant_events` insert that
//! rides in the same transaction.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{Actor, NewTenant, RegistryError, Slug, Tenant, TenantStatus};

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

pub(super) fn tenant_from_row(row: &Row) -> Result<Tenant, RegistryError> {
    let labels = string_map(row.try_get("labels")?);
    let status: String = row.try_get("status")?;
    // The stored value is the explicit one; the registry fills the template in when it
    // hands a tenant out (`Registry::present`).
    let portal_url: Option<String> = row.try_get("portal_url")?;
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
        trial_ends_at: row.try_get("trial_ends_at")?,
        portal_url_explicit: portal_url.is_some(),
        portal_url,
        limits: json_column(row, "limits")?,
    })
}

/// A jsonb column as a typed value; a value drover cannot read is a corrupt row.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    column: &str,
) -> Result<Option<T>, RegistryError> {
    let v: Option<Value> = row.try_get(column)?;
    v.map(serde_json::from_value).transpose().map_err(|e| {
        RegistryError::Db(crate::db::DbError::Corrupt {
            what: format!("the tenant row's {column}"),
            source: Box::new(e),
        })
    })
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
    let payload = with_behalf(actor, payload);
    client
        .execute(SQL, &[&tenant_id, &event_type, &actor.as_str(), &payload])
        .await?;
    Ok(())
}

/// Writes one tenant event and returns its id (a request that carries the event, as an
/// external provisioner's does, refers to it). Call it inside the transaction that makes
/// the change.
pub async fn record_event_id(
    client: &impl GenericClient,
    tenant_id: Uuid,
    event_type: &str,
    actor: &Actor,
    payload: Value,
) -> Result<i64, RegistryError> {
    const SQL: &str =
        "INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload) \
                       VALUES ($1, $2, $3, $4) RETURNING id";
    let payload = with_behalf(actor, payload);
    let row = client
        .query_one(SQL, &[&tenant_id, &event_type, &actor.as_str(), &payload])
        .await?;
    Ok(row.try_get("id")?)
}

/// Writes many tenant events (tenant, type, payload) by one actor in one statement, in
/// the order given (their ids follow it). The webhook outbox rows come with them: the
/// trigger on the table writes them in the same transaction.
pub async fn record_events(
    client: &impl GenericClient,
    actor: &Actor,
    events: Vec<(Uuid, &str, Value)>,
) -> Result<(), RegistryError> {
    const SQL: &str =
        "INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload) \
         SELECT d.tenant_id, d.event_type, $3, d.payload \
         FROM unnest($1::uuid[], $2::text[], $4::jsonb[]) WITH ORDINALITY AS d(tenant_id, event_type, payload, n) \
         ORDER BY d.n";
    if events.is_empty() {
        return Ok(());
    }
    let mut tenants = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for (tenant, event_type, payload) in events {
        tenants.push(tenant);
        types.push(event_type);
        payloads.push(with_behalf(actor, payload));
    }
    client
        .execute(SQL, &[&tenants, &types, &actor.as_str(), &payloads])
        .await?;
    Ok(())
}

/// `payload` with the actor's `on_behalf_of`, when it has one.
fn with_behalf(actor: &Actor, payload: Value) -> Value {
    match (actor.behalf(), payload) {
        (Some(who), Value::Object(mut map)) => {
            map.insert("on_behalf_of".into(), json!(who));
            Value::Object(map)
        }
        (Some(who), Value::Null) => json!({ "on_behalf_of": who }),
        (_, payload) => payload,
    }
}

/// Inserts a tenant in `status` and writes its `created` event (POST and PUT both create
/// through here). `new` is validated by the caller; `slug` is its lower-case form.
pub(super) async fn insert_row(
    tx: &impl GenericClient,
    new: &NewTenant,
    slug: &Slug,
    status: TenantStatus,
    actor: &Actor,
) -> Result<Tenant, RegistryError> {
    const SQL: &str = concat!(
        "INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_port, db_user, \
         db_secret_ref, labels, canary, status, billing_plan, contact_email, app_version, maintenance_flag, \
         db_options, server, portal_url, trial_ends_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
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
                &new.portal_url,
                &new.trial_ends_at,
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
pub(super) async fn store_row(
    tx: &impl GenericClient,
    t: &Tenant,
) -> Result<Tenant, RegistryError> {
    const SQL: &str = concat!(
        "UPDATE control_plane.tenants SET display_name = $2, db_name = $3, db_host = $4, db_port = $5, \
         db_user = $6, db_secret_ref = $7, labels = $8, canary = $9, billing_plan = $10, \
         contact_email = $11, app_version = $12, maintenance_flag = $13, status = $14, db_options = $15, \
         suspended_reason = $16, portal_url = $17, trial_ends_at = $18 WHERE id = $1 RETURNING ",
        tenant_cols!()
    );
    let labels = serde_json::to_value(&t.labels).unwrap_or_else(|_| json!({}));
    let options = serde_json::to_value(&t.db_options).unwrap_or_else(|_| json!({}));
    // Only an explicit portal URL is stored; one from the template is not.
    let portal_url = t.portal_url.as_ref().filter(|_| t.portal_url_explicit);
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
                &portal_url,
                &t.trial_ends_at,
            ],
        )
        .await?;
    tenant_from_row(&row)
}
