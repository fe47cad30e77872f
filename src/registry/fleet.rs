//! The fleet report: how far each live tenant's schema is, and who needs a person; the
//! counts behind the fleet gauges of `/metrics`; the console's tenants per status and
//! failed provisioning.

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::RegistryError;

/// Tenants on one schema version.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionCount {
    /// `null`: never migrated.
    #[schema(required)]
    pub version: Option<i32>,
    pub tenants: i64,
}

/// A tenant with a recorded migration problem.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Issue {
    pub slug: String,
    #[schema(value_type = Object)]
    pub issue: serde_json::Value,
}

/// `GET /v1/fleet`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetReport {
    /// Latest version of the newest migration set (the newest pushed, else the directory).
    #[schema(required)]
    pub latest_version: Option<i32>,
    /// Live active and suspended tenants.
    pub tenants: i64,
    pub by_version: Vec<VersionCount>,
    /// Tenants below the latest version (or never migrated).
    pub behind: i64,
    /// Up to 100 of them.
    pub behind_slugs: Vec<String>,
    /// History diverges from the files.
    pub drifted: Vec<Issue>,
    /// Half-applied no-transaction migration, invalid index, …
    pub needs_attention: Vec<Issue>,
    /// Tenants (not deleted) whose trial ends within the next 7 days.
    #[serde(default)]
    pub trials_ending_this_week: i64,
}

