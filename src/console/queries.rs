//! The few reads only the console makes (the API has no endpoint for them): tenants per
//! status, failed provisioning, halted waves, and one tenant's history in waves. Rows are
//! read by column name.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ConsoleError;
use crate::app::AppState;

/// Live tenants per status, in the lifecycle's order.
pub async fn status_counts(s: &AppState) -> Result<Vec<(String, i64)>, ConsoleError> {
    const SQL: &str = "SELECT status, count(*) AS n FROM control_plane.tenants \
         WHERE deleted_at IS NULL GROUP BY status \
         ORDER BY array_position(ARRAY['provisioning','active','suspended','deleting'], status), status";
    let client = s.pool.get().await?;
    let rows = client.query(SQL, &[]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect()
}

/// A tenant whose last provisioning attempt failed.
pub struct ProvisioningFailure {
    pub slug: String,
    pub step: String,
    pub message: String,
}

/// Up to `limit` tenants with a recorded provisioning failure, most recent first.
pub async fn provisioning_failures(
    s: &AppState,
    limit: i64,
) -> Result<Vec<ProvisioningFailure>, ConsoleError> {
    const SQL: &str = "SELECT slug, provisioning_error->>'step' AS step, \
         provisioning_error->>'message' AS message FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND provisioning_error IS NOT NULL \
         ORDER BY provisioning_error->>'at' DESC NULLS LAST, slug LIMIT $1";
    let client = s.pool.get().await?;
    let rows = client.query(SQL, &[&limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(ProvisioningFailure {
                slug: r.try_get("slug")?,
                step: r.try_get::<_, Option<String>>("step")?.unwrap_or_default(),
                message: r
                    .try_get::<_, Option<String>>("message")?
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Ids of the most recent halted waves (they wait for a person).
pub async fn halted_waves(s: &AppState, limit: i64) -> Result<Vec<Uuid>, ConsoleError> {
    const SQL: &str = "SELECT id FROM control_plane.waves WHERE state = 'halted' \
         ORDER BY created_at DESC LIMIT $1";
    let client = s.pool.get().await?;
    let rows = client.query(SQL, &[&limit]).await?;
    rows.iter()
        .map(|r| r.try_get("id").map_err(ConsoleError::from))
        .collect()
}

/// One tenant's part in one wave.
pub struct TenantWave {
    pub wave_id: Uuid,
    pub wave_state: String,
    pub dry_run: bool,
    pub target_version: i32,
    pub phase: i32,
    pub state: String,
    pub attempts: i32,
    pub from_version: Option<i32>,
    pub to_version: Option<i32>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The waves a tenant was a target of, newest first.
pub async fn tenant_waves(
    s: &AppState,
    tenant_id: Uuid,
    limit: i64,
) -> Result<Vec<TenantWave>, ConsoleError> {
    const SQL: &str = "SELECT t.wave_id, w.state AS wave_state, w.dry_run, w.target_version, \
         t.phase, t.state, t.attempts, t.from_version, t.to_version, t.error, w.created_at \
         FROM control_plane.wave_targets t JOIN control_plane.waves w ON w.id = t.wave_id \
         WHERE t.tenant_id = $1 ORDER BY w.created_at DESC LIMIT $2";
    let client = s.pool.get().await?;
    let rows = client.query(SQL, &[&tenant_id, &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(TenantWave {
                wave_id: r.try_get("wave_id")?,
                wave_state: r.try_get("wave_state")?,
                dry_run: r.try_get("dry_run")?,
                target_version: r.try_get("target_version")?,
                phase: r.try_get("phase")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                from_version: r.try_get("from_version")?,
                to_version: r.try_get("to_version")?,
                error: r.try_get("error")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}
