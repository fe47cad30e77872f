//! `/v1/events`, `/v1/events/stream` and `/v1/webhooks`.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;

use super::auth::NamedToken;
use super::openapi as doc;
use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::access::{Lookup, Principal, Role};
use crate::events::feed::{self, Page};
use crate::events::stream::{self, ClientGuard, Holder};
use crate::events::webhooks::outbox::Outcome;
use crate::events::webhooks::{self, TestResult, WebhookRequest, WebhookView};
use crate::events::{Event, EventsError, FilterParams};
use crate::state::AppState;

/// How often an idle stream sends a comment so proxies keep it open.
/// The `Last-Event-ID` header of `GET /v1/events/stream`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct LastEventId {
    /// Resume after this event id (sent by EventSource clients on reconnect): no gap, no
    /// duplicate.
    #[param(rename = "Last-Event-ID", pattern = "^[0-9]+$")]
    last_event_id: Option<String>,
}

const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// `GET /v1/events`: the feed, newest first.
#[utoipa::path(
    get, path = "/events", tag = "events", operation_id = "listEvents",
    summary = "The fleet's events, newest first",
    description = "Tenant and wave events as one feed with dotted types (`tenant.created`, `tenant.migrated`, ..., \
        and `wave.<type>` for every timeline type). Filters combine with AND; pages are keyset-paginated by \
        (created_at, id).",
    params(FilterParams),
    responses((status = 200, description = "A page of events.", body = Page), (status = 422, response = doc::E422))
)]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FilterParams>,
) -> Result<Json<Page>, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    Ok(Json(feed::list(&**client, &q).await?))
}

/// `GET /v1/events/stream`: Server-Sent Events from now, or after `Last-Event-ID`.
#[utoipa::path(
    get, path = "/events/stream", tag = "events", operation_id = "streamEvents",
    summary = "New events as Server-Sent Events",
    description = "`text/event-stream`: one message per event, `id:` the event id, `event:` its type, `data:` the \
        event as JSON; a `heartbeat` comment every 15 s. `Last-Event-ID` resumes with no gap and no duplicate. \
        Same filters as the feed (no `limit` or `cursor`). The stream ends within 2 s of its token's revocation or \
        expiry. 429 `too_many_streams_for_token` when the token holds `stream_max_per_token` streams on this \
        replica already; 503 `too_many_streams` when this replica serves `stream_max_clients` already.",
    params(FilterParams, LastEventId),
    responses((status = 200, description = "The stream (ends only when its token is revoked or expires).", body = String, content_type = "text/event-stream"),
        (status = 422, response = doc::E422), (status = 429, response = doc::E429))
)]
pub async fn stream(
    State(s): State<AppState>,
    Extension(principal): Extension<Principal>,
    named: Option<Extension<NamedToken>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FilterParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let holder = TokenHolder {
        state: s.clone(),
        hash: named.map(|Extension(NamedToken(h))| h),
        identity: principal.identity.clone(),
    };
    open_stream(s, headers, q, &principal.identity, holder).await
}

/// A bearer token holding a stream: a named one must still be in the token list, unexpired
/// and the same token (the configured root token cannot be revoked).
struct TokenHolder {
    state: AppState,
    hash: Option<[u8; 32]>,
    identity: String,
}

impl Holder for TokenHolder {
    async fn still_allowed(&mut self) -> bool {
        let Some(hash) = self.hash else { return true };
        match self.state.tokens.authenticate_hash(&hash).await {
            Ok(Lookup::Valid(p)) => p.identity == self.identity,
            Ok(Lookup::Expired | Lookup::Unknown) => false,
            Err(_) => true,
        }
    }
}

/// The stream behind `/v1/events/stream` and the console's `/ui/stream`: `who` is the
/// token's identity (its stream count), `holder` what is checked again while it lasts.
pub async fn open_stream(
    s: AppState,
    headers: HeaderMap,
    q: FilterParams,
    who: &str,
    holder: impl Holder,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    if q.cursor.is_some() || q.limit.is_some() {
        return Err(EventsError::Invalid {
            field: "cursor",
            message: "the stream takes no cursor or limit; resume with the Last-Event-ID header"
                .into(),
        }
        .into());
    }
    let filter = q.filter()?;
    let last = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .ok_or(EventsError::Invalid {
                    field: "Last-Event-ID",
                    message: "expected an event id".into(),
                })
        })
        .transpose()?;
    let ev = &s.events;
    let guard = ClientGuard::acquire(ev, who, s.metrics.event_stream_clients.clone())?;
    let start = {
        let client = ev.pool.get().await.map_err(EventsError::from)?;
        match last {
            Some(id) => stream::position_of(&**client, id).await?,
            None => stream::start(&**client).await?,
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(stream::BUFFER);
    tokio::spawn(stream::produce(
        ev.pool.clone(),
        ev.wake.clone(),
        filter,
        start,
        tx,
        ev.stop.clone(),
        guard,
        holder,
    ));
    let body =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|m| (Ok(m), rx)) },
        );
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}

