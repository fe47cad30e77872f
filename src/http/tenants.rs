//! `/v1/tenants`: registry CRUD, status changes and the event log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::app::AppState;
use crate::registry::{Event, ListFilter, NewTenant, Page, Tenant, TenantPatch};

/// `GET /v1/tenants?status=&label=k=v&q=&limit=&cursor=&include_deleted=`.
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<ListFilter>,
) -> Result<Json<Page<Tenant>>, ApiError> {
    Ok(Json(s.registry.list(&f).await?))
}

/// `POST /v1/tenants` → 201.
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.registry.create(&body, &actor).await?),
    ))
}

/// `GET /v1/tenants/{slug}`.
pub async fn get(
    State(s): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.registry.get(&slug).await?))
}

/// `PATCH /v1/tenants/{slug}`.
pub async fn update(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    ApiJson(patch): ApiJson<TenantPatch>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.registry.update(&slug, &patch, &actor).await?))
}

/// Body of `POST /v1/tenants/{slug}/suspend`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    reason: String,
}

/// `POST /v1/tenants/{slug}/suspend`.
pub async fn suspend(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<SuspendBody>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.registry.suspend(&slug, &body.reason, &actor).await?))
}

/// `POST /v1/tenants/{slug}/resume`.
pub async fn resume(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.registry.resume(&slug, &actor).await?))
}

/// `DELETE /v1/tenants/{slug}`: soft delete.
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.registry.delete(&slug, &actor).await?))
}

/// Query of `GET /v1/tenants/{slug}/events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/tenants/{slug}/events?limit=&cursor=`: newest first.
pub async fn events(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<Page<Event>>, ApiError> {
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                "cursor: not a cursor from a previous page",
            )
        })?),
    };
    Ok(Json(
        s.registry
            .events(&slug, q.limit.unwrap_or(50), before)
            .await?,
    ))
}
