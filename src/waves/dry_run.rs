//! Dry-run waves in the control DB: recording what each tenant would do, the report that
//! groups failures by error, and the quarantine a real wave takes from a dry run.
//!
//! A dry-run wave has one phase and no canaries, soak or failure budget:
//! `pending → rolling → completed`. Its targets end `succeeded` (would succeed), `failed`
//! (would fail; `detail` holds code, message, detail and file) or `skipped` (a file it
//! never executes stopped it, or the tenant's status). A target that fails needing
//! attention (a file ended the dry run's transaction) halts the wave (`state::step`).
//! Recording writes only the target row: no tenant event, no `schema_version`, no
//! `migration_issue`.

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::claim::Claimed;
use super::{redact, WaveError};
use crate::migrate::{DryRunOutcome, MigrateError, MigrationSet};

/// `error_kind` of a target skipped because a dry run found it failing.
pub const QUARANTINED: &str = "quarantined";
/// `error_kind` of a dry-run target stopped by a file it never executes.
pub const NOT_RUN: &str = "not_run";

/// The structured part of a failure (stored in `wave_targets.detail`).
fn failure_detail(err: &MigrateError, set: &MigrationSet) -> Value {
    let detail = match err {
        MigrateError::Sql {
            version,
            code,
            message,
            detail,
        } => json!({
            "outcome": "fails",
            "version": version,
            "file": set.get(*version).map(|f| f.file_name()),
            "code": code,
            "message": message,
            "detail": detail,
        }),
        MigrateError::Drift { version, .. } | MigrateError::NeedsAttention { version, .. } => {
            json!({
                "outcome": "fails",
                "version": version,
                "file": set.get(*version).map(|f| f.file_name()),
                "message": err.to_string(),
            })
        }
        MigrateError::LockTimeout {
            version,
            message,
            blockers,
        } => json!({
            "outcome": "fails",
            "version": version,
            "file": set.get(*version).map(|f| f.file_name()),
            "code": "55P03",
            "message": message,
            "blockers": blockers,
        }),
        other => json!({ "outcome": "fails", "message": other.to_string() }),
    };
    // `message` and `detail` may quote rows; viewers read the public form instead.
    redact::with_public_error(Some(detail), err)
}

/// `detail` plus what the run measured: the size of the relations the pending files name
/// (`size_bytes`, their sum, and `tables`) and the time the files took (`migrate_ms`).
fn with_size(mut detail: Value, out: &DryRunOutcome) -> Value {
    detail["size_bytes"] = json!(out.tables.iter().map(|t| t.bytes).sum::<i64>());
    detail["tables"] = json!(out.tables);
    detail["migrate_ms"] = json!(out.migrate_time.as_millis() as i64);
    detail
}

/// A target's final row.
struct Finished {
    state: &'static str,
    from: Option<i32>,
    to: Option<i32>,
    kind: Option<&'static str>,
    error: Option<String>,
    detail: Value,
}

/// Records a dry run's result for one target. Retryable errors (lock busy, connection
/// trouble, lock timeout) go back to pending with a backoff while attempts remain, exactly
/// as in a real wave; everything else is final.
pub async fn record(
    pool: &Pool,
    c: &Claimed,
    owner: &str,
    result: &Result<DryRunOutcome, MigrateError>,
    set: &MigrationSet,
    duration_ms: i64,
    backoff: Duration,
) -> Result<(), WaveError> {
    const DONE: &str =
        "UPDATE control_plane.wave_targets SET state = $4, from_version = $5, to_version = $6, \
         error_kind = $7, error = $8, detail = $9, finished_at = now(), duration_ms = $10, \
         lease_owner = NULL, lease_expires_at = NULL \
         WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND attempts = $11 AND state = 'running'";
    const RETRY: &str =
        "UPDATE control_plane.wave_targets SET state = 'pending', lease_owner = NULL, \
         lease_expires_at = NULL, next_attempt_at = now() + make_interval(secs => $4::float8), \
         error = $5, error_kind = $6, detail = $7 \
         WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND attempts = $8 AND state = 'running'";
    let client = pool.get().await?;
    let done = match result {
        Ok(out) if out.not_run.is_empty() => Finished {
            state: "succeeded",
            from: out.from,
            to: out.checked.last().copied().or(out.from),
            kind: None,
            error: None,
            detail: with_size(
                json!({ "outcome": "would_succeed", "checked": out.checked }),
                out,
            ),
        },
        Ok(out) => Finished {
            state: "skipped",
            from: out.from,
            to: out.checked.last().copied().or(out.from),
            kind: Some(NOT_RUN),
            error: out.not_run_reason.clone(),
            detail: with_size(
                json!({ "outcome": "skipped", "checked": out.checked, "not_run": out.not_run }),
                out,
            ),
        },
        Err(e) if e.is_retryable() && c.attempt < c.run.max_attempts => {
            client
                .execute(
                    RETRY,
                    &[
                        &c.wave_id,
                        &c.tenant_id,
                        &owner,
                        &backoff.as_secs_f64(),
                        &e.to_string(),
                        &e.kind().as_str(),
                        &redact::with_public_error(None, e),
                        &c.attempt,
                    ],
                )
                .await?;
            return Ok(());
        }
        Err(e) => Finished {
            state: "failed",
            from: c.tenant.schema_version,
            to: None,
            kind: Some(e.kind().as_str()),
            error: Some(e.to_string()),
            detail: failure_detail(e, set),
        },
    };
    client
        .execute(
            DONE,
            &[
                &c.wave_id,
                &c.tenant_id,
                &owner,
                &done.state,
                &done.from,
                &done.to,
                &done.kind,
                &done.error,
                &done.detail,
                &duration_ms,
                &c.attempt,
            ],
        )
        .await?;
    Ok(())
}

