//! HTTP API (axum): routing, JSON extraction, and the one auth middleware ([`auth`]). One
//! file per resource; errors become responses only in [`error`].
//!
//! `/healthz`, `/readyz`, `/metrics` and `/openapi.json` need no token; every `/v1` route
//! needs the role [`crate::access::ROUTE_ROLES`] gives it (docs/design.md#access-model). The web console's
//! routes (`/ui/`, [`crate::console`]) are not mounted here: [`crate::app`] merges them
//! beside these, with their own session guard, and both pass through [`layers`].

mod auth;
mod definitions;
mod drift;
pub mod error;
mod events;
mod health;
pub mod https;
pub mod metrics;
mod migration_sets;
pub mod openapi;
mod provisioning;
mod resolve;
mod schedules;
pub mod serve;
mod tenants;
mod tokens;
mod waves;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
pub use auth::Caller;
pub use error::ApiError;
/// The event stream, also behind the web console's session (`/ui/stream`).
pub use events::open_stream as event_stream;

/// The API's routes behind their bearer-token guard, with the JSON 404 for any other path.
/// [`crate::app`] merges the web console's router beside it and wraps both in [`layers`].
pub fn router(state: &AppState) -> Router<AppState> {
    let (routes, _) = api(state.config.max_set_bytes).split_for_parts();
    routes
        .fallback(|| async { ApiError::no_route() })
        // Inside `track` (see `layers`), so refused requests are counted and timed too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
}

/// What every request passes through, API and console alike: request counting and timing,
/// the body limit and the trace span.
pub fn layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Every route with its documentation ([`openapi`]). Routes are added only through
/// `routes!`, which takes each handler's `#[utoipa::path]` (a handler without one does not
/// compile there), so the router and the document are one list and cannot drift. Never add
/// a route with axum's plain route methods: it would be served undocumented.
pub fn api(max_set_bytes: usize) -> OpenApiRouter<AppState> {
    // A whole set may be far larger than any other body: its own limit.
    let sets = OpenApiRouter::new()
        .routes(routes!(migration_sets::list, migration_sets::push))
        .layer(axum::extract::DefaultBodyLimit::max(max_set_bytes));
    let v1 = OpenApiRouter::new()
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(
            tenants::get,
            definitions::put,
            tenants::update,
            tenants::delete
        ))
        .routes(routes!(tenants::suspend))
        .routes(routes!(tenants::resume))
        .routes(routes!(tenants::rename))
        .routes(routes!(tenants::provision))
        .routes(routes!(provisioning::report))
        .routes(routes!(tenants::events))
        .routes(routes!(tenants::limits, tenants::set_limits))
        .routes(routes!(tenants::servers))
        .routes(routes!(health::registry_health))
        .routes(routes!(waves::list, waves::create))
        .routes(routes!(waves::get))
        .routes(routes!(waves::targets))
        .routes(routes!(waves::events))
        .routes(routes!(waves::pause))
        .routes(routes!(waves::resume))
        .routes(routes!(waves::abort))
        .routes(routes!(waves::promote))
        .routes(routes!(waves::fleet))
        .routes(routes!(drift::report))
        .routes(routes!(drift::tenant))
        .routes(routes!(drift::start_scan))
        .routes(routes!(drift::get_scan))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(
            schedules::get,
            schedules::update,
            schedules::delete
        ))
        .routes(routes!(schedules::trigger))
        .routes(routes!(schedules::cluster))
        .merge(sets)
        .routes(routes!(migration_sets::get, migration_sets::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(events::list))
        .routes(routes!(events::stream))
        .routes(routes!(events::list_webhooks, events::create))
        .routes(routes!(events::get, events::delete))
        .routes(routes!(events::test))
        .routes(routes!(resolve::resolve));
    OpenApiRouter::with_openapi(openapi::Root::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(openapi::document))
        .routes(routes!(metrics::metrics))
        .routes(routes!(health::readyz))
        .nest("/v1", v1)
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
