//! Console sessions: the `console_sessions` rows (V15), the cookie, and [`guard`], the one
//! middleware every page behind the login goes through (session, token re-check, Origin
//! and CSRF for POSTs).
//!
//! The cookie holds a random 256-bit id; the row is found by its SHA-256. Every request
//! re-validates the token the session was made with: a named token through the access
//! module's copy of the token list, by hash (revoked or expired: the session is gone within
//! 2 s, on every replica); root by recomputing an HMAC keyed with the admin token.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use ring::rand::SecureRandom;
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::access::{needed_role, Lookup, Principal, Role};
use crate::origin::{ConsoleSettings, Peer};
use crate::registry::Actor;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "drover_session";

/// Largest form a console POST may send (a CSRF token and a few fields).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A logged-in person, as every guarded handler sees it. Debug leaves the CSRF token out:
/// it is as good as the session for posting forms.
#[derive(Clone)]
pub struct Session {
    /// `root` or `token:<name>`: the actor of everything done through this session.
    pub identity: String,
    /// The token's role now (looked up on this request).
    pub role: Role,
    /// The token every form of this session carries in its `csrf` field.
    pub csrf: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("identity", &self.identity)
            .field("role", &self.role)
            .field("csrf", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Session {
    /// Whether the role is granted the API route that does the same as a console action,
    /// e.g. `may("POST", "/v1/waves/{id}/pause")`: one table decides for both.
    pub fn may(&self, method: &str, api_route: &str) -> bool {
        needed_role(method, api_route)
            .roles()
            .iter()
            .any(|n| self.role.grants(*n))
    }

    /// [`Self::may`], or 403.
    pub fn require(&self, method: &str, api_route: &str) -> Result<(), ConsoleError> {
        if self.may(method, api_route) {
            return Ok(());
        }
        let needed: Vec<&str> = needed_role(method, api_route)
            .roles()
            .iter()
            .map(|r| r.as_str())
            .collect();
        Err(ConsoleError::Forbidden {
            have: self.role,
            needed: needed.join(" or "),
        })
    }

    /// How much of a wave target's error this session reads (the server's words are for
    /// operators and admins).
    pub fn audience(&self) -> crate::waves::redact::Audience {
        crate::waves::redact::Audience::of(self.role)
    }

    /// The actor of the events an action writes.
    pub fn actor(&self) -> Result<Actor, ConsoleError> {
        Actor::new(&self.identity).map_err(ConsoleError::from)
    }
}

/// Handlers take `session: Session`; only routes behind [`guard`] have one, anything else
/// fails closed.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| ConsoleError::NotFound("no session".into()))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex() -> Result<String, ConsoleError> {
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| ConsoleError::Internal {
            message: "the system random generator failed".into(),
            retryable: true,
        })?;
    Ok(hex(&b))
}

/// The console's settings. The one place the console reads them from the state.
pub fn settings(state: &AppState) -> &ConsoleSettings {
    &state.config.console
}

/// What proves root's session still matches the configured admin token.
fn root_check(state: &AppState, session_id: &str) -> [u8; 32] {
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        state.admin_token.expose_secret().as_bytes(),
    );
    let tag = ring::hmac::sign(&key, session_id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Starts a session for `principal`, who presented `token` from `from` (for the log).
/// Returns the cookie value.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    token: &str,
    from: Option<std::net::IpAddr>,
) -> Result<String, ConsoleError> {
    let id = random_hex()?;
    let csrf = random_hex()?;
    let check = if principal.identity == "root" {
        root_check(state, &id)
    } else {
        crate::access::tokens::sha256(token)
    };
    let ttl = chrono::Duration::from_std(settings(state).session_ttl)
        .map_err(|_| ConsoleError::Invalid("console_session_ttl is out of range".into()))?;
    let client = state.pool.get().await?;
    // Sweep first: the table holds live sessions only, whatever the login rate.
    client
        .execute(
            "DELETE FROM control_plane.console_sessions WHERE expires_at <= now()",
            &[],
        )
        .await?;
    client
        .execute(
            "INSERT INTO control_plane.console_sessions \
             (id_hash, identity, token_check, role, csrf, expires_at) \
             VALUES ($1, $2, $3, $4, $5, now() + $6::float8 * interval '1 second')",
            &[
                &&sha256(id.as_bytes())[..],
                &principal.identity,
                &&check[..],
                &principal.role.as_str(),
                &csrf,
                &ttl.as_seconds_f64(),
            ],
        )
        .await?;
    let from = from.map_or_else(|| "unknown".to_string(), |c| c.to_string());
    tracing::info!(identity = %principal.identity, client = %from, "console login");
    Ok(id)
}

/// Ends the session with this cookie value (nothing if there is none).
pub async fn delete(state: &AppState, id: &str) -> Result<(), ConsoleError> {
    let client = state.pool.get().await?;
    client
        .execute(
            "DELETE FROM control_plane.console_sessions WHERE id_hash = $1",
            &[&&sha256(id.as_bytes())[..]],
        )
        .await?;
    Ok(())
}