/// Tenants sharing one outcome.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportGroup {
    pub count: i64,
    /// Failure class (`sql`, `drift`, `timeout`, ...) or `not_run`.
    #[schema(required)]
    pub kind: Option<String>,
    /// SQLSTATE, for SQL errors.
    #[schema(required)]
    pub code: Option<String>,
    /// The migration file, when one is to blame.
    #[schema(required)]
    pub file: Option<String>,
    pub message: String,
    /// The PostgreSQL detail of one of the tenants (details differ per tenant, e.g. the
    /// duplicated key; every tenant's is in `GET /v1/waves/{id}/targets`).
    #[schema(required)]
    pub example_detail: Option<String>,
    pub slugs: Vec<String>,
}

/// What a dry-run wave found, failures grouped by error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DryRunReport {
    pub would_succeed: i64,
    pub would_fail: i64,
    pub not_run: i64,
    /// Tenants not examined yet.
    pub pending: i64,
    /// Failures, one entry per distinct error, largest first.
    pub failures: Vec<ReportGroup>,
    /// Tenants skipped (files a dry run never executes, status), one entry per reason.
    pub skipped: Vec<ReportGroup>,
    /// The ten tenants whose touched tables are largest, largest first: candidates to
    /// migrate last or alone (`selector.slugs`).
    #[serde(default)]
    #[schema(required)]
    pub largest: Vec<TenantCost>,
    /// The ten tenants whose dry run took longest, slowest first.
    #[serde(default)]
    #[schema(required)]
    pub slowest: Vec<TenantCost>,
}

/// What one tenant's dry run measured.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantCost {
    pub slug: String,
    /// Total size of the existing relations its pending files name (None: not measured).
    #[schema(required)]
    pub size_bytes: Option<i64>,
    /// Wall time of its dry run (connect, lock, run, rollback).
    #[schema(required)]
    pub duration_ms: Option<i64>,
    /// Time its pending files took to execute.
    #[schema(required)]
    pub migrate_ms: Option<i64>,
}

