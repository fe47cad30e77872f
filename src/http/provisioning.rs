//! `POST /v1/tenants/{slug}/provisioning`: an external provisioner reports back. The
//! route takes no API token: its one credential is the request's single-use callback
//! token (the auth middleware lets it through, see `access::Needed::Callback`).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::Json;

use super::openapi as doc;
use super::{ApiError, ApiJson};
use crate::provision::external::CallbackBody;
use crate::provision::ProvisionError;
use crate::registry::Tenant;
use crate::state::AppState;

/// The bearer token of a callback, if one was sent.
pub struct CallbackToken(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for CallbackToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(CallbackToken(
            super::auth::bearer(parts).map(str::to_string),
        ))
    }
}

/// `POST /v1/tenants/{slug}/provisioning`.
#[utoipa::path(
    post, path = "/tenants/{slug}/provisioning", tag = "tenants", operation_id = "reportProvisioning",
    summary = "An external provisioner reports back",
    description = "For a tenant on a server of `kind = \"external\"`, authenticated only by the callback token of \
        the request drover sent (`Authorization: Bearer <callback.token>`), once. `succeeded` while provisioning: \
        drover checks `db_secret_ref` is in the tenant scope, logs in with it, migrates the database to the latest \
        tenant migration and marks the tenant active (`provisioned`); fields left out keep the tenant's. \
        `succeeded` while deprovisioning: the delete finishes. `failed`: the tenant keeps `provisioning` with \
        its `provisioning_error` and, when `retryable`, is asked again on the retry schedule. 401 for a token \
        that is unknown, already used, expired, replaced by a newer request or another tenant's: nothing changes. \
        422 when the report is refused (the token is not spent). 502 when drover cannot log in or migrate with \
        what was reported (the token is spent; a retryable failure is asked again).",
    params(doc::SlugPath), request_body = CallbackBody,
    responses(
        (status = 200, description = "The tenant afterwards: active, deleted, or provisioning with its error.", body = Tenant),
        (status = 502, response = doc::E502))
)]
pub async fn report(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    CallbackToken(token): CallbackToken,
    body: Result<ApiJson<CallbackBody>, ApiError>,
) -> Result<Json<Tenant>, ApiError> {
    let Some(token) = token else {
        return Err(ProvisionError::CallbackToken.into());
    };
    // The token first: a caller without one learns nothing, not even what a body is.
    s.provisioner.check_callback(&slug, &token).await?;
    let ApiJson(body) = body?;
    Ok(Json(s.provisioner.callback(&slug, &token, &body).await?))
}