pub(super) async fn report(
    client: &impl GenericClient,
    latest: Option<i32>,
) -> Result<FleetReport, RegistryError> {
    const BY_VERSION: &str = concat!(
        "SELECT schema_version, count(*) AS tenants FROM control_plane.tenants WHERE ",
        live_tenant!(),
        " GROUP BY 1 ORDER BY 1 NULLS FIRST"
    );
    const BEHIND: &str = concat!(
        "SELECT slug, count(*) OVER () AS behind FROM control_plane.tenants WHERE ",
        live_tenant!(),
        " AND $1::int IS NOT NULL AND (schema_version IS NULL OR schema_version < $1) ORDER BY slug LIMIT 100"
    );
    const ISSUES: &str = "SELECT slug, migration_issue FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND migration_issue IS NOT NULL ORDER BY slug";
    let by_version = client
        .query(BY_VERSION, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(VersionCount {
                version: r.try_get("schema_version")?,
                tenants: r.try_get("tenants")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    const TRIALS: &str = "SELECT count(*) AS trials FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND trial_ends_at > now() AND trial_ends_at <= now() + interval '7 days'";
    let behind_rows = client.query(BEHIND, &[&latest]).await?;
    let trials_ending_this_week = client.query_one(TRIALS, &[]).await?.try_get("trials")?;
    let (mut drifted, mut needs_attention) = (Vec::new(), Vec::new());
    for r in client.query(ISSUES, &[]).await? {
        let issue = Issue {
            slug: r.try_get("slug")?,
            issue: r.try_get("migration_issue")?,
        };
        if issue.issue["kind"] == "drift" {
            drifted.push(issue);
        } else {
            needs_attention.push(issue);
        }
    }
    Ok(FleetReport {
        latest_version: latest,
        tenants: by_version.iter().map(|v| v.tenants).sum(),
        by_version,
        behind: match behind_rows.first() {
            Some(r) => r.try_get("behind")?,
            None => 0,
        },
        behind_slugs: behind_rows
            .iter()
            .map(|r| r.try_get("slug"))
            .collect::<Result<_, _>>()?,
        drifted,
        needs_attention,
        trials_ending_this_week,
    })
}

/// The counts behind the fleet gauges of `/metrics`; label values as exported.
#[derive(Debug, Clone, Default)]
pub struct FleetGauges {
    /// Tenants not soft-deleted, by status.
    pub by_status: Vec<(String, i64)>,
    /// Live tenants by schema version (`none`: never migrated).
    pub by_version: Vec<(String, i64)>,
    /// Live tenants below `latest` (or never migrated); 0 without a latest version.
    pub behind: i64,
    /// Tenants not soft-deleted with a migration issue, by the issue's `kind`.
    pub issues_by_kind: Vec<(Option<String>, i64)>,
    /// Tenants not soft-deleted whose provisioning failed.
    pub provisioning_failed: i64,
}

/// Counts for the metrics endpoint: cheaper than [`report`] (no slugs, no issue bodies),
/// with the same meaning of a live tenant.
pub async fn gauges(
    client: &impl GenericClient,
    latest: Option<i32>,
) -> Result<FleetGauges, tokio_postgres::Error> {
    const STATUS: &str = "SELECT status AS label, count(*) AS n FROM control_plane.tenants \
         WHERE deleted_at IS NULL GROUP BY 1";
    const VERSIONS: &str = concat!(
        "SELECT coalesce(schema_version::text, 'none') AS label, count(*) AS n FROM control_plane.tenants WHERE ",
        live_tenant!(),
        " GROUP BY 1"
    );
    const BEHIND: &str = concat!(
        "SELECT count(*) AS n FROM control_plane.tenants WHERE ",
        live_tenant!(),
        " AND $1::int IS NOT NULL AND (schema_version IS NULL OR schema_version < $1)"
    );
    const ISSUES: &str =
        "SELECT migration_issue->>'kind' AS label, count(*) AS n FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND migration_issue IS NOT NULL GROUP BY 1";
    const PROVISIONING_FAILED: &str = "SELECT count(*) AS n FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND provisioning_error IS NOT NULL";
    fn counts<L: for<'a> tokio_postgres::types::FromSql<'a>>(
        rows: &[tokio_postgres::Row],
    ) -> Result<Vec<(L, i64)>, tokio_postgres::Error> {
        rows.iter()
            .map(|r| Ok((r.try_get("label")?, r.try_get("n")?)))
            .collect()
    }
    Ok(FleetGauges {
        by_status: counts(&client.query(STATUS, &[]).await?)?,
        by_version: counts(&client.query(VERSIONS, &[]).await?)?,
        behind: client.query_one(BEHIND, &[&latest]).await?.try_get("n")?,
        issues_by_kind: counts(&client.query(ISSUES, &[]).await?)?,
        provisioning_failed: client
            .query_one(PROVISIONING_FAILED, &[])
            .await?
            .try_get("n")?,
    })
}

/// A tenant whose last provisioning attempt failed.
#[derive(Debug, Clone)]
pub struct ProvisioningFailure {
    pub slug: String,
    /// The step that failed (empty when not recorded).
    pub step: String,
    pub message: String,
}

/// Tenants not soft-deleted per status, in the lifecycle's order.
pub(super) async fn status_counts(
    client: &impl GenericClient,
) -> Result<Vec<(String, i64)>, RegistryError> {
    const SQL: &str = "SELECT status, count(*) AS n FROM control_plane.tenants \
         WHERE deleted_at IS NULL GROUP BY status \
         ORDER BY array_position(ARRAY['provisioning','active','suspended','deleting'], status), status";
    client
        .query(SQL, &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(RegistryError::from)
}

/// Up to `limit` tenants with a recorded provisioning failure, most recent first.
pub(super) async fn provisioning_failures(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<ProvisioningFailure>, RegistryError> {
    const SQL: &str = "SELECT slug, provisioning_error->>'step' AS step, \
         provisioning_error->>'message' AS message FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND provisioning_error IS NOT NULL \
         ORDER BY provisioning_error->>'at' DESC NULLS LAST, slug LIMIT $1";
    client
        .query(SQL, &[&limit])
        .await?
        .iter()
        .map(|r| {
            Ok(ProvisioningFailure {
                slug: r.try_get("slug")?,
                step: r.try_get::<_, Option<String>>("step")?.unwrap_or_default(),
                message: r
                    .try_get::<_, Option<String>>("message")?
                    .unwrap_or_default(),
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(RegistryError::from)
}
