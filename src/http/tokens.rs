//! `/v1/tokens`: named tokens (SPEC §17). The token is in the 201 answer and nowhere else.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, Caller};
use crate::access::{CreatedToken, NewToken, TokenInfo};
use crate::app::AppState;

/// `POST /v1/tokens {"name", "role", "expires_in"?}` → 201 with the token, shown once.
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = s.tokens.create(&body, actor.as_str()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tokens` → `{"items": [...]}`, without values or hashes.
pub async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let items = s.tokens.list().await?;
    Ok(Json(json!({ "items": items })))
}

/// `DELETE /v1/tokens/{name}` → the revoked token; refused everywhere within 2 s.
pub async fn revoke(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(s.tokens.revoke(&name, actor.as_str()).await?))
}
