//! `/v1/events`, `/v1/events/stream` and `/v1/webhooks`.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;

use super::{ApiError, ApiJson, ApiQuery, Caller};
use crate::app::AppState;
use crate::events::feed::{self, Page};
use crate::events::stream::{self, ClientGuard};
use crate::events::webhooks::{self, TestResult, WebhookRequest, WebhookView};
use crate::events::{Event, EventsError, FilterParams};

/// How often an idle stream sends a comment so proxies keep it open.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// `GET /v1/events`: the feed, newest first.
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FilterParams>,
) -> Result<Json<Page>, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    Ok(Json(feed::list(&**client, &q).await?))
}

/// `GET /v1/events/stream`: Server-Sent Events from now, or after `Last-Event-ID`.
pub async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FilterParams>,
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
    let guard = ClientGuard::acquire(
        &ev.streams,
        ev.max_streams,
        s.metrics.event_stream_clients.clone(),
    )?;
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
    ));
    let body =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|m| (Ok(m), rx)) },
        );
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}

/// `POST /v1/webhooks` → 201.
pub async fn create(
    State(s): State<AppState>,
    Caller(actor): Caller,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    let view = webhooks::create(
        &**client,
        &s.events.secrets,
        &s.config.ref_scope,
        &req,
        actor.as_str(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/webhooks`.
pub async fn list_webhooks(State(s): State<AppState>) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    Ok(Json(webhooks::list(&**client).await?))
}

/// `GET /v1/webhooks/{name}`.
pub async fn get(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    Ok(Json(webhooks::get(&**client, &name).await?))
}

/// `DELETE /v1/webhooks/{name}` → 204.
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let client = s.pool.get().await.map_err(EventsError::from)?;
    webhooks::delete(&**client, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhooks/{name}/test`: sends a `webhook.test` event now (not through the
/// outbox, never retried) and reports what the receiver answered.
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
    let outcome = match s.events.secrets.read(&reference).await {
        Ok(secret) => {
            let body = webhooks::body(&event, delivery_id, hook.format);
            s.events
                .sender
                .post(&hook.url, "webhook.test", delivery_id, &secret, body)
                .await
        }
        Err(e) => crate::events::webhooks::outbox::Outcome::Failed {
            status: None,
            error: e.to_string(),
        },
    };
    use crate::events::webhooks::outbox::Outcome;
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
    }))
}