/// `POST /v1/webhooks` → 201.
#[utoipa::path(
    post, path = "/webhooks", tag = "events", operation_id = "createWebhook",
    summary = "Subscribe a URL to events",
    description = "Each matching event is POSTed to `url` with `X-Drover-Event`, `X-Drover-Delivery`, \
        `X-Drover-Timestamp` and `X-Drover-Signature: sha256=<hex HMAC-SHA256(key, timestamp + \".\" + body)>`, \
        the key read through `secret_ref` (never stored). Deliveries are retried with backoff until \
        `webhook_give_up_after`, then `dead`. 422 for a URL that is not http(s), an unknown event type, or a \
        secret reference that is malformed, names drover's own `DROVER_*` variables or cannot be read; 409 when \
        the name is taken.",
    params(doc::ActorHeader),
    request_body(content = WebhookRequest, example = json!({
        "name": "ops", "url": "https://hooks.example.com/drover", "events": ["tenant.*", "wave.halted"],
        "secret_ref": "file:webhooks/ops", "format": "json"
    })),
    responses((status = 201, description = "The webhook.", body = WebhookView,
            links(("GetWebhook" = (operation_id = "getWebhook", parameters(("name" = "$response.body#/name")))), ("DeleteWebhook" = (operation_id = "deleteWebhook", parameters(("name" = "$response.body#/name")))), ("TestWebhook" = (operation_id = "testWebhook", parameters(("name" = "$response.body#/name")))))), (status = 409, response = doc::E409))
)]
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let mut client = s.pool.get().await.map_err(EventsError::from)?;
    let tx = client.transaction().await.map_err(EventsError::from)?;
    let view = webhooks::create(
        &*tx,
        &s.events.secrets,
        &s.config.ref_scope,
        &s.events.sender.http.policy,
        &req,
        actor.as_str(),
        actor.behalf(),
    )
    .await?;
    tx.commit().await.map_err(EventsError::from)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/webhooks`.
#[utoipa::path(
    get, path = "/webhooks", tag = "events", operation_id = "listWebhooks",
    summary = "Every webhook with its delivery counts",
    responses((status = 200, description = "Webhooks by name.", body = Vec<WebhookView>))
)]
pub async fn list_webhooks(
    State(s): State<AppState>,
    Extension(reader): Extension<Principal>,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    let hooks = webhooks::list(&**client).await?;
    Ok(Json(hooks.into_iter().map(|h| shown(h, &reader)).collect()))
}

/// A receiver URL can be its credential (Slack's are): admins, who may create and delete
/// subscriptions, see it whole; everyone else as the console shows it.
fn shown(h: WebhookView, reader: &Principal) -> WebhookView {
    if reader.role == Role::Admin {
        h
    } else {
        h.redacted()
    }
}

/// `GET /v1/webhooks/{name}`.
#[utoipa::path(
    get, path = "/webhooks/{name}", tag = "events", operation_id = "getWebhook",
    summary = "One webhook, its delivery counts and last error",
    params(doc::WebhookName),
    responses((status = 200, description = "The webhook.", body = WebhookView), (status = 404, response = doc::E404))
)]
pub async fn get(
    State(s): State<AppState>,
    Extension(reader): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    Ok(Json(shown(webhooks::get(&**client, &name).await?, &reader)))
}

/// `DELETE /v1/webhooks/{name}` → 204.
#[utoipa::path(
    delete, path = "/webhooks/{name}", tag = "events", operation_id = "deleteWebhook",
    summary = "Delete a webhook and its pending deliveries",
    params(doc::WebhookName, doc::ActorHeader),
    responses((status = 204, description = "Deleted."), (status = 404, response = doc::E404), (status = 422, response = doc::E422))
)]
pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut client = s.pool.get().await.map_err(EventsError::from)?;
    let tx = client.transaction().await.map_err(EventsError::from)?;
    webhooks::delete(&*tx, &name, actor.as_str(), actor.behalf()).await?;
    tx.commit().await.map_err(EventsError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhooks/{name}/test`: sends a `webhook.test` event now (not through the
/// outbox, never retried) and reports what the receiver answered.
#[utoipa::path(
    post, path = "/webhooks/{name}/test", tag = "events", operation_id = "testWebhook",
    summary = "Send a `webhook.test` event now",
    description = "Signed like any delivery, sent at once (not through the outbox, never retried); the answer says \
        what the receiver did.",
    params(doc::WebhookName, doc::ActorHeader),
    responses((status = 200, description = "What the receiver answered.", body = TestResult),
        (status = 404, response = doc::E404), (status = 422, response = doc::E422))
)]
pub async fn test(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<TestResult>, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    let hook = webhooks::get(&**client, &name).await?;
    let delivery_id: uuid::Uuid = client
        .query_one("SELECT gen_random_uuid() AS id", &[])
        .await
        .map_err(EventsError::from)?
        .try_get("id")
        .map_err(EventsError::from)?;
    drop(client);
    let event = Event {
        id: 0,
        event_type: "webhook.test".into(),
        tenant: None,
        wave_id: None,
        actor: actor.as_str().to_string(),
        payload: serde_json::json!({ "webhook": hook.name }),
        created_at: chrono::Utc::now(),
    };
    let reference = hook
        .secret_ref
        .parse()
        .map_err(|e: crate::secrets::SecretRefError| EventsError::Invalid {
            field: "secret_ref",
            message: e.to_string(),
        })?;
    let body = webhooks::body(&event, delivery_id, &hook.format);
    let outcome = match (s.events.secrets.read(&reference).await, body) {
        (Ok(secret), Ok(body)) => {
            s.events
                .sender
                .post(&hook.url, "webhook.test", delivery_id, &secret, body)
                .await
        }
        (Err(e), _) => Outcome::Failed {
            status: None,
            error: e.to_string(),
        },
        (_, Err(e)) => Outcome::Failed {
            status: None,
            error: e.to_string(),
        },
    };
    Ok(Json(match outcome {
        Outcome::Delivered { status } => TestResult {
            delivery_id,
            ok: true,
            status: Some(status),
            error: None,
        },
        Outcome::Failed { status, error } => TestResult {
            delivery_id,
            ok: false,
            status,
            error: Some(error),
        },
        Outcome::Refused { error } => TestResult {
            delivery_id,
            ok: false,
            status: None,
            error: Some(error),
        },
    }))
}