/// The report of a dry-run wave. Viewers read each group's public form as its message
/// and no example detail (`redact`).
pub async fn report(
    client: &impl tokio_postgres::GenericClient,
    wave_id: Uuid,
    audience: redact::Audience,
) -> Result<DryRunReport, WaveError> {
    const COUNTS: &str =
        "SELECT state, count(*) AS n FROM control_plane.wave_targets WHERE wave_id = $1 GROUP BY 1";
    const GROUPS: &str = "SELECT state, error_kind, detail->>'code' AS code, \
         coalesce(detail->>'file', CASE WHEN detail ? 'not_run' THEN detail->'not_run'->>0 END) AS file, \
         coalesce(detail->>'message', error, '') AS message, min(detail->>'detail') AS example_detail, \
         min(detail->>'public_error') AS public_error, \
         count(*) AS n, array_agg(slug ORDER BY slug) AS slugs \
         FROM control_plane.wave_targets WHERE wave_id = $1 AND state IN ('failed', 'skipped') \
         GROUP BY 1, 2, 3, 4, 5 ORDER BY count(*) DESC, 5";
    const LARGEST: &str = "SELECT slug, (detail->>'size_bytes')::int8 AS size_bytes, duration_ms, \
         (detail->>'migrate_ms')::int8 AS migrate_ms FROM control_plane.wave_targets \
         WHERE wave_id = $1 AND detail ? 'size_bytes' ORDER BY (detail->>'size_bytes')::int8 DESC, slug LIMIT 10";
    const SLOWEST: &str = "SELECT slug, (detail->>'size_bytes')::int8 AS size_bytes, duration_ms, \
         (detail->>'migrate_ms')::int8 AS migrate_ms FROM control_plane.wave_targets \
         WHERE wave_id = $1 AND duration_ms IS NOT NULL AND state <> 'pending' \
         ORDER BY duration_ms DESC, slug LIMIT 10";
    let mut r = DryRunReport::default();
    for row in client.query(COUNTS, &[&wave_id]).await? {
        let (state, n): (String, i64) = (row.try_get("state")?, row.try_get("n")?);
        match state.as_str() {
            "succeeded" => r.would_succeed += n,
            "failed" => r.would_fail += n,
            "skipped" => r.not_run += n,
            _ => r.pending += n,
        }
    }
    let cost = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<TenantCost>, WaveError> {
        rows.iter()
            .map(|row| {
                Ok(TenantCost {
                    slug: row.try_get("slug")?,
                    size_bytes: row.try_get("size_bytes")?,
                    duration_ms: row.try_get("duration_ms")?,
                    migrate_ms: row.try_get("migrate_ms")?,
                })
            })
            .collect()
    };
    r.largest = cost(client.query(LARGEST, &[&wave_id]).await?)?;
    r.slowest = cost(client.query(SLOWEST, &[&wave_id]).await?)?;
    for row in client.query(GROUPS, &[&wave_id]).await? {
        let state: String = row.try_get("state")?;
        let (kind, message): (Option<String>, String) =
            (row.try_get("error_kind")?, row.try_get("message")?);
        let public: Option<String> = row.try_get("public_error")?;
        let viewers = audience == redact::Audience::Viewers;
        let group = ReportGroup {
            message: redact::error_for(audience, kind.as_deref(), &message, public.as_deref()),
            kind,
            code: row.try_get("code")?,
            file: row.try_get("file")?,
            example_detail: if viewers {
                None
            } else {
                row.try_get("example_detail")?
            },
            count: row.try_get("n")?,
            slugs: row.try_get("slugs")?,
        };
        if state == "failed" {
            r.failures.push(group);
        } else {
            r.skipped.push(group);
        }
    }
    Ok(r)
}

/// The tenants a completed dry-run wave found failing, with the reason a real wave
/// quoting it (`exclude_failed_of`) skips them.
pub async fn quarantined(
    tx: &Transaction<'_>,
    dry_run_wave: Uuid,
) -> Result<BTreeMap<Uuid, String>, WaveError> {
    const WAVE: &str = "SELECT dry_run, state FROM control_plane.waves WHERE id = $1";
    const FAILED: &str =
        "SELECT tenant_id, coalesce(error, 'failed') AS error FROM control_plane.wave_targets \
         WHERE wave_id = $1 AND state = 'failed'";
    let invalid = |message: String| WaveError::Invalid {
        field: "exclude_failed_of",
        message,
    };
    let Some(w) = tx.query_opt(WAVE, &[&dry_run_wave]).await? else {
        return Err(invalid(format!("no wave {dry_run_wave}")));
    };
    let (dry_run, state): (bool, String) = (w.try_get("dry_run")?, w.try_get("state")?);
    if !dry_run {
        return Err(invalid(format!(
            "wave {dry_run_wave} is not a dry run (start one with \"dry_run\": true)"
        )));
    }
    if state.parse() != Ok(crate::waves::WaveState::Completed) {
        return Err(invalid(format!(
            "dry run {dry_run_wave} is {state}; quarantine needs a completed dry run"
        )));
    }
    tx.query(FAILED, &[&dry_run_wave])
        .await?
        .iter()
        .map(|r| {
            let (id, error): (Uuid, String) = (r.try_get("tenant_id")?, r.try_get("error")?);
            Ok((
                id,
                format!("quarantined: dry run {dry_run_wave} found: {error}"),
            ))
        })
        .collect()
}
