//! Tenant SQL that other modules run inside their own transactions and statements.
//!
//! The wave engine, the resolver and the events feed need tenant rows at moments only
//! they control: in the same transaction as a wave target's claim or outcome, joined into
//! one statement so a claim stays one round trip, or as a filter inside a generated feed
//! query. Rather than spell `control_plane.tenants` themselves, they call here:
//!
//! - functions that take the caller's client or transaction (so the caller keeps its
//!   transaction, its locks and its prepared-statement cache) and return
//!   `tokio_postgres::Error`, so the caller's own error enum classifies failures as before;
//! - SQL fragments ([`tenant_table!`](crate::registry::tenant_table),
//!   [`tenant_now_cols!`](crate::registry::tenant_now_cols), [`tenant_ids_with_slug`],
//!   [`join_slug`]) for statements that join the tenant table to the caller's own table.
//!
//! Rows handed back are read by column name by the caller's `from_row`
//! (`registry::TenantDb`, `waves::claim::TenantNow`, `waves::plan::Candidate`); each
//! function names the columns it selects.

use deadpool_postgres::GenericClient as CachingClient;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// The live tenant with this (lower-case) slug, for the resolver: columns `slug`, `status`,
/// `db_host`, `db_port`, `db_name`, `db_user`, `db_secret_ref`, `db_options`,
/// `schema_version`, `suspended_reason`. Prepared once per pooled connection (every
/// resolution cache miss runs it).
pub async fn resolution_row(
    client: &impl CachingClient,
    slug: &str,
) -> Result<Option<Row>, tokio_postgres::Error> {
    // A live tenant by that slug first; else the tenant a live alias (a renamed tenant's
    // old slug) points to, answering with its new slug.
    const SQL: &str =
        "SELECT slug, status, db_host, db_port, db_name, db_user, db_secret_ref, db_options, \
                schema_version, suspended_reason FROM ( \
           SELECT t.*, false AS via_alias FROM control_plane.tenants t \
           WHERE lower(t.slug) = $1 AND t.deleted_at IS NULL \
           UNION ALL \
           SELECT t.*, true FROM control_plane.tenant_aliases a \
           JOIN control_plane.tenants t ON t.id = a.tenant_id \
           WHERE a.slug = $1 AND a.expires_at > now() AND t.deleted_at IS NULL \
         ) found ORDER BY via_alias LIMIT 1";
    let stmt = client.prepare_cached(SQL).await?;
    client.query_opt(&stmt, &[&slug]).await
}

/// What a wave selects: the live tenants (the registry's `live_tenant!`) matching
/// every given filter (`labels @>`, slug in `slugs`, `billing_plan`). Columns `id`,
/// `slug`, `db_host`, `canary`.
pub async fn wave_candidates(
    tx: &impl GenericClient,
    labels: Option<&Value>,
    slugs: Option<&[String]>,
    billing_plan: Option<&str>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    const SQL: &str = concat!(
        "SELECT id, slug, db_host, canary FROM control_plane.tenants WHERE ",
        live_tenant!(),
        " AND ($1::jsonb IS NULL OR labels @> $1) \
           AND ($2::text[] IS NULL OR slug = ANY($2)) \
           AND ($3::text IS NULL OR billing_plan = $3)"
    );
    tx.query(SQL, &[&labels, &slugs, &billing_plan]).await
}

/// The secret references of up to `limit` live active tenants, for a replica's warm-up of
/// its secret cache. Column `db_secret_ref`.
pub async fn active_secret_refs(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    const SQL: &str = "SELECT db_secret_ref FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND status = 'active' ORDER BY slug LIMIT $1";
    client.query(SQL, &[&limit]).await
}

/// What a schema-drift scan reads: every live tenant, by slug. Columns `id`, `slug` and
/// the `db_*` columns (`TenantDb::from_row`).
pub async fn scan_targets(client: &impl GenericClient) -> Result<Vec<Row>, tokio_postgres::Error> {
    const SQL: &str = concat!(
        "SELECT id, slug, db_host, db_port, db_name, db_user, db_secret_ref, db_options \
         FROM control_plane.tenants WHERE ",
        live_tenant!(),
        " ORDER BY slug"
    );
    client.query(SQL, &[]).await
}

