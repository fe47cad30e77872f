//! `/v1/tenants`: registry CRUD, status changes and the event log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::openapi as doc;
use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::provision::CreatePlan;
use crate::registry::{
    Event, ListFilter, NewTenant, Page, Tenant, TenantLimits, TenantPatch, TenantStatus,
};
use crate::state::AppState;

/// `GET /v1/tenants?status=&label=k=v&q=&email=&limit=&cursor=&include_deleted=`.
#[utoipa::path(
    get, path = "/tenants", tag = "tenants", operation_id = "listTenants",
    summary = "List tenants, keyset-paginated by slug",
    description = "Filters combine with AND. Soft-deleted tenants are left out unless `include_deleted=true`.",
    params(ListFilter),
    responses((status = 200, description = "A page of tenants.", body = Page<Tenant>), (status = 422, response = doc::E422))
)]
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
    /// With `provision: true`: answer when the job has finished instead of at once.
    #[serde(default)]
    #[param(default = false)]
    wait: bool,
}

/// The query of `POST /v1/tenants`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// With `provision: true`: answer when the job has finished instead of at once.
    #[serde(default)]
    #[param(default = false)]
    wait: bool,
    /// Compute the names, the placement, the checks and the steps, and write nothing.
    #[serde(default)]
    #[param(default = false)]
    dry_run: bool,
}

/// `POST /v1/tenants[?wait=true]` → 201; with `provision: true` → 202 (tenant in
/// `provisioning`, the job runs in the background) or, waiting, 201 with the active tenant.
#[utoipa::path(
    post, path = "/tenants", tag = "tenants", operation_id = "createTenant",
    summary = "Register a tenant",
    description = "Writes a `created` event. Slugs and database names are unique among live tenants regardless of case; \
        the slug is stored in lower case. `provision: true` also creates the login role (password generated and \
        written behind `db_secret_ref`, which must be `file:` or `vault:`) and the database on a provisioning \
        server (501 without any): the one named by `server`, else the least-loaded server whose labels agree with \
        the tenant's and that has room (422 `no_provisioning_server` when none does), then migrates it to the \
        latest tenant migration. Only `slug` is needed then. The answer is 202 with the tenant in `provisioning` \
        while that runs in the background, or with `wait=true` 201 with the active tenant (502 \
        `provisioning_failed`, with `step`, when a step fails; the tenant stays `provisioning` with its \
        `provisioning_error`; `POST /v1/tenants/{slug}/provision` retries). With `dry_run=true` nothing is written \
        anywhere (no row, no event, no secret, no role or database): the answer is 200 with the tenant as it would \
        be registered, its server, the checks made and the steps the request would take, or the error the request \
        would give.",
    params(CreateQuery, doc::ActorHeader),
    request_body(content = NewTenant, example = json!({
        "slug": "acme", "display_name": "Acme Corp", "db_name": "tenant_acme", "db_host": "db1.internal",
        "db_port": 5432, "db_user": "tenant_acme", "db_secret_ref": "file:tenants/acme",
        "db_options": {"sslmode": "require"}, "labels": {"plan": "pro", "region": "eu"},
        "billing_plan": "pro", "contact_email": "ops@acme.example", "status": "active"
    })),
    responses(
        (status = 201, description = "The tenant as stored (with `provision` and `wait=true`: active, migrated).", body = Tenant,
            links(("GetTenant" = (operation_id = "getTenant", parameters(("slug" = "$response.body#/slug")))), ("PutTenant" = (operation_id = "putTenant", parameters(("slug" = "$response.body#/slug")))), ("UpdateTenant" = (operation_id = "updateTenant", parameters(("slug" = "$response.body#/slug")))), ("DeleteTenant" = (operation_id = "deleteTenant", parameters(("slug" = "$response.body#/slug")))), ("SuspendTenant" = (operation_id = "suspendTenant", parameters(("slug" = "$response.body#/slug")))), ("ResumeTenant" = (operation_id = "resumeTenant", parameters(("slug" = "$response.body#/slug")))), ("ListTenantEvents" = (operation_id = "listTenantEvents", parameters(("slug" = "$response.body#/slug")))), ("Resolve" = (operation_id = "resolve", parameters(("slug" = "$response.body#/slug")))))),
        (status = 202, description = "`provision: true`: the tenant, `provisioning`; the job runs in the background.", body = Tenant),
        (status = 200, description = "`dry_run=true`: what the request would do; nothing was written.", body = CreatePlan),
        (status = 409, response = doc::E409), (status = 501, response = doc::E501), (status = 502, response = doc::E502))
)]
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(q): ApiQuery<CreateQuery>,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<Response, ApiError> {
    if q.dry_run {
        let plan = if body.provision {
            s.provisioner.plan(&body).await?
        } else {
            crate::provision::register_plan(&s.registry, &body).await?
        };
        return Ok(Json(plan).into_response());
    }
    let (status, tenant) = create_tenant(&s, &actor, q.wait, body).await?;
    Ok((status, Json(tenant)).into_response())
}

