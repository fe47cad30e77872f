//! The `provision-requests` task: sends external provisioners their requests
//! (`provision_requests`, owned by [`crate::provision::external`]), on every replica, with
//! the webhook machinery: the same body shape (the request's event in the `json` format),
//! the same `X-Drover-*` headers and HMAC signature, the same target policy and client.
//!
//! ```text
//!  loop: claim due requests (SKIP LOCKED, lease = webhook timeout + margin)
//!        ─► per request: HMAC key (webhook scope) ─► token = HMAC(key, id), hash kept
//!        ─► body = event + delivery_id + callback {url, token, expires_at} ─► signed POST
//!        ─► record: delivered | due again (doubling, capped at a minute)
//!  wakes: a `drover_events` notification (a request is written with its event), or every second
//! ```
//!
//! The request is sent until the provisioner answers 2xx or the request expires; every
//! send carries the same delivery id and the same token.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::deliver::Sender;
use super::outbox::Outcome;
use crate::events::feed;
use crate::events::notify::Wake;
use crate::provision::external::{self, requests::Claimed};
use crate::provision::Provisioner;
use crate::secrets::SecretRef;

/// Requests in flight at once on one replica.
const IN_FLIGHT: usize = 16;
/// Longest wait between two claims when nothing wakes the task.
const POLL: Duration = Duration::from_secs(1);

/// Sends one claimed request and records the outcome.
async fn send(sender: &Sender, provisioner: &Provisioner, claimed: Claimed) {
    let r = &claimed.request;
    let outcome = match prepare(sender, provisioner, &claimed).await {
        Ok((url, body, key)) => {
            let kind = external::event_type(r.operation);
            sender.post(&url, kind, r.id, &key, body).await
        }
        Err(error) => Outcome::Failed {
            status: None,
            error,
        },
    };
    let (status, error) = match &outcome {
        Outcome::Delivered { status } => (Some(*status), None),
        Outcome::Failed { status, error } => (*status, Some(error.as_str())),
        Outcome::Refused { error } => (None, Some(error.as_str())),
    };
    if let Some(e) = error {
        tracing::warn!(request = %r.id, server = %r.server, error = %e, "sending a provisioning request failed; it is sent again");
    }
    sender
        .metrics
        .webhook_deliveries_total
        .with_label_values(&[if error.is_none() {
            "delivered"
        } else {
            "failed"
        }])
        .inc();
    if let Err(e) = provisioner.request_sent(&claimed, status, error).await {
        tracing::warn!(request = %r.id, error = %e, "could not record a provisioning request's send");
    }
}

/// The URL, the signed body and the key, or why the request cannot be sent now.
async fn prepare(
    sender: &Sender,
    provisioner: &Provisioner,
    claimed: &Claimed,
) -> Result<(String, Vec<u8>, secrecy::SecretString), String> {
    let r = &claimed.request;
    let (_, server) = provisioner
        .external_server(&r.server)
        .map_err(|e| e.to_string())?;
    let key_ref: &SecretRef = &server.secret_ref;
    sender
        .scope
        .check_webhook(key_ref)
        .map_err(|rule| format!("secret {key_ref} refused: {rule}"))?;
    let key = sender
        .secrets
        .read(key_ref)
        .await
        .map_err(|e| e.to_string())?;
    let client = sender.pool.get().await.map_err(|e| e.to_string())?;
    let event = feed::get(&**client, r.event_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("event {} no longer exists", r.event_id))?;
    drop(client);
    let token = external::callback_token(&key, r.id);
    provisioner
        .token_sent(r.id, &token)
        .await
        .map_err(|e| e.to_string())?;
    let slug = event.tenant.clone().unwrap_or_default();
    let mut body = serde_json::to_value(&event).map_err(|e| e.to_string())?;
    body["delivery_id"] = json!(r.id);
    body["callback"] = json!({
        "url": external::callback_url(server, &slug),
        "token": secrecy::ExposeSecret::expose_secret(&token),
        "expires_at": r.expires_at,
    });
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    Ok((server.url.clone(), body, key))
}

/// Runs until `shutdown` fires; sends in flight are dropped then (the lease runs out and
/// another replica sends them again, with the same id and token).
pub async fn run(
    sender: Arc<Sender>,
    provisioner: Arc<Provisioner>,
    wake: Wake,
    shutdown: CancellationToken,
) {
    if !provisioner.servers().iter().any(|s| s.external().is_some()) {
        shutdown.cancelled().await;
        return;
    }
    let mut woken = wake.subscribe();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let lease = sender.timeout + Duration::from_secs(5);
    loop {
        let free = IN_FLIGHT.saturating_sub(tasks.len());
        if free > 0 {
            match provisioner
                .claim_requests(&sender.instance, free as i64, lease)
                .await
            {
                Ok(claims) => {
                    for c in claims {
                        let (s, p) = (sender.clone(), provisioner.clone());
                        tasks.spawn(async move { send(&s, &p, c).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming provisioning requests failed"),
            }
        }
        tokio::select! {
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = woken.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tasks.abort_all();
}
