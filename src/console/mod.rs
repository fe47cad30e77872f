//! The web console (README.md#web-console): server-rendered HTML pages at `/ui/` on the
//! daemon's own listener, for people who watch the fleet, look tenants up and act on waves.
//!
//! ```text
//!  browser ──► /ui/login (token) ──► session row (control DB) + HttpOnly cookie
//!          ──► /ui/... ──► guard: cookie → session → token re-checked (access module's
//!                          copy of the token list) → POST: Origin + CSRF → page handler
//!                                    └─► same registry / wave / event functions as /v1
//! ```
//!
//! Choices, and why:
//! - **Its own router, merged beside the API** (by `src/app.rs`), not in the OpenAPI
//!   document nor in `access::ROUTE_ROLES`: the pages are HTML for people, authenticated by
//!   a cookie session rather than a bearer token. What a page offers still follows the one
//!   role table: an action is shown, and accepted, only when the session's role is granted
//!   the API route doing the same thing ([`session::Session::may`]).
//! - **maud** for HTML: templates are Rust macros checked at compile time, every
//!   interpolation is escaped unless wrapped in `PreEscaped`, and it is one small
//!   dependency with no runtime template files to ship.
//! - **No JavaScript framework**: one small ES module (`assets/console.js`, ~3 KB) does the
//!   progressive part: an element with `data-fragment` re-fetches that HTML fragment when its
//!   `data-stream` (an `EventSource` on `/ui/stream`, the event feed
//!   (docs/design.md#events-and-webhooks) behind the session) says something happened, and once
//!   whenever the stream (re)opens, since events between the page's render and the stream's
//!   start are never replayed; `data-confirm` asks before a form is sent and then adds
//!   `confirmed=yes` (a form sent without the script gets the server's own confirmation page
//!   instead, as for Abort). Everything works without it (pages are complete HTML, actions are
//!   plain forms). htmx would do the same in 14 KB plus a licence file to vendor; the need is
//!   two behaviours. Assets are compiled in and served under a content-hash path with a
//!   one-year immutable cache.
//! - **Sessions in the control DB** (`console_sessions`, V15), so any replica serves any
//!   request; the id is stored hashed, the cookie is HttpOnly, SameSite=Strict, Path=/ui,
//!   Secure when the browser came over HTTPS (the listener's own, or `public_url` / a trusted
//!   proxy's word, see [`crate::origin`]), and lasts `console_session_ttl` (default 8 h). Every request checks
//!   the login token again (revoked or expired ends the session within 2 s on every
//!   replica); `/ui/stream` checks the session every second while it lasts.
//! - **CSRF**: every POST under the guard must carry the session's token in the form field
//!   `csrf`, checked in the guard itself so a new action cannot forget it; a POST whose
//!   `Origin` is present and not this site is refused too (login included). "This site" is
//!   `public_url` when set, else the request's scheme and host ([`crate::origin`]).
//! - **Headers**: every response carries a strict `Content-Security-Policy` (no inline
//!   script or style anywhere: the CSP forbids both), `nosniff` and `Referrer-Policy`.
//!
//! Pages: fleet ([`fleet`]), tenants and one tenant ([`tenants`]), waves and one wave
//! ([`waves`]), schema drift ([`drift`]), schedules ([`schedules`]) and webhooks
//! ([`webhooks`]); [`layout`] is the
//! frame every page shares.

pub mod assets;
mod chart;
mod drift;
mod fleet;
pub mod layout;
mod login;
mod schedules;
pub mod session;
mod stream;
mod tenants;
mod waves;
mod webhooks;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub use crate::origin::{ConsoleSettings, PublicUrl, TrustedProxies};

/// The console's routes, to be merged into the daemon's router (outside the API's bearer
/// token middleware).
pub fn router(state: AppState) -> Router<AppState> {
    let guarded = Router::new()
        .route("/ui/", get(fleet::page))
        .route("/ui/health", get(fleet::health))
        .route("/ui/tenants", get(tenants::list))
        .route("/ui/tenants/{slug}", get(tenants::show))
        .route("/ui/tenants/{slug}/suspend", post(tenants::suspend))
        .route("/ui/tenants/{slug}/resume", post(tenants::resume))
        .route("/ui/waves", get(waves::list))
        .route("/ui/waves/{id}", get(waves::show))
        .route("/ui/waves/{id}/progress", get(waves::progress))
        .route("/ui/waves/{id}/{action}", post(waves::act))
        .route("/ui/drift", get(drift::page))
        .route("/ui/schedules", get(schedules::page))
        .route("/ui/webhooks", get(webhooks::page))
        .route("/ui/stream", get(stream::events))
        .route("/ui/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(state, session::guard));
    Router::new()
        .merge(guarded)
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/assets/{version}/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(not_found))
        .layer(middleware::from_fn(security_headers))
}

