//! HTTP API (axum): routing, bearer-token auth and JSON extraction. One file per resource;
//! errors become responses only in [`error`].
//!
//! `/healthz`, `/readyz` need no token; `/v1/resolve` needs the resolver or the admin
//! token; everything else under `/v1` needs the admin token.

mod definitions;
pub mod error;
mod events;
mod health;
pub mod openapi;
mod resolve;
mod schedules;
mod tenants;
mod waves;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::registry::Actor;
pub use error::ApiError;

/// The complete router.
pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/tenants/{slug}",
            get(tenants::get)
                .put(definitions::put)
                .patch(tenants::update)
                .delete(tenants::delete),
        )
        .route("/tenants/{slug}/suspend", post(tenants::suspend))
        .route("/tenants/{slug}/resume", post(tenants::resume))
        .route("/tenants/{slug}/provision", post(tenants::provision))
        .route("/tenants/{slug}/events", get(tenants::events))
        .route("/registry/health", get(health::registry_health))
        .route("/waves", get(waves::list).post(waves::create))
        .route("/waves/{id}", get(waves::get))
        .route("/waves/{id}/targets", get(waves::targets))
        .route("/waves/{id}/events", get(waves::events))
        .route("/waves/{id}/pause", post(waves::pause))
        .route("/waves/{id}/resume", post(waves::resume))
        .route("/waves/{id}/abort", post(waves::abort))
        .route("/waves/{id}/promote", post(waves::promote))
        .route("/fleet", get(waves::fleet))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/schedules/{name}",
            get(schedules::get)
                .patch(schedules::update)
                .delete(schedules::delete),
        )
        .route("/schedules/{name}/trigger", post(schedules::trigger))
        .route("/cluster", get(schedules::cluster))
        .route("/events", get(events::list))
        .route("/events/stream", get(events::stream))
        .route("/webhooks", get(events::list_webhooks).post(events::create))
        .route("/webhooks/{name}", get(events::get).delete(events::delete))
        .route("/webhooks/{name}/test", post(events::test))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let resolver = Router::new()
        .route("/resolve/{slug}", get(resolve::resolve))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_resolver,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(health::metrics))
        .route("/readyz", get(health::readyz))
        .nest("/v1", admin.merge(resolver))
        .fallback(|| async { ApiError::no_route() })
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Counts every request by route template (never the raw path: slugs would make one
/// series per tenant), method and status, and times it.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.http_requests_total
        .with_label_values(&[route.as_str(), method.as_str(), resp.status().as_str()])
        .inc();
    m.http_request_duration_seconds
        .with_label_values(&[route.as_str(), method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// Constant-time comparison of the presented token with the expected one.
fn token_matches(presented: &str, expected: &SecretString) -> bool {
    presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn require_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    match bearer(&parts) {
        Some(t) if token_matches(t, &state.admin_token) => {
            Ok(next.run(Request::from_parts(parts, body)).await)
        }
        _ => Err(ApiError::unauthorized()),
    }
}

async fn require_resolver(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let ok = bearer(&parts).is_some_and(|t| {
        // Evaluate both so the time taken does not reveal which token matched.
        let admin = token_matches(t, &state.admin_token);
        let resolver = state
            .resolver_token
            .as_ref()
            .is_some_and(|r| token_matches(t, r));
        admin | resolver
    });
    if ok {
        Ok(next.run(Request::from_parts(parts, body)).await)
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Who is calling, for the `actor` of events: `api`, or `api:<X-Drover-Actor>` when the
/// client names itself (the CLI sends `cli:$USER`).
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let named = parts
            .headers
            .get("x-drover-actor")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let actor = match named {
            Some(n) => format!("api:{n}"),
            None => "api".to_string(),
        };
        Actor::new(&actor).map(Caller).map_err(ApiError::from)
    }
}

/// `Json` whose rejections use drover's error shape (422 names the offending field).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// `Query` with drover's error shape.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(v))
    }
}
