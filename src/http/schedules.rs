//! `/v1/schedules` and `/v1/cluster`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, Caller};
use crate::app::AppState;
use crate::schedule::store::{fire_in, parse_template, Fired};
use crate::schedule::{NewSchedule, ScheduleError, SchedulePatch, ScheduleView};

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Invalid { field, .. } => {
                let mut a = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    e.to_string(),
                );
                a.set_field(field);
                a
            }
            ScheduleError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "schedule_not_found", e.to_string())
            }
            ScheduleError::Duplicate(_) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_schedule", e.to_string())
            }
            ScheduleError::BrokenTemplate { .. } => {
                let mut a = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_template",
                    e.to_string(),
                );
                a.set_field("template");
                a
            }
            ScheduleError::Wave(w) => w.into(),
            ScheduleError::Db(db) => db.into(),
        }
    }
}

/// `GET /v1/schedules`.
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    Ok(Json(s.schedules.list().await?))
}

/// `POST /v1/schedules` → 201.
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
pub async fn get(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(s.schedules.get(&name).await?))
}

/// `PATCH /v1/schedules/{name}`.
pub async fn update(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<SchedulePatch>,
) -> Result<Json<ScheduleView>, ApiError> {
    if let Some(t) = &patch.template {
        super::waves::require_prometheus(&s, t)?;
    }
    Ok(Json(s.schedules.update(&name, &patch).await?))
}

/// `DELETE /v1/schedules/{name}` → 204.
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.schedules.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/schedules/{name}/trigger`: fire now, through the same exactly-once path as a tick.
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
pub async fn cluster(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (leader, replicas) =
        crate::schedule::leader::cluster(&s.pool, Duration::from_secs(60)).await?;
    Ok(Json(json!({
        "leader": leader,
        "this_replica": { "instance_id": s.config.instance_id, "leader": s.leadership.is_leader() },
        "replicas": replicas,
    })))
}
