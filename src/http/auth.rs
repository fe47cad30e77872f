//! Authentication and authorization for every request, in one middleware: the bearer token
//! becomes a [`Principal`], the matched route's entry in [`crate::access::ROUTE_ROLES`]
//! says which role it needs, and [`Caller`] turns the principal into the actor of events.
//!
//! Failures are counted in `drover_auth_failures_total` by reason only: never the token,
//! never a per-client label. Tokens never reach logs or errors.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::access::{needed_role, Lookup, Needed, Principal};
use crate::registry::Actor;
use crate::state::AppState;
use crate::waves::redact::Audience;

/// Constant-time comparison of the presented token with the expected one.
fn token_matches(presented: &str, expected: &SecretString) -> bool {
    presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}

pub(super) fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The SHA-256 of the named token a request was let in with, in its extensions: what an
/// open event stream checks again while it lasts. Absent for the configured tokens.
#[derive(Debug, Clone, Copy)]
pub struct NamedToken(pub [u8; 32]);

/// Who presented `token`: the configured root or resolver token, or a named token (then
/// with its hash).
async fn authenticate(
    state: &AppState,
    token: &str,
) -> Result<(Principal, Option<NamedToken>), ApiError> {
    // Evaluate both so the time taken does not reveal which token matched.
    let root = token_matches(token, &state.admin_token);
    let resolver = state
        .resolver_token
        .as_ref()
        .is_some_and(|r| token_matches(token, r));
    if root {
        return Ok((Principal::root(), None));
    }
    if resolver {
        return Ok((Principal::config_resolver(), None));
    }
    let hash = crate::access::tokens::sha256(token);
    match state.tokens.authenticate_hash(&hash).await? {
        Lookup::Valid(p) => Ok((p, Some(NamedToken(hash)))),
        Lookup::Expired => Err(fail(state, "expired", ApiError::token_expired())),
        Lookup::Unknown => Err(fail(state, "invalid", ApiError::unauthorized())),
    }
}

fn fail(state: &AppState, reason: &str, e: ApiError) -> ApiError {
    state
        .metrics
        .auth_failures_total
        .with_label_values(&[reason])
        .inc();
    e
}

/// The middleware: public routes pass, others need a token whose role grants the route's.
pub async fn authorize(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    // No matched route: the fallback answers 404 without looking at tokens.
    let Some(route) = parts.extensions.get::<MatchedPath>() else {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    };
    let needed = needed_role(parts.method.as_str(), route.as_str());
    // A callback route checks its own token (see `provisioning`).
    if needed == Needed::Public || needed == Needed::Callback {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    }
    let needed = needed.roles();
    let Some(token) = bearer(&parts) else {
        return Err(fail(&state, "missing", ApiError::unauthorized()));
    };
    let (principal, named) = authenticate(&state, token).await?;
    if !needed.iter().any(|n| principal.role.grants(*n)) {
        return Err(fail(
            &state,
            "forbidden",
            ApiError::forbidden(&needed, principal.role),
        ));
    }
    parts.extensions.insert(principal);
    if let Some(named) = named {
        parts.extensions.insert(named);
    }
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// The actor of the events a request writes: the token's identity (`root`,
/// `token:<name>`). `X-Drover-Actor` (the CLI sends `cli:$USER`) never replaces it; it is
/// recorded as `on_behalf_of` in the event's payload.
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let actor = Actor::new(&principal(parts)?.identity)?;
        let named = parts
            .headers
            .get("x-drover-actor")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let actor = match named {
            Some(n) => actor.on_behalf_of(n)?,
            None => actor,
        };
        Ok(Caller(actor))
    }
}

/// How much of a wave target's error the caller reads ([`Audience::of`] its role).
pub struct Reader(pub Audience);

impl<S: Send + Sync> FromRequestParts<S> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Reader(Audience::of(principal(parts)?.role)))
    }
}

/// The request's principal. Only routes behind `authorize` have one; on any other route
/// an extractor that needs it fails closed with 401.
fn principal(parts: &Parts) -> Result<&Principal, ApiError> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or_else(ApiError::unauthorized)
}
