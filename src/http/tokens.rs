//! `/v1/tokens`: named tokens (see docs/design.md#access-model). The token is in the 201
//! answer and nowhere else.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::openapi as doc;
use super::{ApiError, ApiJson, Caller};
use crate::access::{CreatedToken, NewToken, TokenInfo};
use crate::state::AppState;

/// `POST /v1/tokens {"name", "role", "expires_in"?}` → 201 with the token, shown once.
#[utoipa::path(
    post, path = "/tokens", tag = "tokens", operation_id = "createToken",
    summary = "Issue a named token",
    description = "The token is in this answer and never again: drover stores only its SHA-256. `expires_in` is a \
        duration (`90d`, `12h`, `30m`, `3600s`); without it the token does not expire. 409 `duplicate_token` when \
        the name is taken.",
    params(doc::ActorHeader),
    request_body(content = NewToken, example = json!({"name": "grafana", "role": "viewer", "expires_in": "90d"})),
    responses((status = 201, description = "The token, shown once.", body = CreatedToken,
            links(("RevokeToken" = (operation_id = "revokeToken", parameters(("name" = "$response.body#/name")))))), (status = 409, response = doc::E409))
)]
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = s.tokens.create(&body, actor.as_str()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tokens` → `{"items": [...]}`, without values or hashes.
#[utoipa::path(
    get, path = "/tokens", tag = "tokens", operation_id = "listTokens",
    summary = "Named tokens, without their values",
    description = "Names, roles, who created them, `expires_at` and `last_used_at` (exact to about a second).",
    responses((status = 200, description = "The tokens, by name.", body = TokenList))
)]
pub async fn list(State(s): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    let items = s.tokens.list().await?;
    Ok(Json(TokenList { items }))
}

/// Body of `GET /v1/tokens`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    items: Vec<TokenInfo>,
}

/// `DELETE /v1/tokens/{name}` → the revoked token; refused everywhere within 2 s.
#[utoipa::path(
    delete, path = "/tokens/{name}", tag = "tokens", operation_id = "revokeToken",
    summary = "Revoke a named token",
    description = "Refused on every replica within 2 seconds (at once on this one). The name may be reused.",
    params(doc::TokenName, doc::ActorHeader),
    responses((status = 200, description = "The revoked token.", body = TokenInfo),
        (status = 404, response = doc::E404), (status = 422, response = doc::E422))
)]
pub async fn revoke(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(s.tokens.revoke(&name, actor.as_str()).await?))
}
