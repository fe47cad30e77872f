//! `GET /v1/resolve/{slug}`: where is this tenant's database? Every answer carries
//! `Cache-Control: no-store` (a DSN must not sit in a proxy cache); the request log shows
//! the slug and the status only. `?fresh=true` asks for the password past the secret cache
//! (rate-limited per tenant by the resolver).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::openapi as doc;
use super::{ApiError, ApiQuery};
use crate::resolve::Resolution;
use crate::state::AppState;

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Query of `GET /v1/resolve/{slug}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResolveQuery {
    /// Fetch the password from the secret backend now, past drover's cache: for an
    /// application whose login was just refused (the password was rotated). At most once
    /// per tenant per `resolve_fresh_min_interval` (10 s by default); inside that interval
    /// the answer is the cached value, which is what the last fresh fetch found — never a
    /// 429, so a retrying login always gets an answer at once.
    #[param(default = false)]
    fresh: Option<bool>,
}

/// The handler.
#[utoipa::path(
    get, path = "/resolve/{slug}", tag = "resolve", operation_id = "resolve",
    summary = "Where is this tenant's database?",
    description = "A ready libpq URI with the password from the tenant's secret reference. Every answer carries \
        `Cache-Control: no-store`. 200 for an active tenant; 423 suspended (with `suspended_reason`); 409 \
        provisioning or deleting; 404 unknown or deleted; 503 with `Retry-After` when the secret backend (or the \
        control DB) fails and nothing is cached; 500 `secret_ref_refused` when the stored secret reference is \
        outside the allowed scope (it is never read). With `?fresh=true` the password is fetched from the \
        secret backend past the cache (see the parameter); if the backend fails then, the cached answer is given as \
        without it.",
    params(doc::SlugPath, ResolveQuery),
    security(("resolverToken" = []), ("adminToken" = [])),
    responses(
        (status = 200, description = "The tenant is active.", body = crate::resolve::Answer, headers(("Cache-Control" = String, description = "Always `no-store`: a DSN must not sit in a proxy cache."))),
        (status = 404, description = "No such tenant, or it is deleted (`tenant_not_found`).", body = doc::ErrorBody, headers(("Cache-Control" = String, description = "Always `no-store`: a DSN must not sit in a proxy cache."))),
        (status = 409, description = "The tenant is provisioning or deleting (`tenant_not_ready`).", body = doc::ErrorBody, headers(("Cache-Control" = String, description = "Always `no-store`: a DSN must not sit in a proxy cache."))),
        (status = 423, description = "The tenant is suspended (`tenant_suspended`); `suspended_reason` says why.", body = doc::ErrorBody, headers(("Cache-Control" = String, description = "Always `no-store`: a DSN must not sit in a proxy cache."))),
        (status = 422, description = "The query string is not valid (`invalid_query`): `fresh` is `true` or `false`.", body = doc::ErrorBody, headers(("Cache-Control" = String, description = "Always `no-store`: a DSN must not sit in a proxy cache."))),
        (status = 503, description = "The secret backend (`secret_unavailable`) or the control database failed and nothing usable is cached.",
            body = doc::ErrorBody, headers(("Cache-Control" = String, description = "Always `no-store`: a DSN must not sit in a proxy cache."), ("Retry-After" = i64, description = "Seconds to wait."))))
)]
pub async fn resolve(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<ResolveQuery>,
) -> Response {
    let started = std::time::Instant::now();
    let resolved = if q.fresh == Some(true) {
        state.resolver.resolve_fresh(&slug).await
    } else {
        state.resolver.resolve(&slug).await
    };
    let answer = match resolved {
        Ok(Resolution::Ok(r)) => {
            // The body (it holds the DSN) leaves its secret wrapper only here, copied
            // straight into the response.
            let body = r.rendered.body.expose_secret().to_owned();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Ok(Resolution::Suspended { reason }) => ApiError::new(
            StatusCode::LOCKED,
            "tenant_suspended",
            format!("tenant '{slug}' is suspended"),
        )
        .with("suspended_reason", json!(reason))
        .into_response(),
        Ok(Resolution::NotReady { status }) => ApiError::new(
            StatusCode::CONFLICT,
            "tenant_not_ready",
            format!("tenant '{slug}' is {status}; retry when it is active"),
        )
        .into_response(),
        Ok(Resolution::NotFound) => ApiError::new(
            StatusCode::NOT_FOUND,
            "tenant_not_found",
            format!("no tenant '{slug}'"),
        )
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    state
        .metrics
        .resolution_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    no_store(answer)
}