/// The create itself (the request without `dry_run`).
async fn create_tenant(
    s: &AppState,
    actor: &crate::registry::Actor,
    wait: bool,
    body: NewTenant,
) -> Result<(StatusCode, Tenant), ApiError> {
    if !body.provision {
        return Ok((StatusCode::CREATED, s.registry.create(&body, actor).await?));
    }
    let tenant = s.provisioner.create(&body, actor).await?;
    let job = s.provisioner.start(tenant.clone());
    if wait {
        return Ok((StatusCode::CREATED, finished(job).await?));
    }
    Ok((StatusCode::ACCEPTED, tenant))
}

/// `POST /v1/tenants/{slug}/provision[?wait=true]`: runs provisioning again for a tenant
/// still in `provisioning` (after a failure, or a restart mid-job); reuses what an earlier
/// attempt created. 202, or 200 when waiting.
#[utoipa::path(
    post, path = "/tenants/{slug}/provision", tag = "tenants", operation_id = "provisionTenant",
    summary = "Retry provisioning",
    description = "For a tenant still in `provisioning` (a step failed, or the daemon stopped mid-job): runs every \
        step again, reusing the role, database and password an earlier attempt created, refusing any it did not \
        create. 409 when the tenant is not `provisioning` or another runner is on it right now.",
    params(doc::SlugPath, WaitQuery, doc::ActorHeader),
    responses(
        (status = 200, description = "`wait=true`: the tenant, active and migrated.", body = Tenant),
        (status = 202, description = "The tenant, `provisioning`; the job runs in the background.", body = Tenant),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409), (status = 422, response = doc::E422),
        (status = 501, response = doc::E501), (status = 502, response = doc::E502))
)]
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
#[utoipa::path(
    get, path = "/tenants/{slug}", tag = "tenants", operation_id = "getTenant",
    summary = "One tenant", description = "Soft-deleted tenants are not found.",
    params(doc::SlugPath),
    responses((status = 200, description = "The tenant.", body = Tenant), (status = 404, response = doc::E404))
)]
pub async fn get(
    State(s): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.registry.get(&slug).await?))
}

/// `PATCH /v1/tenants/{slug}`.
#[utoipa::path(
    patch, path = "/tenants/{slug}", tag = "tenants", operation_id = "updateTenant",
    summary = "Change the given fields",
    description = "Absent fields (and `null` for fields that cannot be cleared) stay as they are; `null` clears \
        `billing_plan`, `contact_email` and `app_version`. `status` may only be set to `active`, from \
        `provisioning`. Writes an `updated` event listing the changed fields.",
    params(doc::SlugPath, doc::ActorHeader), request_body = TenantPatch,
    responses((status = 200, description = "The tenant after the change.", body = Tenant),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409))
)]
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
#[utoipa::path(
    post, path = "/tenants/{slug}/suspend", tag = "tenants", operation_id = "suspendTenant",
    summary = "active → suspended", description = "Resolution answers 423 for a suspended tenant; waves still migrate it.",
    params(doc::SlugPath, doc::ActorHeader), request_body = SuspendBody,
    responses((status = 200, description = "The suspended tenant.", body = Tenant),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409))
)]
pub async fn suspend(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<SuspendBody>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.registry.suspend(&slug, &body.reason, &actor).await?))
}

/// Body of `POST /v1/tenants/{slug}/rename`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RenameRequest)]
pub struct RenameBody {
    /// The new slug.
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    slug: String,
}

/// `POST /v1/tenants/{slug}/rename`.
#[utoipa::path(
    post, path = "/tenants/{slug}/rename", tag = "tenants", operation_id = "renameTenant",
    summary = "Change a tenant's slug",
    description = "The old slug becomes an alias for `rename_alias_ttl` (default 7 days): resolving it answers for \
        the tenant, with the new slug, and no new tenant may take it (422 `slug_reserved`). Writes a `renamed` event \
        `{from, to, alias_expires_at}`. The new slug must be free (409 `duplicate_slug`) and not reserved (422 \
        `slug_reserved`; the tenant's own aliases excepted). Database names, roles and the secret reference stay.",
    params(doc::SlugPath, doc::ActorHeader), request_body = RenameBody,
    responses((status = 200, description = "The renamed tenant.", body = Tenant),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409))
)]
pub async fn rename(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<RenameBody>,
) -> Result<Json<Tenant>, ApiError> {
    let renamed = s.registry.rename(&slug, &body.slug, &actor).await?;
    // The change notification reaches this replica's cache too, but later: the caller
    // resolving the old slug right after the rename must get the alias, not the entry
    // cached before it.
    s.resolver.forget_tenant(&slug);
    s.resolver.forget_tenant(&body.slug);
    Ok(Json(renamed))
}

