//! `/v1/migration-sets`: migration sets published to the control DB (see
//! docs/design.md#migration-sets).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::openapi as doc;
use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::sets::published::{self, PushRequest, SetUse, SetUsers, SetView};
use crate::state::AppState;

/// `POST /v1/migration-sets` → 201 with the new set, or 200 with the same set when these
/// files were pushed before (the label, if new, is added).
#[utoipa::path(
    post, path = "/migration-sets", tag = "migration-sets", operation_id = "pushMigrationSet",
    summary = "Publish a migration set",
    description = "Validates every file name as a migrations directory does (`V{n}__{name}.sql`) and refuses a \
        version used twice (422 `invalid_migrations`, with `file`), a file over 4 MiB (422 `file_too_large`) and a \
        body over `max_set_bytes` (413). The id is the SHA-256 of the ordered file names and refinery checksums: \
        201 when the set is new, 200 with the same id when these files were pushed before (the label is added). \
        A label names one set for good: 409 `label_taken` when it names other files. Lint findings are attached, \
        never refused here. Needs the publisher or admin role.",
    params(doc::ActorHeader), request_body = PushRequest,
    responses((status = 201, description = "The new set.", body = SetView,
            links(("GetMigrationSet" = (operation_id = "getMigrationSet", parameters(("id" = "$response.body#/id")))), ("DeleteMigrationSet" = (operation_id = "deleteMigrationSet", parameters(("id" = "$response.body#/id")))))),
        (status = 200, description = "These files were pushed before: the existing set.", body = SetView),
        (status = 409, response = doc::E409))
)]
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
    /// How many sets (values outside 1-1000 are clamped).
    #[param(default = 50)]
    limit: Option<i64>,
}

/// `GET /v1/migration-sets` → `{"items": [...]}`, newest first (the first is `latest`).
#[utoipa::path(
    get, path = "/migration-sets", tag = "migration-sets", operation_id = "listMigrationSets",
    summary = "Pushed migration sets, newest first",
    description = "The first item is what `latest` means to waves, schedules, dry runs, provisioning and the fleet \
        report. Readable by viewers and by publisher tokens.",
    params(ListQuery),
    responses((status = 200, description = "The sets.", body = MigrationSetList), (status = 422, response = doc::E422))
)]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<MigrationSetList>, ApiError> {
    let items = published::list(&s.pool, q.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(Json(MigrationSetList { items }))
}

/// Body of `GET /v1/migration-sets`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MigrationSetList {
    items: Vec<published::SetSummary>,
}

/// `GET /v1/migration-sets/{id}`: an id, a label or `latest`; with files and lint.
#[utoipa::path(
    get, path = "/migration-sets/{id}", tag = "migration-sets", operation_id = "getMigrationSet",
    summary = "One set with its files and lint report",
    params(doc::SetId),
    responses((status = 200, description = "The set.", body = SetView), (status = 404, response = doc::E404))
)]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SetView>, ApiError> {
    let found = if id == "latest" {
        published::newest_id(&s.pool).await?
    } else {
        published::find(&s.pool, &id).await?
    };
    let id = found.ok_or(crate::sets::PublishedError::NotFound(id))?;
    Ok(Json(published::view(&s.pool, &id).await?))
}

/// `DELETE /v1/migration-sets/{id}` → 204; 409 while an unfinished wave or a schedule uses it.
#[utoipa::path(
    delete, path = "/migration-sets/{id}", tag = "migration-sets", operation_id = "deleteMigrationSet",
    summary = "Delete a set",
    description = "Only by id, and only when no unfinished wave runs it and no schedule names it: else 409 \
        `set_in_use`, with `used_by: {waves, schedules}`.",
    params(doc::SetId, doc::ActorHeader),
    responses((status = 204, description = "Deleted."), (status = 404, response = doc::E404), (status = 409, response = doc::E409),
        (status = 422, response = doc::E422))
)]
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    published::delete(&s.pool, &id, &FleetUsers, actor.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who uses a set: the unfinished waves running it and the schedules naming it, each read
/// by the module owning the table, in the delete's transaction.
struct FleetUsers;

impl SetUsers for FleetUsers {
    async fn users(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        id: &str,
        names: &[String],
    ) -> Result<SetUse, tokio_postgres::Error> {
        Ok(SetUse {
            waves: crate::waves::overview::unfinished_on_pushed_set(tx, id).await?,
            schedules: crate::schedule::store::naming_sets(tx, names).await?,
        })
    }
}
