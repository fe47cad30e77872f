//! Liveness, readiness and the registry health report.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiError;
use crate::db;
use crate::registry::HealthReport;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "Alive.", body = Alive))
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the control DB answers and its schema is at this binary's head. The body
/// also lists the preflight checks (`drover doctor`'s, at most [`crate::preflight::CACHE_FOR`]
/// old); a failed one does not make the replica unready, since resolution still works
/// without, say, a provisioning server. So too the background tasks that failed lately
/// (`failing_tasks`, see [`crate::tasks`]): they restart on their own.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    summary = "Readiness: control DB reachable, its schema at this binary's head",
    responses((status = 200, description = "Ready.", body = Ready),
        (status = 503, description = "Not ready: the control database is unreachable or its schema is not at this binary's head.", body = NotReady))
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (status, Json(mut body)) = readiness(&state).await;
    let (provision, secrets) = (&state.config.provision, &state.config.secrets);
    let checks = state.preflight.get(provision, secrets, &state.pool).await;
    body["checks"] = json!(checks);
    body["failing_tasks"] = json!(state.tasks.failing());
    (status, Json(body))
}

async fn readiness(state: &AppState) -> (StatusCode, Json<Value>) {
    let head = db::control_head_version();
    let version = async {
        let client = state.pool.get().await.map_err(db::DbError::from)?;
        db::control_schema_version(&client).await
    }
    .await;
    match version {
        Ok(v) if v == head => (
            StatusCode::OK,
            Json(
                json!({ "status": "ready", "control_schema_version": v, "instance_id": state.config.instance_id,
                        "leader": state.leadership.is_leader() }),
            ),
        ),
        Ok(v) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "not_ready", "reason": format!("control schema at version {v}, this binary needs {head}") }),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "reason": "control database unreachable" })),
            )
        }
    }
}

/// `GET /v1/registry/health`.
#[utoipa::path(
    get, path = "/registry/health", tag = "tenants", operation_id = "registryHealth",
    summary = "Registry inconsistencies",
    description = "The same report as `drover check`: duplicate live slugs or database names, tenants stuck in \
        provisioning, schema_version disagreeing with the last migrated event, soft-delete incoherence.",
    responses((status = 200, description = "The report; `ok` is false when there are findings.", body = HealthReport))
)]
pub async fn registry_health(
    State(state): State<AppState>,
) -> Result<Json<HealthReport>, ApiError> {
    Ok(Json(
        state
            .registry
            .health(state.config.provisioning_stuck_after)
            .await?,
    ))
}

/// `GET /healthz`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Alive {
    #[schema(value_type = AliveStatus)]
    status: String,
}

/// `GET /readyz` when ready.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Ready {
    #[schema(value_type = ReadyStatus)]
    status: String,
    control_schema_version: i32,
    instance_id: String,
    /// Whether this replica holds the leader lease.
    leader: bool,
    /// The preflight checks of `drover doctor`, at most 30 s old; a failed one does not
    /// make the replica unready.
    checks: Vec<crate::preflight::Check>,
    /// Background tasks that panicked, failed or returned early and have not yet run a
    /// minute since their restart (empty when all is well); they do not make the replica
    /// unready.
    failing_tasks: Vec<crate::tasks::FailingTask>,
}

/// `GET /readyz` when not ready.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NotReady {
    #[schema(value_type = NotReadyStatus)]
    status: String,
    reason: String,
    checks: Vec<crate::preflight::Check>,
    failing_tasks: Vec<crate::tasks::FailingTask>,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AliveStatus {
    Ok,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ReadyStatus {
    Ready,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum NotReadyStatus {
    NotReady,
}
