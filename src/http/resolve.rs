//! `GET /v1/resolve/{slug}`: where is this tenant's database? Every answer carries
//! `Cache-Control: no-store` (a DSN must not sit in a proxy cache); the request log shows
//! the slug and the status only.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;

use super::ApiError;
use crate::app::AppState;
use crate::resolve::Resolution;

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The handler.
pub async fn resolve(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let started = std::time::Instant::now();
    let answer = match state.resolver.resolve(&slug).await {
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
