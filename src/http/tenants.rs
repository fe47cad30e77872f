//! `/v1/tenants`: registry CRUD, status changes and the event log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::app::AppState;
use crate::registry::{
    Event, ListFilter, NewTenant, Page, Tenant, TenantLimits, TenantPatch, TenantStatus,
};

/// `GET /v1/tenants?status=&label=k=v&q=&email=&limit=&cursor=&include_deleted=`.
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<ListFilter>,
) -> Result<Json<Page<Tenant>>, ApiError> {
    Ok(Json(s.registry.list(&f).await?))
}

/// `?wait=true`: answer when the provisioning job has finished.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    #[serde(default)]
    wait: bool,
}

/// `POST /v1/tenants[?wait=true]` → 201; with `provision: true` → 202 (tenant in
/// `provisioning`, the job runs in the background) or, waiting, 201 with the active tenant.
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    if !body.provision {
        return Ok((
            StatusCode::CREATED,
            Json(s.registry.create(&body, &actor).await?),
        ));
    }
    let tenant = s.provisioner.create(&body, &actor).await?;
    let job = s.provisioner.start(tenant.clone());
    if q.wait {
        return Ok((StatusCode::CREATED, Json(finished(job).await?)));
    }
    Ok((StatusCode::ACCEPTED, Json(tenant)))
}

/// `POST /v1/tenants/{slug}/provision[?wait=true]`: runs provisioning again for a tenant
/// still in `provisioning` (after a failure, or a restart mid-job); reuses what an earlier
/// attempt created. 202, or 200 when waiting.
pub async fn provision(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    if !s.provisioner.available() {
        return Err(crate::provision::ProvisionError::NotConfigured.into());
    }
    let tenant = s.registry.get(&slug).await?;
    if tenant.status != TenantStatus::Provisioning {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "illegal_transition",
            format!(
                "cannot provision tenant '{}': it is {}",
                tenant.slug, tenant.status
            ),
        ));
    }
    s.provisioner.server_for(&tenant)?;
    s.provisioner
        .check_request(&tenant.db_secret_ref, Some(tenant.id))
        .await?;
    let job = s.provisioner.start(tenant.clone());
    if q.wait {
        return Ok((StatusCode::OK, Json(finished(job).await?)));
    }
    Ok((StatusCode::ACCEPTED, Json(tenant)))
}

/// The job's result once it has one.
async fn finished(
    mut job: tokio::sync::watch::Receiver<Option<crate::provision::JobResult>>,
) -> Result<Tenant, ApiError> {
    let done = job
        .wait_for(Option::is_some)
        .await
        .map(|r| r.clone())
        .unwrap_or(None);
    match done {
        Some(Ok(t)) => Ok(t),
        Some(Err(e)) => Err(ApiError::from_provision(&e)),
        None => Err(crate::provision::ProvisionError::Cancelled.into()),
    }
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SuspendRequest)]
pub struct SuspendBody {
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
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

/// Query of `DELETE /v1/tenants/{slug}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also drop the database and role drover provisioned, and remove the secret.
    #[serde(default)]
    drop_database: bool,
}

/// `DELETE /v1/tenants/{slug}[?drop_database=true]`: soft delete; the database is kept
/// unless `drop_database=true` says otherwise.
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<Tenant>, ApiError> {
    if q.drop_database {
        return Ok(Json(s.provisioner.deprovision(&slug, &actor).await?));
    }
    Ok(Json(s.registry.delete(&slug, &actor).await?))
}

/// Query of `GET /v1/tenants/{slug}/events`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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

/// `GET /v1/tenants/{slug}/limits`: every field `null` when none are set.
pub async fn limits(
    State(s): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<TenantLimits>, ApiError> {
    Ok(Json(s.registry.limits(&slug).await?))
}

/// `PUT /v1/tenants/{slug}/limits`: replaces them; an `updated` event when they change.
pub async fn set_limits(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<TenantLimits>,
) -> Result<Json<TenantLimits>, ApiError> {
    Ok(Json(s.registry.set_limits(&slug, &body, &actor).await?))
}

/// Body of `GET /v1/servers`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ServerList {
    items: Vec<crate::provision::ServerReport>,
}

/// `GET /v1/servers`: the provisioning servers, their tenants, capacity and reachability.
pub async fn servers(State(s): State<AppState>) -> Result<Json<ServerList>, ApiError> {
    Ok(Json(ServerList {
        items: s.provisioner.report().await?,
    }))
}