/// The oldest recorded schema version among `tenants`, a tenant with none counting as 0;
/// `None` when no tenant matches.
pub async fn oldest_schema_version(
    tx: &impl GenericClient,
    tenants: &[Uuid],
) -> Result<Option<i32>, tokio_postgres::Error> {
    const SQL: &str = "SELECT min(coalesce(schema_version, 0)) AS oldest \
         FROM control_plane.tenants WHERE id = ANY($1)";
    tx.query_one(SQL, &[&tenants]).await?.try_get("oldest")
}

/// The tenant's recorded `schema_version`, its row locked (`FOR UPDATE`) until the
/// caller's transaction ends, so two runners recording the same tenant serialize.
pub async fn lock_schema_version(
    tx: &impl CachingClient,
    tenant: Uuid,
) -> Result<Option<i32>, tokio_postgres::Error> {
    const SQL: &str = "SELECT schema_version FROM control_plane.tenants WHERE id = $1 FOR UPDATE";
    let stmt = tx.prepare_cached(SQL).await?;
    tx.query_one(&stmt, &[&tenant])
        .await?
        .try_get("schema_version")
}

/// Records that the tenant is at `version` and clears its migration issue. A tenant already
/// there with no issue keeps its row: no new tuple, no index churn, no NOTIFY.
pub async fn set_schema_version(
    tx: &impl CachingClient,
    tenant: Uuid,
    version: Option<i32>,
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str =
        "UPDATE control_plane.tenants SET schema_version = $2, migration_issue = NULL \
         WHERE id = $1 AND (schema_version IS DISTINCT FROM $2 OR migration_issue IS NOT NULL)";
    let stmt = tx.prepare_cached(SQL).await?;
    tx.execute(&stmt, &[&tenant, &version]).await
}

/// [`lock_schema_version`] for many tenants in one statement, locked in id order (two
/// recorders locking overlapping sets never deadlock): (tenant, recorded version).
pub async fn lock_schema_versions(
    tx: &impl CachingClient,
    tenants: &[Uuid],
) -> Result<Vec<(Uuid, Option<i32>)>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id, schema_version FROM control_plane.tenants WHERE id = ANY($1) \
                       ORDER BY id FOR UPDATE";
    let stmt = tx.prepare_cached(SQL).await?;
    tx.query(&stmt, &[&tenants])
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("schema_version")?)))
        .collect()
}

/// [`set_schema_version`] for many tenants (`tenants[i]` at `versions[i]`) in one statement.
pub async fn set_schema_versions(
    tx: &impl CachingClient,
    tenants: &[Uuid],
    versions: &[Option<i32>],
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "UPDATE control_plane.tenants t SET schema_version = d.v, migration_issue = NULL \
         FROM unnest($1::uuid[], $2::int4[]) AS d(id, v) \
         WHERE t.id = d.id AND (t.schema_version IS DISTINCT FROM d.v OR t.migration_issue IS NOT NULL)";
    if tenants.is_empty() {
        return Ok(0);
    }
    let stmt = tx.prepare_cached(SQL).await?;
    tx.execute(&stmt, &[&tenants, &versions]).await
}

/// Flags the tenant for drift or attention (`migration_issue`, shown by the fleet report).
pub async fn set_migration_issue(
    tx: &impl GenericClient,
    tenant: Uuid,
    issue: &Value,
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "UPDATE control_plane.tenants SET migration_issue = $2 WHERE id = $1";
    tx.execute(SQL, &[&tenant, &issue]).await
}

/// A subquery for `… IN (…)`: the ids of tenants, deleted ones included, whose lower-case
/// slug is the bound parameter `placeholder` (`$3`).
pub fn tenant_ids_with_slug(placeholder: &str) -> String {
    format!("(SELECT id FROM control_plane.tenants WHERE lower(slug) = {placeholder})")
}

/// `LEFT JOIN` of the tenant table as `alias` on `alias.id = tenant_id`, for a statement
/// that adds the slug (`alias.slug`) to rows of its own.
pub fn join_slug(alias: &str, tenant_id: &str) -> String {
    format!("LEFT JOIN control_plane.tenants {alias} ON {alias}.id = {tenant_id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn lent_fragments_spell_the_statements_they_replaced() {
        let take = concat!(
            "FROM ",
            tenant_table!("t"),
            " WHERE x RETURNING a, ",
            tenant_now_cols!("t")
        );
        assert_eq!(take, "FROM control_plane.tenants t WHERE x RETURNING a, CASE WHEN t.deleted_at IS NULL THEN t.status END AS status, \
                   t.db_host, t.db_port, t.db_name, t.db_user, t.db_secret_ref, t.db_options, \
                   t.schema_version, t.migration_issue IS NOT NULL AS has_issue");
    }
}
