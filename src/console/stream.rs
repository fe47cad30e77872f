//! `GET /ui/stream`: the event stream (docs/design.md#events-and-webhooks) for the
//! console's script. `EventSource` cannot send a bearer token, so the session (checked by
//! the guard) stands in for it; the filters, `Last-Event-ID` resumption and the per-replica
//! client limit are the API's.
//! The session is checked again every second while the stream lasts: logging out, or the
//! login token's revocation or expiry, ends it within 2 s. Its streams count against the
//! login token's `stream_max_per_token`, like the token's own.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};

use super::session::{self, Session};
use super::ConsoleError;
use crate::events::stream::Holder;
use crate::events::FilterParams;
use crate::state::AppState;

/// Same filters as `/v1/events/stream` (`type`, `tenant`, `wave`, `actor`).
pub async fn events(
    State(s): State<AppState>,
    session: Session,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(e) = session.require("GET", "/v1/events/stream") {
        return e.into_response();
    }
    let params: FilterParams = match serde_urlencoded::from_str(q.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return ConsoleError::Invalid(format!("stream filters: {e}")).into_response(),
    };
    // The guard found the session by this cookie.
    let Some(cookie) = session::cookie(&headers) else {
        return ConsoleError::NotFound("no session".into()).into_response();
    };
    let holder = SessionHolder {
        state: s.clone(),
        cookie: SecretString::from(cookie),
        identity: session.identity.clone(),
    };
    crate::http::event_stream(s, headers, params, &session.identity, holder)
        .await
        .into_response()
}

/// A console session holding a stream: it must still be live (not logged out, not
/// expired) and its token still good.
struct SessionHolder {
    state: AppState,
    /// The session id: as good as the session.
    cookie: SecretString,
    identity: String,
}

impl Holder for SessionHolder {
    async fn still_allowed(&mut self) -> bool {
        match session::lookup(&self.state, self.cookie.expose_secret()).await {
            Ok(Some(s)) => s.identity == self.identity,
            Ok(None) => false,
            Err(_) => true,
        }
    }
}