/// The policy every console response carries: nothing but this origin's own files, no
/// inline script or style, no framing, forms only to here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; \
     base-uri 'none'; object-src 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages show live data and who is logged in: never from a shared or back-forward cache.
    // Assets set their own (long) cache policy.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("no such page".into())
}

/// Errors of the console: each becomes an HTML page with its status.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The session's role does not grant the action.
    #[error("your role ({have}) may not do this; it needs {needed}")]
    Forbidden {
        have: crate::access::Role,
        needed: String,
    },
    /// A POST without the session's CSRF token, or from another origin.
    #[error("the form is stale or came from another site; reload the page and try again")]
    Csrf,
    /// Nothing here.
    #[error("{0}")]
    NotFound(String),
    /// A query parameter or form field is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The action was refused by the module doing it (a 409/422 of the API).
    #[error("{0}")]
    Refused(String),
    /// The control DB or another module failed.
    #[error("{message}")]
    Internal { message: String, retryable: bool },
}

impl ConsoleError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConsoleError::Internal {
                retryable: true,
                ..
            }
        )
    }

    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Forbidden { .. } | ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Invalid(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Refused(_) => StatusCode::CONFLICT,
            ConsoleError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn internal(what: &str, e: &dyn std::error::Error, retryable: bool) -> Self {
        // The cause may name hosts or SQL: to the log, not the page.
        tracing::error!(error = %e, "console: {what} failed");
        ConsoleError::Internal {
            message: format!("{what} failed; the cause is in drover's log"),
            retryable,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let message = match &self {
            ConsoleError::Internal {
                retryable: true, ..
            } => format!("{self} (temporary: try again)"),
            _ => self.to_string(),
        };
        (status, layout::bare(title, &message)).into_response()
    }
}

impl From<crate::db::DbError> for ConsoleError {
    fn from(e: crate::db::DbError) -> Self {
        let r = e.is_retryable();
        ConsoleError::internal("the control database", &e, r)
    }
}

impl From<deadpool_postgres::PoolError> for ConsoleError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        crate::db::DbError::from(e).into()
    }
}

impl From<tokio_postgres::Error> for ConsoleError {
    fn from(e: tokio_postgres::Error) -> Self {
        crate::db::DbError::from(e).into()
    }
}

impl From<crate::access::AccessError> for ConsoleError {
    fn from(e: crate::access::AccessError) -> Self {
        let r = e.is_retryable();
        ConsoleError::internal("the token lookup", &e, r)
    }
}

impl From<crate::registry::RegistryError> for ConsoleError {
    fn from(e: crate::registry::RegistryError) -> Self {
        use crate::registry::RegistryError as R;
        match e {
            R::NotFound(_) => ConsoleError::NotFound(e.to_string()),
            R::Invalid { .. } => ConsoleError::Invalid(e.to_string()),
            other if other.is_retryable() => ConsoleError::internal("the registry", &other, true),
            other => match crate::http::ApiError::from(other).status_and_message() {
                (s, m) if s.is_client_error() => ConsoleError::Refused(m),
                (_, m) => ConsoleError::Internal {
                    message: m,
                    retryable: false,
                },
            },
        }
    }
}

impl From<crate::waves::WaveError> for ConsoleError {
    fn from(e: crate::waves::WaveError) -> Self {
        if e.is_retryable() {
            return ConsoleError::internal("the wave store", &e, true);
        }
        match crate::http::ApiError::from(e).status_and_message() {
            (StatusCode::NOT_FOUND, m) => ConsoleError::NotFound(m),
            (s, m) if s.is_client_error() => ConsoleError::Refused(m),
            (_, m) => ConsoleError::Internal {
                message: m,
                retryable: false,
            },
        }
    }
}

impl From<crate::events::EventsError> for ConsoleError {
    fn from(e: crate::events::EventsError) -> Self {
        use crate::events::EventsError as E;
        match e {
            E::NotFound(_) => ConsoleError::NotFound(e.to_string()),
            E::Invalid { .. } => ConsoleError::Invalid(e.to_string()),
            other => {
                let r = other.is_retryable();
                ConsoleError::internal("the event feed", &other, r)
            }
        }
    }
}
