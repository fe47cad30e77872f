//! `/v1/drift`: schema drift (what each tenant's schema really is, compared with what its
//! version should be), and `/v1/tenants/{slug}/drift`. Not the *history drift* of a
//! tenant whose applied migration was edited or deleted (that is the wave target's error).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::openapi as doc;
use super::{ApiError, Caller};
use crate::drift::cohorts::{self, DriftReport, TenantDrift};
use crate::drift::store::Scan;
use crate::drift::DriftError;
use crate::state::AppState;

impl From<DriftError> for ApiError {
    fn from(e: DriftError) -> Self {
        match e {
            DriftError::Db(db) => db.into(),
            DriftError::Registry(r) => r.into(),
            other => {
                tracing::error!(error = %other, "schema drift");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

/// `GET /v1/drift` → the fleet's cohorts.
#[utoipa::path(
    get, path = "/drift", tag = "drift", operation_id = "getDrift",
    summary = "The fleet's schema drift, as cohorts",
    description = "Tenants grouped by (version, schema fingerprint), newest version first, the largest group first. \
        Each cohort's `differences` are against the expected schema of its version: the migration set replayed on \
        the scratch database (`reference: replay`) or, without `drift_scratch_url`, the schema most tenants at that \
        version share (`reference: majority`). `slugs` lists the first 20.",
    responses((status = 200, description = "The cohorts.", body = DriftReport))
)]
pub async fn report(State(s): State<AppState>) -> Result<Json<DriftReport>, ApiError> {
    Ok(Json(cohorts::report(&s.pool).await?))
}

/// `GET /v1/tenants/{slug}/drift` → one tenant's schema drift.
#[utoipa::path(
    get, path = "/tenants/{slug}/drift", tag = "drift", operation_id = "getTenantDrift",
    summary = "The tenant's schema drift",
    description = "Its fingerprint and the expected one of its version, and each object that differs. 404 \
        `not_scanned` before its first fingerprint (taken by every scan, and by every migration that applies \
        something unless `drift_after_migration` is off).",
    params(doc::SlugPath),
    responses((status = 200, description = "The tenant's drift.", body = TenantDrift), (status = 404, response = doc::E404))
)]
pub async fn tenant(
    State(s): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<TenantDrift>, ApiError> {
    let t = s.registry.get(&slug).await?;
    match cohorts::tenant(&s.pool, t.id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_scanned",
            format!("tenant '{slug}' has no schema fingerprint yet; run `drover drift scan`"),
        )),
    }
}

/// `POST /v1/drift/scans` → 202, the scan asked for.
#[utoipa::path(
    post, path = "/drift/scans", tag = "drift", operation_id = "startDriftScan",
    summary = "Fingerprint every live tenant now",
    description = "The leader runs it (at most `drift_scan_concurrency` tenants at once, `drift_scan_max_per_host` \
        per database host). Asking while a scan waits answers that scan. Follow it with `GET /v1/drift/scans/{id}`.",
    params(doc::ActorHeader),
    responses((status = 202, description = "The scan, not started or running.", body = Scan,
        links(("GetDriftScan" = (operation_id = "getDriftScan", parameters(("id" = "$response.body#/id")))))),
        (status = 422, response = doc::E422))
)]
pub async fn start_scan(
    State(s): State<AppState>,
    Caller(actor): Caller,
) -> Result<(StatusCode, Json<Scan>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.scanner.request(actor.as_str()).await?),
    ))
}

/// `GET /v1/drift/scans/{id}` → the scan's progress.
#[utoipa::path(
    get, path = "/drift/scans/{id}", tag = "drift", operation_id = "getDriftScan",
    summary = "A schema drift scan's progress",
    description = "`finished_at` is set once every tenant was read and answered against the reference.",
    params(doc::ScanId),
    responses((status = 200, description = "The scan.", body = Scan), (status = 404, response = doc::E404))
)]
pub async fn get_scan(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Scan>, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "scan_not_found",
            format!("no schema drift scan {id}"),
        )
    };
    // Not a UUID: no such scan (as with waves), not a 400.
    let parsed: uuid::Uuid = id.parse().map_err(|_| not_found())?;
    s.scanner.get(parsed).await?.map(Json).ok_or_else(not_found)
}
