//! `/v1/waves` and `/v1/fleet`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Reader;
use super::openapi as doc;
use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::registry::FleetReport;
use crate::state::AppState;
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
#[utoipa::path(
    post, path = "/waves", tag = "waves", operation_id = "createWave",
    summary = "Start a wave",
    description = "Freezes the plan: the selected live active and suspended tenants, which are canaries, the batch \
        of every other. Replicas start on it within a tick. 409 when a selected tenant is in an unfinished wave. \
        With `dry_run` every pending migration runs in a transaction that is always rolled back and the wave \
        reports who would fail and why; `exclude_failed_of` skips the tenants a completed dry run found failing; \
        `analysis` gates the batches on checks evaluated during the soak. The files the wave would run are linted \
        first: an error finding whose rule is not in `acknowledge` answers 422 `lint_failed` with the `findings`.",
    params(doc::ActorHeader),
    request_body(content = WaveRequest, example = json!({
        "migration_set": "latest", "selector": {"labels": {"region": "eu"}}, "canary": {"percent": 10},
        "batch_size": 50, "max_concurrency": 10, "max_failures": 0
    })),
    responses((status = 201, description = "The new wave.", body = WaveView,
            links(("GetWave" = (operation_id = "getWave", parameters(("id" = "$response.body#/id")))), ("ListWaveTargets" = (operation_id = "listWaveTargets", parameters(("id" = "$response.body#/id")))), ("ListWaveEvents" = (operation_id = "listWaveEvents", parameters(("id" = "$response.body#/id")))), ("PauseWave" = (operation_id = "pauseWave", parameters(("id" = "$response.body#/id")))), ("ResumeWave" = (operation_id = "resumeWave", parameters(("id" = "$response.body#/id")))), ("AbortWave" = (operation_id = "abortWave", parameters(("id" = "$response.body#/id")))), ("PromoteWave" = (operation_id = "promoteWave", parameters(("id" = "$response.body#/id")))))), (status = 409, response = doc::E409))
)]
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
    /// How many waves (values outside 1-200 are clamped).
    #[param(default = 20)]
    limit: Option<i64>,
}

/// `GET /v1/waves`: the most recent waves.
#[utoipa::path(
    get, path = "/waves", tag = "waves", operation_id = "listWaves",
    summary = "The most recent waves, newest first",
    params(ListQuery),
    responses((status = 200, description = "Waves.", body = Vec<WaveView>), (status = 422, response = doc::E422))
)]
pub async fn list(
    State(s): State<AppState>,
    Reader(audience): Reader,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<WaveView>>, ApiError> {
    Ok(Json(
        s.waves
            .list(q.limit.unwrap_or(20).clamp(1, 200), audience)
            .await?,
    ))
}

/// `GET /v1/waves/{id}`.
#[utoipa::path(
    get, path = "/waves/{id}", tag = "waves", operation_id = "getWave",
    summary = "State, counts, per-phase progress, failures, ETA",
    params(doc::WaveId),
    responses((status = 200, description = "The wave.", body = WaveView), (status = 404, response = doc::E404))
)]
pub async fn get(
    State(s): State<AppState>,
    Reader(audience): Reader,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    Ok(Json(s.waves.view(wave_id(&id)?, audience).await?))
}

/// `GET /v1/waves/{id}/events`: the wave's timeline, oldest first.
#[utoipa::path(
    get, path = "/waves/{id}/events", tag = "waves", operation_id = "listWaveEvents",
    summary = "The wave's timeline, oldest first",
    description = "One event per state change, written in the transaction that made it. The actor is `drover` for the engine.",
    params(doc::WaveId),
    responses((status = 200, description = "The timeline.", body = Timeline), (status = 404, response = doc::E404))
)]
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
    /// Only targets in this state.
    #[param(value_type = Option<crate::waves::store::TargetState>)]
    state: Option<String>,
    /// How many targets (values outside 1-100000 are clamped).
    #[param(default = 1000)]
    limit: Option<i64>,
}

/// `GET /v1/waves/{id}/targets?state=failed`.
#[utoipa::path(
    get, path = "/waves/{id}/targets", tag = "waves", operation_id = "listWaveTargets",
    summary = "The tenants of a wave",
    params(doc::WaveId, TargetsQuery),
    responses((status = 200, description = "Targets by phase and slug.", body = Vec<TargetView>),
        (status = 404, response = doc::E404), (status = 422, response = doc::E422))
)]
pub async fn targets(
    State(s): State<AppState>,
    Reader(audience): Reader,
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
            .targets(wave_id(&id)?, q.state.as_deref(), limit, audience)
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
#[utoipa::path(
    post, path = "/waves/{id}/pause", tag = "waves", operation_id = "pauseWave",
    summary = "Pause a moving wave", description = "409 when the wave's state does not allow it.",
    params(doc::WaveId, doc::ActorHeader),
    responses((status = 200, description = "The wave after the action.", body = WaveView),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409), (status = 422, response = doc::E422))
)]
pub async fn pause(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Pause).await
}

/// `POST /v1/waves/{id}/resume`: a paused wave continues; a halted one retries its failed tenants.
#[utoipa::path(
    post, path = "/waves/{id}/resume", tag = "waves", operation_id = "resumeWave",
    summary = "Resume a paused wave (one paused while soaking soaks again); a halted one retries its failed tenants", description = "409 when the wave's state does not allow it.",
    params(doc::WaveId, doc::ActorHeader),
    responses((status = 200, description = "The wave after the action.", body = WaveView),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409), (status = 422, response = doc::E422))
)]
pub async fn resume(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Resume).await
}

/// `POST /v1/waves/{id}/abort`.
#[utoipa::path(
    post, path = "/waves/{id}/abort", tag = "waves", operation_id = "abortWave",
    summary = "Abort an unfinished wave", description = "409 when the wave's state does not allow it.",
    params(doc::WaveId, doc::ActorHeader),
    responses((status = 200, description = "The wave after the action.", body = WaveView),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409), (status = 422, response = doc::E422))
)]
pub async fn abort(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Abort).await
}

/// `POST /v1/waves/{id}/promote`: end the soak now and start the batches.
#[utoipa::path(
    post, path = "/waves/{id}/promote", tag = "waves", operation_id = "promoteWave",
    summary = "End a soaking (or soak-paused) wave's soak now and start its batches; recorded with the actor", description = "409 when the wave's state does not allow it.",
    params(doc::WaveId, doc::ActorHeader),
    responses((status = 200, description = "The wave after the action.", body = WaveView),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409), (status = 422, response = doc::E422))
)]
pub async fn promote(
    State(s): State<AppState>,
    Caller(a): Caller,
    Path(id): Path<String>,
) -> Result<Json<WaveView>, ApiError> {
    act(s, a, id, Action::Promote).await
}

/// `GET /v1/fleet`.
#[utoipa::path(
    get, path = "/fleet", tag = "waves", operation_id = "fleet",
    summary = "Tenants per schema version, behind, drifted, needing attention",
    responses((status = 200, description = "The fleet report.", body = FleetReport))
)]
pub async fn fleet(State(s): State<AppState>) -> Result<Json<FleetReport>, ApiError> {
    let latest = s.catalog.newest_version().await.map_err(WaveError::from)?;
    Ok(Json(s.registry.fleet(latest).await?))
}
