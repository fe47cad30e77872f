//! `GET /v1/resolve/{slug}`: where is this tenant's database? Every answer carries
//! `Cache-Control: no-store` (a DSN must not sit in a proxy cache); the request log shows
//! the slug and the status only.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::app::AppState;
use crate::resolve::{Resolution, ResolveError};

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
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
        Ok(Resolution::Suspended { reason }) => {
            let body = json!({ "error": {
                "code": "tenant_suspended",
                "message": format!("tenant '{slug}' is suspended"),
                "suspended_reason": reason,
            }});
            (StatusCode::LOCKED, Json(body)).into_response()
        }
        Ok(Resolution::NotReady { status }) => error(
            StatusCode::CONFLICT,
            "tenant_not_ready",
            format!("tenant '{slug}' is {status}; retry when it is active"),
        ),
        Ok(Resolution::NotFound) => error(
            StatusCode::NOT_FOUND,
            "tenant_not_found",
            format!("no tenant '{slug}'"),
        ),
        Err(e) => {
            let (code, message) = match &e {
                ResolveError::SecretUnavailable(_) => ("secret_unavailable", e.to_string()),
                // The cause (hosts, SQL states) is for the log, not for the caller.
                ResolveError::ControlDb(_) => {
                    tracing::warn!(error = %e, "resolution: control database unavailable");
                    (
                        "control_db_unavailable",
                        "control database unavailable; retry shortly".to_string(),
                    )
                }
            };
            let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            resp
        }
    };
    state
        .metrics
        .resolution_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    no_store(answer)
}
