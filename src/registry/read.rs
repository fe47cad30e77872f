//! The registry's reads: one tenant, the keyset-paged list, a tenant's events, the fleet
//! report and the health checks.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::row::tenant_from_row;
use super::{
    fleet, health, Event, FleetReport, HealthReport, ListFilter, Page, ProvisioningFailure,
    Registry, RegistryError, Slug, Tenant,
};

/// A slug from a URL or command line. One that cannot be valid cannot exist either,
/// so it reads as "not found" rather than as a validation error.
pub(super) fn lookup_slug(slug: &str) -> Result<Slug, RegistryError> {
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

impl Registry {
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
            Some(row) => tenant_from_row(&row).map(|t| self.present(t)),
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
            .map(|r| tenant_from_row(r).map(|t| self.present(t)))
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

    /// Tenants not soft-deleted per status, in the lifecycle's order.
    pub async fn status_counts(&self) -> Result<Vec<(String, i64)>, RegistryError> {
        let client = self.pool.get().await?;
        let client: &tokio_postgres::Client = &client;
        fleet::status_counts(client).await
    }

    /// Up to `limit` tenants whose last provisioning attempt failed, most recent first.
    pub async fn provisioning_failures(
        &self,
        limit: i64,
    ) -> Result<Vec<ProvisioningFailure>, RegistryError> {
        let client = self.pool.get().await?;
        let client: &tokio_postgres::Client = &client;
        fleet::provisioning_failures(client, limit).await
    }

    /// Live tenants whose secret reference this registry's scope refuses, as
    /// `(slug, reference, rule)`, by slug: what an upgrade that narrowed the scope (or a
    /// row written straight into the control DB) left behind. Such a tenant does not
    /// resolve until its secret is moved and its reference PATCHed.
    pub async fn refs_out_of_scope(&self) -> Result<Vec<(String, String, String)>, RegistryError> {
        const SQL: &str = "SELECT slug, db_secret_ref FROM control_plane.tenants \
             WHERE deleted_at IS NULL ORDER BY slug";
        let client = self.pool.get().await?;
        let mut out = Vec::new();
        for row in client.query(SQL, &[]).await? {
            let reference: String = row.try_get("db_secret_ref")?;
            let rule = match reference.parse::<crate::secrets::SecretRef>() {
                Ok(r) => self.scope.check(&r).err().map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(rule) = rule {
                out.push((row.try_get("slug")?, reference, rule));
            }
        }
        Ok(out)
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
    use serde_json::json;

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
