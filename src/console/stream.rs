//! `GET /ui/stream`: the event stream (docs/design.md#events-and-webhooks) for the
//! console's script. `EventSource` cannot send a bearer token, so the session (checked by
//! the guard) stands in for it; the filters, `Last-Event-ID` resumption and the per-replica
//! client limit are the API's.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::session::Session;
use super::ConsoleError;
use crate::events::FilterParams;
use crate::http::ApiQuery;
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
    crate::http::event_stream(State(s), headers, ApiQuery(params))
        .await
        .into_response()
}
