//! The registry health report: invariants the schema cannot fully enforce, checked on demand
//! by `GET /v1/registry/health` and `drover check`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::RegistryError;

/// One kind of inconsistency and the tenants it affects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = HealthFinding)]
pub struct Finding {
    /// `duplicate_slug`, `duplicate_db_name`, `stuck_provisioning`,
    /// `schema_version_mismatch` or `soft_delete_incoherent`.
    pub kind: String,
    /// What it means and what to do.
    pub description: String,
    /// Affected slugs, sorted.
    pub slugs: Vec<String>,
}

/// Everything found; `ok` when nothing was.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// True when there are no findings.
    pub ok: bool,
    /// Findings, one per kind that matched.
    pub findings: Vec<Finding>,
}

fn describe(kind: &str) -> &'static str {
    match kind {
        "duplicate_slug" => "several live tenants share a slug (case-insensitive); soft-delete or rename all but one",
        "duplicate_db_name" => "several live tenants point at the same database name; fix db_name on all but one",
        "stuck_provisioning" => "tenants have been in provisioning longer than the configured window; retry or delete them",
        "schema_version_mismatch" => "schema_version differs from the 'to' of the tenant's last migrated event; inspect the tenant's refinery_schema_history",
        "soft_delete_incoherent" => "deleted_at and status disagree (deleted_at set but not deleting/deleted, or deleted without deleted_at)",
        _ => "unknown finding",
    }
}

pub(super) async fn report(
    client: &impl GenericClient,
    stuck_after: Duration,
) -> Result<HealthReport, RegistryError> {
    const SQL: &str = include_str!("health.sql");
    let rows = client.query(SQL, &[&stuck_after.as_secs_f64()]).await?;
    let mut findings = Vec::new();
    for row in rows {
        let kind: String = row.try_get("kind")?;
        let slugs: Option<Vec<String>> = row.try_get("slugs")?;
        if let Some(slugs) = slugs.filter(|s| !s.is_empty()) {
            findings.push(Finding {
                description: describe(&kind).to_string(),
                kind,
                slugs,
            });
        }
    }
    Ok(HealthReport {
        ok: findings.is_empty(),
        findings,
    })
}
