//! HTTP API (axum): routing, JSON extraction, and the one auth middleware ([`auth`]). One
//! file per resource; errors become responses only in [`error`].
//!
//! `/healthz`, `/readyz`, `/metrics` and `/openapi.json` need no token; every `/v1` route
//! needs the role [`crate::access::ROUTE_ROLES`] gives it (SPEC §17). The web console's
//! routes (`/ui/`, [`crate::console`]) are merged in beside them with their own session guard.

mod auth;
mod definitions;
pub mod error;
mod events;
mod health;
pub mod https;
mod migration_sets;
pub mod openapi;
mod resolve;
mod schedules;
mod tenants;
mod tokens;
mod waves;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
pub use auth::Caller;
pub use error::ApiError;
/// The SSE handler, also behind the web console's session (`/ui/stream`).
pub use events::stream as event_stream;

/// The complete router.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
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
        .route(
            "/tenants/{slug}/limits",
            get(tenants::limits).put(tenants::set_limits),
        )
        .route("/servers", get(tenants::servers))
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
        .route(
            "/migration-sets",
            get(migration_sets::list).post(migration_sets::push).layer(
                // A whole set may be far larger than any other body: its own limit.
                axum::extract::DefaultBodyLimit::max(state.config.max_set_bytes),
            ),
        )
        .route(
            "/migration-sets/{id}",
            get(migration_sets::get).delete(migration_sets::delete),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{name}", delete(tokens::revoke))
        .route("/events", get(events::list))
        .route("/events/stream", get(events::stream))
        .route("/webhooks", get(events::list_webhooks).post(events::create))
        .route("/webhooks/{name}", get(events::get).delete(events::delete))
        .route("/webhooks/{name}/test", post(events::test))
        .route("/resolve/{slug}", get(resolve::resolve));
    let api = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(health::metrics))
        .route("/readyz", get(health::readyz))
        .nest("/v1", v1)
        // Inside `track`, so refused requests are counted and timed too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ));
    // The web console (`/ui/`) is merged after the bearer-token layer: its pages use a
    // cookie session and their own guard (see `crate::console`), and are not API routes.
    api.merge(crate::console::router(state.clone()))
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
