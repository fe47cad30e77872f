//! `/v1/migration-sets`: migration sets published to the control DB (SPEC §21).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::app::AppState;
use crate::migrate::published::{self, PushRequest, SetView};

/// `POST /v1/migration-sets` → 201 with the new set, or 200 with the same set when these
/// files were pushed before (the label, if new, is added).
pub async fn push(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<(StatusCode, Json<SetView>), ApiError> {
    let (created, view) = published::push(&s.pool, &req, actor.as_str()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// Query of `GET /v1/migration-sets`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    limit: Option<i64>,
}

/// `GET /v1/migration-sets` → `{"items": [...]}`, newest first (the first is `latest`).
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let items = published::list(&s.pool, q.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(Json(json!({ "items": items })))
}

/// `GET /v1/migration-sets/{id}`: an id, a label or `latest`; with files and lint.
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SetView>, ApiError> {
    let found = if id == "latest" {
        published::newest_id(&s.pool).await?
    } else {
        published::find(&s.pool, &id).await?
    };
    let id = found.ok_or(published::PublishedError::NotFound(id))?;
    Ok(Json(published::view(&s.pool, &id).await?))
}

/// `DELETE /v1/migration-sets/{id}` → 204; 409 while an unfinished wave or a schedule uses it.
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    published::delete(&s.pool, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