/// The live session with this cookie value, its token checked again.
pub async fn lookup(state: &AppState, id: &str) -> Result<Option<Session>, ConsoleError> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let row = {
        let client = state.pool.get().await?;
        client
            .query_opt(
                "SELECT identity, token_check, csrf, expires_at \
                 FROM control_plane.console_sessions WHERE id_hash = $1 AND expires_at > now()",
                &[&&sha256(id.as_bytes())[..]],
            )
            .await?
    };
    let Some(row) = row else { return Ok(None) };
    let identity: String = row.try_get("identity")?;
    let stored: Vec<u8> = row.try_get("token_check")?;
    let Ok(stored) = <[u8; 32]>::try_from(stored.as_slice()) else {
        return Ok(None);
    };
    let role = if identity == "root" {
        if !bool::from(root_check(state, id).ct_eq(&stored)) {
            return Ok(None);
        }
        Role::Admin
    } else {
        match state.tokens.authenticate_hash(&stored).await? {
            Lookup::Valid(p) if p.identity == identity => p.role,
            _ => return Ok(None),
        }
    };
    if !role.grants(Role::Viewer) {
        return Ok(None);
    }
    Ok(Some(Session {
        identity,
        role,
        csrf: row.try_get("csrf")?,
        expires_at: row.try_get("expires_at")?,
    }))
}

/// The session cookie's value, if the request has one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for a new session; `Secure` when the browser came over HTTPS (see
/// [`ConsoleSettings::secure`]).
pub fn set_cookie(settings: &ConsoleSettings, id: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = settings.session_ttl.as_secs();
    let v =
        format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("drover_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether a request's `Origin`, when present, is this site: `public_url`, else the scheme
/// and host the request came with (see [`ConsoleSettings::expected_origin`]). Browsers send
/// it on every POST; a missing one (older clients, curl) is left to the CSRF token.
pub fn same_origin(settings: &ConsoleSettings, peer: Peer, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(expected) = settings.expected_origin(peer, headers) else {
        return false;
    };
    origin.to_str().ok() == Some(expected.as_str())
}

/// `next` when it is a console path (no open redirect to another site), else `/ui/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// The middleware of every page behind the login: no session → the login page (GET) or
/// 403 (anything else); a POST must come from this origin and carry the session's CSRF
/// token in its form.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let session = match cookie(req.headers()) {
        Some(id) => match lookup(&state, &id).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            let here = req
                .uri()
                .path_and_query()
                .map_or("/ui/", |p| p.as_str())
                .to_string();
            let to = format!("/ui/login?next={}", encode(&safe_next(Some(&here))));
            let mut resp = Redirect::to(&to).into_response();
            // A stale cookie would be sent again on every request: drop it.
            resp.headers_mut()
                .insert(header::SET_COOKIE, clear_cookie());
            return resp;
        }
        return ConsoleError::Csrf.into_response();
    };
    let (mut parts, body) = req.into_parts();
    let body = if parts.method == Method::POST {
        if !same_origin(
            settings(&state),
            Peer::of(&parts.extensions),
            &parts.headers,
        ) {
            return ConsoleError::Csrf.into_response();
        }
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return ConsoleError::Invalid("the form is too large".into()).into_response();
        };
        let sent = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
            .ok()
            .and_then(|f| f.csrf)
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return ConsoleError::Csrf.into_response();
        }
        Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(session);
    next.run(Request::from_parts(parts, body)).await
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The retention sweep of this table: sessions expired more than `older_than` ago, at most
/// a batch per step. (A login also sweeps every expired session; this keeps the table
/// bounded when nobody logs in.)
pub fn retention_sweep(older_than: std::time::Duration) -> crate::retention::Sweep {
    crate::retention::Sweep::batched("console_sessions", move |c| async move {
        const SQL: &str = "DELETE FROM control_plane.console_sessions WHERE id_hash IN \
             (SELECT id_hash FROM control_plane.console_sessions \
              WHERE expires_at < now() - make_interval(secs => $1) ORDER BY expires_at LIMIT $2)";
        Ok(
            c.execute(SQL, &[&older_than.as_secs_f64(), &crate::retention::BATCH])
                .await?,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_csrf_token() {
        let session = Session {
            identity: "token:alice".into(),
            role: Role::Operator,
            csrf: "f00dcafe".repeat(8),
            expires_at: Utc::now(),
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("f00dcafe"), "{shown}");
        assert!(shown.contains("token:alice"), "{shown}");
    }

    #[test]
    fn next_only_ever_points_inside_the_console() {
        assert_eq!(safe_next(Some("/ui/tenants?q=acme")), "/ui/tenants?q=acme");
        assert_eq!(safe_next(Some("/ui")), "/ui");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/uix",
            "/v1/tenants",
            "/ui/\\evil",
            "/ui//evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; drover_session=abc; b=2"),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        assert_eq!(cookie(&HeaderMap::new()), None);
    }
}
