//! The fleet report: how far each live tenant's schema is, and who needs a person.

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
}

pub(super) async fn report(
    client: &impl GenericClient,
    latest: Option<i32>,
) -> Result<FleetReport, RegistryError> {
    const LIVE: &str = "deleted_at IS NULL AND status IN ('active', 'suspended')";
    let by_version = client
        .query(&format!("SELECT schema_version, count(*) FROM control_plane.tenants WHERE {LIVE} GROUP BY 1 ORDER BY 1 NULLS FIRST"), &[])
        .await?
        .iter()
        .map(|r| VersionCount { version: r.get(0), tenants: r.get(1) })
        .collect::<Vec<_>>();
    let behind_sql = format!(
        "SELECT slug, count(*) OVER () FROM control_plane.tenants WHERE {LIVE} \
         AND $1::int IS NOT NULL AND (schema_version IS NULL OR schema_version < $1) ORDER BY slug LIMIT 100"
    );
    let behind_rows = client.query(&behind_sql, &[&latest]).await?;
    let issues = client
        .query(
            "SELECT slug, migration_issue FROM control_plane.tenants \
             WHERE deleted_at IS NULL AND migration_issue IS NOT NULL ORDER BY slug",
            &[],
        )
        .await?;
    let (mut drifted, mut needs_attention) = (Vec::new(), Vec::new());
    for r in issues {
        let issue = Issue {
            slug: r.get(0),
            issue: r.get(1),
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
        behind: behind_rows.first().map_or(0, |r| r.get(1)),
        behind_slugs: behind_rows.iter().map(|r| r.get(0)).collect(),
        drifted,
        needs_attention,
    })
}