/// `POST /v1/tenants/{slug}/resume`.
#[utoipa::path(
    post, path = "/tenants/{slug}/resume", tag = "tenants", operation_id = "resumeTenant",
    summary = "suspended → active",
    params(doc::SlugPath, doc::ActorHeader),
    responses((status = 200, description = "The active tenant.", body = Tenant),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409), (status = 422, response = doc::E422))
)]
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
    #[param(default = false)]
    drop_database: bool,
}

/// `DELETE /v1/tenants/{slug}[?drop_database=true]`: soft delete; the database is kept
/// unless `drop_database=true` says otherwise.
#[utoipa::path(
    delete, path = "/tenants/{slug}", tag = "tenants", operation_id = "deleteTenant",
    summary = "Soft-delete a tenant",
    description = "The database is kept unless `drop_database=true`; the slug and db_name become reusable. Writes \
        `deleting` and `deleted` events. With `drop_database=true` (needs a provisioning server) drover terminates \
        the database's sessions, drops the database and the role it provisioned and removes the secret; a \
        database or role drover did not create for this tenant is refused (409 `name_taken`) before anything \
        changes, and a failed step leaves the tenant `deleting` (502; send the request again).",
    params(doc::SlugPath, DeleteQuery, doc::ActorHeader),
    responses((status = 200, description = "The tenant, now deleted.", body = Tenant),
        (status = 404, response = doc::E404), (status = 409, response = doc::E409), (status = 422, response = doc::E422),
        (status = 501, response = doc::E501), (status = 502, response = doc::E502))
)]
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
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page (an event id: older events follow).
    #[param(pattern = r"^[+-]?[0-9]+$")]
    cursor: Option<String>,
}

/// `GET /v1/tenants/{slug}/events?limit=&cursor=`: newest first.
#[utoipa::path(
    get, path = "/tenants/{slug}/events", tag = "tenants", operation_id = "listTenantEvents",
    summary = "The tenant's events, newest first",
    params(doc::SlugPath, EventsQuery),
    responses((status = 200, description = "A page of events.", body = Page<Event>),
        (status = 404, response = doc::E404), (status = 422, response = doc::E422))
)]
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
#[utoipa::path(
    get, path = "/tenants/{slug}/limits", tag = "tenants", operation_id = "getTenantLimits",
    summary = "The tenant's limits", description = "Every field is null when none are set.",
    params(doc::SlugPath),
    responses((status = 200, description = "The limits.", body = TenantLimits), (status = 404, response = doc::E404))
)]
pub async fn limits(
    State(s): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<TenantLimits>, ApiError> {
    Ok(Json(s.registry.limits(&slug).await?))
}

/// `PUT /v1/tenants/{slug}/limits`: replaces them; a `limits_updated` event when they change.
#[utoipa::path(
    put, path = "/tenants/{slug}/limits", tag = "tenants", operation_id = "putTenantLimits",
    summary = "Set the tenant's limits",
    description = "Replaces all of them (absent fields become null; all null removes them). Sizes and counts are \
        positive (`max_attachments_gb` may be 0), `notes` at most 1 KB (422 otherwise). A change writes a \
        `tenant.limits_updated` event with `changed.limits.from` and `.to`.",
    params(doc::SlugPath, doc::ActorHeader), request_body = TenantLimits,
    responses((status = 200, description = "The limits as stored.", body = TenantLimits), (status = 404, response = doc::E404))
)]
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
#[utoipa::path(
    get, path = "/servers", tag = "tenants", operation_id = "listServers",
    summary = "Provisioning servers",
    description = "Each configured provisioning server in configuration order: live tenants placed there, \
        `max_tenants`, labels, and whether its admin connection answered when last tried (a background probe every \
        5 s with a 2 s timeout, or a provisioning job), with `checked_at`. The request itself connects to no server. \
        Never the admin URL.",
    responses((status = 200, description = "The servers.", body = ServerList))
)]
pub async fn servers(State(s): State<AppState>) -> Result<Json<ServerList>, ApiError> {
    Ok(Json(ServerList {
        items: s.provisioner.report().await?,
    }))
}
