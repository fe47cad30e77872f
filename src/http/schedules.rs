//! `/v1/schedules` and `/v1/cluster`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::openapi as doc;
use super::{ApiError, ApiJson, Caller};
use crate::schedule::leader::{LeaderView, ReplicaView};
use crate::schedule::store::{fire_in, parse_template, Fired};
use crate::schedule::{NewSchedule, SchedulePatch, ScheduleView};
use crate::state::AppState;

/// `GET /v1/schedules`.
#[utoipa::path(
    get, path = "/schedules", tag = "schedules", operation_id = "listSchedules",
    summary = "All schedules by name",
    responses((status = 200, description = "Schedules.", body = Vec<ScheduleView>))
)]
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    Ok(Json(s.schedules.list().await?))
}

/// `POST /v1/schedules` → 201.
#[utoipa::path(
    post, path = "/schedules", tag = "schedules", operation_id = "createSchedule",
    summary = "Create a scheduled wave",
    description = "422 for an invalid cron expression or timezone; 409 when the name is taken.",
    params(doc::ActorHeader),
    request_body(content = NewSchedule, example = json!({
        "name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
        "template": {"selector": {"labels": {"region": "eu"}}, "canary": {"percent": 10}}, "on_overlap": "skip"
    })),
    responses((status = 201, description = "The schedule with its next five fire times.", body = ScheduleView,
            links(("GetSchedule" = (operation_id = "getSchedule", parameters(("name" = "$response.body#/name")))), ("UpdateSchedule" = (operation_id = "updateSchedule", parameters(("name" = "$response.body#/name")))), ("DeleteSchedule" = (operation_id = "deleteSchedule", parameters(("name" = "$response.body#/name")))), ("TriggerSchedule" = (operation_id = "triggerSchedule", parameters(("name" = "$response.body#/name")))))),
        (status = 409, response = doc::E409))
)]
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<NewSchedule>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    if let Some(t) = &body.template {
        super::waves::require_prometheus(&s, t)?;
    }
    Ok((
        StatusCode::CREATED,
        Json(s.schedules.create(&body, &actor).await?),
    ))
}

/// `GET /v1/schedules/{name}`: includes the next five fire times in its timezone.
#[utoipa::path(
    get, path = "/schedules/{name}", tag = "schedules", operation_id = "getSchedule",
    summary = "One schedule with its next five fire times",
    params(doc::ScheduleName),
    responses((status = 200, description = "The schedule.", body = ScheduleView), (status = 404, response = doc::E404))
)]
pub async fn get(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(s.schedules.get(&name).await?))
}

/// `PATCH /v1/schedules/{name}`.
#[utoipa::path(
    patch, path = "/schedules/{name}", tag = "schedules", operation_id = "updateSchedule",
    summary = "Change a schedule",
    description = "Absent (or `null`) fields stay as they are; a new expression or timezone recomputes the next fire time.",
    params(doc::ScheduleName, doc::ActorHeader), request_body = SchedulePatch,
    responses((status = 200, description = "The schedule after the change.", body = ScheduleView), (status = 404, response = doc::E404))
)]
pub async fn update(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<SchedulePatch>,
) -> Result<Json<ScheduleView>, ApiError> {
    if let Some(t) = &patch.template {
        super::waves::require_prometheus(&s, t)?;
    }
    Ok(Json(s.schedules.update(&name, &patch, &actor).await?))
}

/// `DELETE /v1/schedules/{name}` → 204.
#[utoipa::path(
    delete, path = "/schedules/{name}", tag = "schedules", operation_id = "deleteSchedule",
    summary = "Delete a schedule (its waves stay)",
    params(doc::ScheduleName, doc::ActorHeader),
    responses((status = 204, description = "Deleted."), (status = 404, response = doc::E404), (status = 422, response = doc::E422))
)]
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.schedules.delete(&name, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/schedules/{name}/trigger`: fire now, through the same exactly-once path as a tick.
#[utoipa::path(
    post, path = "/schedules/{name}/trigger", tag = "schedules", operation_id = "triggerSchedule",
    summary = "Fire now",
    description = "Goes through the same exactly-once path as a tick. 201 with the wave's id when a wave was created; \
        422 with the same body (outcome `failed`, the reason in `detail`) when it could not be, e.g. no tenant \
        matches or a selected tenant is in an unfinished wave; 422 with an error body when the migration files \
        are broken or the stored template no longer parses (`invalid_template`: replace it with `PATCH`).",
    params(doc::ScheduleName, doc::ActorHeader),
    responses((status = 201, description = "A wave was created.", body = Fired,
            links(("GetWave" = (operation_id = "getWave", parameters(("id" = "$response.body#/wave_id")))), ("ListWaveTargets" = (operation_id = "listWaveTargets", parameters(("id" = "$response.body#/wave_id")))))),
        (status = 422, description = "The tick was handled but no wave could be created (`Fired` with outcome \
            `failed`), or the request is invalid (an error body).", body = FiredOrError),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409))
)]
pub async fn trigger(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Fired>), ApiError> {
    let view = s.schedules.get(&name).await?;
    // A template an upgrade made unreadable is refused, never run as an empty request
    // (which would be a wave over every tenant).
    let template = parse_template(&name, view.template)?;
    let set = s
        .catalog
        .resolve(template.migration_set.as_deref())
        .await
        .map_err(crate::waves::WaveError::from)?;
    let mut client = s.pool.get().await.map_err(crate::db::DbError::from)?;
    let mut tx = client
        .transaction()
        .await
        .map_err(crate::db::DbError::from)?;
    let tick = chrono::Utc::now();
    let fired = fire_in(&mut tx, &name, tick, &template, &set, actor.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "already_fired",
                "this tick was already handled",
            )
        })?;
    let payload =
        serde_json::json!({ "schedule": name, "outcome": fired.outcome, "wave_id": fired.wave_id });
    crate::schedule::store::record(&*tx, "schedule.triggered", &actor, payload).await?;
    tx.commit().await.map_err(crate::db::DbError::from)?;
    s.executor.poke();
    let status = if fired.wave_id.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(fired)))
}

/// `GET /v1/cluster`: the leader and the replicas heard from in the last minute.
#[utoipa::path(
    get, path = "/cluster", tag = "schedules", operation_id = "cluster",
    summary = "The leader and the live replicas", description = "Replicas heard from in the last minute.",
    responses((status = 200, description = "The cluster.", body = Cluster))
)]
pub async fn cluster(State(s): State<AppState>) -> Result<Json<Cluster>, ApiError> {
    let (leader, replicas) =
        crate::schedule::leader::cluster(&s.pool, Duration::from_secs(60)).await?;
    Ok(Json(Cluster {
        leader,
        this_replica: ThisReplica {
            instance_id: s.config.instance_id.clone(),
            leader: s.leadership.is_leader(),
        },
        replicas,
    }))
}

/// Body of `GET /v1/cluster`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Cluster {
    leader: LeaderView,
    this_replica: ThisReplica,
    replicas: Vec<ReplicaView>,
}

/// The replica that answered.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ThisReplica {
    instance_id: String,
    leader: bool,
}

/// The two bodies of 422 from `POST /v1/schedules/{name}/trigger` (for the document).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FiredOrError {
    Fired(Fired),
    Error(doc::ErrorBody),
}
