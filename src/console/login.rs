//! `/ui/login` and `/ui/logout`.
//!
//! The token is checked exactly as the API checks a bearer token (the root token of the
//! configuration in constant time, else a named token by hash); a role that cannot read
//! (resolver, publisher) is told so on the page. Logging in needs no CSRF token (there is
//! no session yet): a cross-site POST is refused by its `Origin`, and SameSite=Strict keeps
//! the cookie from being sent cross-site anyway.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::layout;
use super::session::{self, safe_next, Session};
use super::ConsoleError;
use crate::access::{Lookup, Principal, Role};
use crate::origin::Peer;
use crate::state::AppState;

/// Query of `GET /ui/login`.
#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Body of `POST /ui/login`.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

fn page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let body = html! {
        main id="main" .narrow {
            h1 { "drover" }
            p { "Log in with an API token: the root admin token, or a named token of role viewer, operator or admin. "
                "Resolver and publisher tokens cannot use the console." }
            @if let Some(p) = problem {
                p.error role="alert" { strong { "Not logged in: " } (p) }
            }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input #token type="password" name="token" required autocomplete="current-password" autofocus;
                button type="submit" { "Log in" }
            }
        }
    };
    (status, layout::document("log in", body)).into_response()
}

/// `GET /ui/login`.
pub async fn form(Query(q): Query<LoginQuery>) -> Response {
    page(StatusCode::OK, &safe_next(q.next.as_deref()), None)
}

fn fail(state: &AppState, reason: &str) {
    state
        .metrics
        .auth_failures_total
        .with_label_values(&[reason])
        .inc();
}

/// Who `token` is, or why it may not log in.
async fn principal(
    state: &AppState,
    token: &str,
) -> Result<Result<Principal, &'static str>, ConsoleError> {
    let token = token.trim();
    // Evaluate both so the time taken does not reveal which matched.
    let root = bool::from(
        token
            .as_bytes()
            .ct_eq(state.admin_token.expose_secret().as_bytes()),
    );
    let resolver = state
        .resolver_token
        .as_ref()
        .is_some_and(|r| bool::from(token.as_bytes().ct_eq(r.expose_secret().as_bytes())));
    let p = if root {
        Principal::root()
    } else if resolver {
        Principal::config_resolver()
    } else if token.is_empty() {
        return Ok(Err("enter a token"));
    } else {
        match state.tokens.authenticate(token).await? {
            Lookup::Valid(p) => p,
            Lookup::Expired => {
                fail(state, "expired");
                return Ok(Err("this token has expired; ask an admin for a new one"));
            }
            Lookup::Unknown => {
                fail(state, "invalid");
                return Ok(Err("unknown or revoked token"));
            }
        }
    };
    if !p.role.grants(Role::Viewer) {
        fail(state, "forbidden");
        return Ok(Err(
            "this token's role cannot use the console (it needs viewer, operator or admin)",
        ));
    }
    Ok(Ok(p))
}

/// `POST /ui/login`: a session and its cookie, then the page asked for.
pub async fn submit(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let settings = session::settings(&state);
    if !session::same_origin(settings, peer, &headers) {
        return Err(ConsoleError::Csrf);
    }
    let next = safe_next(f.next.as_deref());
    let p = match principal(&state, &f.token).await? {
        Ok(p) => p,
        Err(why) => return Ok(page(StatusCode::UNAUTHORIZED, &next, Some(why))),
    };
    let client = settings.client(peer, &headers);
    let id = session::create(&state, &p, f.token.trim(), client).await?;
    let secure = settings.secure(peer, &headers);
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(settings, &id, secure),
    );
    Ok(resp)
}

/// `POST /ui/logout` (behind the guard, so with the CSRF token): the session row goes.
pub async fn logout(
    State(state): State<AppState>,
    _session: Session,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    if let Some(id) = session::cookie(&headers) {
        session::delete(&state, &id).await?;
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    Ok(resp)
}
