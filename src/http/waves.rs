//! `/v1/waves` and `/v1/fleet`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::app::AppState;
use crate::registry::FleetReport;
use crate::waves::analysis::CheckKind;
use crate::waves::store::TargetView;
use crate::waves::timeline::Timeline;
use crate::waves::{Action, WaveError, WaveRequest, WaveView};

fn wave_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse()
        .map_err(|_| ApiError::from(WaveError::NotFound(id.to_string())))
}

/// A prometheus check needs `prometheus_url` on this replica; say so now rather than
/// pausing the wave at its first evaluation.
pub(super) fn require_prometheus(s: &AppState, req: &WaveRequest) -> Result<(), ApiError> {
    let wants = req
        .analysis
        .iter()
        .flatten()
        .any(|c| c.kind == CheckKind::Prometheus);
    if wants && s.config.prometheus_url.is_none() {
        return Err(ApiError::from(WaveError::Invalid {
            field: "analysis",
            message: "prometheus checks need prometheus_url (DROVER_PROMETHEUS_URL) in drover's configuration".into(),
        }));
    }
    Ok(())
}

/// `POST /v1/waves` → 201: freezes the plan; replicas start on it within a tick.
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(req): ApiJson<WaveRequest>,
) -> Result<(StatusCode, Json<WaveView>), ApiError> {
    require_prometheus(&s, &req)?;
    // The named set, or the newest (a directory is reloaded, so files added since
    // start-up count and a broken file is reported now).
    let set = s
        .catalog
        .resolve(req.migration_set.as_deref())
        .await
        .map_err(WaveError::from)?;
    let view = s.waves.create(&req, &set, &actor).await?;
    s.executor.poke();
    Ok((StatusCode::CREATED, Json(view)))
}

/// Query of `GET /v1/waves`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    limit: Option<i64>,
}

/// `GET /v1/waves`: the most recent waves.
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<WaveView>>, ApiError> {
    Ok(Json(
        s.waves.list(q.limit.unwrap_or(20).clamp(1, 200)).await?,
    ))
}

/// `GET /v1/waves/{id}`.
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    Ok(Json(s.waves.view(wave_id(&id)?).await?))
}

/// `GET /v1/waves/{id}/events`: the wave's timeline, oldest first.
pub async fn events(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Timeline>, ApiError> {
    let items = s.waves.events(wave_id(&id)?).await?;
    Ok(Json(Timeline { items }))
}

/// Query of `GET /v1/waves/{id}/targets`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TargetsQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/waves/{id}/targets?state=failed`.
pub async fn targets(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TargetsQuery>,
) -> Result<Json<Vec<TargetView>>, ApiError> {
    if let Some(st) = &q.state {
        if !["pending", "running", "succeeded", "failed", "skipped"].contains(&st.as_str()) {
            return Err(ApiError::from(WaveError::Invalid {
                field: "state",
                message: "must be pending, running, succeeded, failed or skipped".into(),
            }));
        }
    }
    let limit = q.limit.unwrap_or(1000).clamp(1, 100_000);
    Ok(Json(
        s.waves
            .targets(wave_id(&id)?, q.state.as_deref(), limit)
            .await?,
    ))
}

async fn act(
    s: AppState,
    actor: crate::registry::Actor,
    id: String,
    action: Action,
) -> Result<Json<WaveView>, ApiError> {
    let view = s.waves.act(wave_id(&id)?, action, &actor).await?;
    s.executor.poke();
    Ok(Json(view))
}

/// `POST /v1/waves/{id}/pause`.
pub async fn pause(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Pause).await
}

/// `POST /v1/waves/{id}/resume`: a paused wave continues; a halted one retries its failed tenants.
pub async fn resume(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Resume).await
}

/// `POST /v1/waves/{id}/abort`.
pub async fn abort(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Abort).await
}

/// `POST /v1/waves/{id}/promote`: end the soak now and start the batches.
pub async fn promote(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Promote).await
}

/// `GET /v1/fleet`.
pub async fn fleet(State(s): State<AppState>) -> Result<Json<FleetReport>, ApiError> {
    let latest = s.catalog.newest_version().await.map_err(WaveError::from)?;
    Ok(Json(s.registry.fleet(latest).await?))
}
