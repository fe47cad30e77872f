//! External provisioners: servers of `kind = "external"`, where a job of the platform's
//! own (a Kubernetes Job, a Terraform run, a cloud API call) creates the tenant's role and
//! database when drover asks, and reports back.
//!
//! ```text
//!  placed on an external server (create, retry, resume)
//!     └─► open_request: one transaction: earlier open requests superseded, event
//!         `provisioning_requested`, a `provision_requests` row (due now), retry schedule off
//!  provision-requests task (any replica, events/webhooks/provisioners.rs)
//!     └─► claim ─► token = HMAC(key, request id), its SHA-256 kept ─► signed POST to `url`
//!         (the webhook headers and signature; same X-Drover-Delivery on every retry)
//!  the job ─► POST /v1/tenants/{slug}/provisioning, Authorization: Bearer <token>
//!     ├ token unknown / spent / expired / superseded / another tenant's ─► 401, nothing changes
//!     ├ {"status":"failed"} ─► provisioning_error, retry on the schedule when retryable
//!     └ {"status":"succeeded", db_*} ─► ref in scope ─► log in ─► migrate ─► active
//!  expires_at passed without a callback (provision-resume round) ─► like a retryable failure
//! ```
//!
//! The token is derived, not stored: every send of one request carries the same token
//! (recomputed from the server's HMAC key and the request id), and the control DB keeps
//! only its SHA-256. Everything a callback needs is in the control DB, so any replica,
//! including one started after the request was sent, completes it.
//!
//! Deprovisioning a tenant of an external server (`DELETE …?drop_database=true`) is the
//! same exchange: `deleting`, a `deprovisioning_requested` request, and the callback's
//! `succeeded` finishes the delete (`failed` leaves it `deleting`, as an admin server's
//! failure does; the same DELETE asks again).
//!
//! Files: `requests.rs` (the table), `callback.rs` (what a callback does).

mod callback;
pub mod requests;

pub use callback::{CallbackBody, CallbackFailure, CallbackStatus};

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use super::servers::External;
use super::{JobResult, ProvisionError, Provisioner, Server};
use crate::registry::{Actor, Registry, Tenant, TenantStatus};
use requests::{Claimed, Operation, Request};

/// How long past its expiry a request whose token was spent is left to its callback (which
/// may be migrating the new database) before the sweep calls it expired.
const SETTLE: Duration = Duration::from_secs(15 * 60);

/// Requests expired per sweep round.
const EXPIRE_PER_ROUND: i64 = 32;

/// The callback token of request `id`: hex HMAC-SHA256 of the server's key over
/// `drover-callback.<id>`. Every send of the request carries the same one.
pub fn callback_token(key: &SecretString, id: Uuid) -> SecretString {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.expose_secret().as_bytes());
    let tag = ring::hmac::sign(&key, format!("drover-callback.{id}").as_bytes());
    SecretString::from(
        tag.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// The SHA-256 of a token: what the control DB keeps and looks tokens up by.
pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// The callback URL of a tenant on a server.
pub fn callback_url(server: &External, slug: &str) -> String {
    format!(
        "{}/v1/tenants/{slug}/provisioning",
        server.callback_base.trim_end_matches('/')
    )
}

/// The request types as the delivery's `X-Drover-Event` names them.
pub fn event_type(op: Operation) -> &'static str {
    match op {
        Operation::Provision => "tenant.provisioning_requested",
        Operation::Deprovision => "tenant.deprovisioning_requested",
    }
}

/// A control-DB failure, as the registry's (retryable) lookup error.
fn lookup(e: tokio_postgres::Error) -> ProvisionError {
    ProvisionError::Lookup(e.into())
}

impl Provisioner {
    /// A control-DB connection.
    async fn control(&self) -> Result<deadpool_postgres::Object, ProvisionError> {
        self.pool
            .get()
            .await
            .map_err(|e| ProvisionError::Lookup(e.into()))
    }

    /// Whether the tenant lives on an external server.
    pub fn is_external(&self, t: &Tenant) -> bool {
        self.server_for(t).is_ok_and(|s| s.external().is_some())
    }

    /// The external server named `name`, with its provisioner.
    pub fn external_server(&self, name: &str) -> Result<(&Server, &External), ProvisionError> {
        let s = self.named(name)?;
        let e = s.external().ok_or_else(|| {
            ProvisionError::Config(format!("server {name:?} is not an external provisioner"))
        })?;
        Ok((s, e))
    }

    /// `start_after` for a tenant on an external server: asks the provisioner (the job
    /// finishes when the request is written; the tenant becomes active on the callback).
    pub(super) fn request_provisioning(
        self: &Arc<Self>,
        tenant: Tenant,
        failed: u32,
    ) -> watch::Receiver<Option<JobResult>> {
        let (tx, rx) = watch::channel(None);
        let me = self.clone();
        self.jobs.spawn(async move {
            let result = me.open_request(&tenant, Operation::Provision, failed).await;
            if let Err(e) = &result {
                tracing::warn!(slug = %tenant.slug, error = %e, "could not ask the external provisioner");
                let schedule = crate::registry::RetrySchedule {
                    attempts: failed + 1,
                    retry_in: (e.is_retryable() && failed < me.retries)
                        .then(|| super::job::retry_delay(me.retry_backoff, failed + 1)),
                };
                me.record_failure(&tenant, e, schedule).await;
            }
            let _ = tx.send(Some(result.map_err(Arc::new)));
        });
        rx
    }

    /// `DELETE …?drop_database=true` on an external server: `deleting`, then the request.
    pub(super) async fn request_deprovisioning(
        &self,
        t: &Tenant,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let server = t.server.clone().unwrap_or_default();
        self.registry
            .begin_delete(
                &t.slug,
                json!({ "drop_database": true, "server": server }),
                actor,
            )
            .await
            .map_err(ProvisionError::Lookup)?;
        self.open_request(t, Operation::Deprovision, 0).await
    }

    /// Writes a request (superseding the tenant's open ones) with its event, in one
    /// transaction; the tenant must be `provisioning` (or `deleting` to deprovision).
    async fn open_request(
        &self,
        tenant: &Tenant,
        op: Operation,
        failed: u32,
    ) -> Result<Tenant, ProvisionError> {
        let server = self.server_for(tenant)?;
        let (server, ext) = self.external_server(&server.name)?;
        let mut client = self.control().await?;
        let tx = client.transaction().await.map_err(lookup)?;
        let t = Registry::hold_for_request(&*tx, tenant.id).await?;
        let wanted = match op {
            Operation::Provision => TenantStatus::Provisioning,
            Operation::Deprovision => TenantStatus::Deleting,
        };
        if t.status != wanted {
            return Err(ProvisionError::Lookup(
                crate::registry::RegistryError::IllegalTransition {
                    slug: t.slug.clone(),
                    verb: op.as_str(),
                    from: t.status.to_string(),
                },
            ));
        }
        requests::supersede(&*tx, t.id).await?;
        let id = requests::new_id(&*tx).await?;
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(ext.timeout).unwrap_or(chrono::Duration::MAX);
        let payload = json!({
            "server": server.name, "request_id": id, "attempt": failed + 1,
            "expires_at": expires_at, "db_name": t.db_name, "db_user": t.db_user,
            "db_secret_ref": t.db_secret_ref, "labels": t.labels,
        });
        let kind = match op {
            Operation::Provision => "provisioning_requested",
            Operation::Deprovision => "deprovisioning_requested",
        };
        let event_id =
            crate::registry::record_event_id(&*tx, t.id, kind, &self.actor, payload).await?;
        let request = Request {
            id,
            tenant_id: t.id,
            operation: op,
            server: server.name.clone(),
            event_id,
            attempt: failed + 1,
            expires_at,
        };
        requests::insert(&*tx, &request).await?;
        tx.commit().await.map_err(lookup)?;
        tracing::info!(slug = %t.slug, server = %server.name, request = %id, operation = op.as_str(),
            "asked the external provisioner");
        Ok(self.registry.get_by_id(t.id).await.unwrap_or(t))
    }

    /// Claims requests due to be sent (the `provision-requests` task's step).
    pub async fn claim_requests(
        &self,
        claimer: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Claimed>, ProvisionError> {
        let client = self.control().await?;
        Ok(requests::claim(&**client, claimer, limit, lease).await?)
    }

    /// Keeps the hash of the token a send carries.
    pub async fn token_sent(&self, id: Uuid, token: &SecretString) -> Result<(), ProvisionError> {
        let client = self.control().await?;
        Ok(requests::set_token_hash(&**client, id, &token_hash(token.expose_secret())).await?)
    }

    /// Records how a send ended (`error` None: the provisioner answered 2xx).
    pub async fn request_sent(
        &self,
        claimed: &Claimed,
        status: Option<u16>,
        error: Option<&str>,
    ) -> Result<(), ProvisionError> {
        let client = self.control().await?;
        Ok(requests::record_send(&**client, claimed, status, error).await?)
    }

    /// Ends the requests whose time ran out without a callback: a provisioning one fails
    /// the attempt (retryable, so it is asked again on the schedule); a deprovisioning
    /// one writes an `error` event (the same DELETE asks again).
    pub async fn expire_requests(self: &Arc<Self>) -> Result<usize, ProvisionError> {
        let expired = {
            let client = self.control().await?;
            requests::expire(&**client, SETTLE, EXPIRE_PER_ROUND).await?
        };
        for r in &expired {
            let Ok(t) = self.registry.get_by_id(r.tenant_id).await else {
                continue;
            };
            let timeout = self
                .external_server(&r.server)
                .map(|(_, e)| format!("{}s", e.timeout.as_secs()))
                .unwrap_or_else(|_| "its timeout".into());
            let e = ProvisionError::NoCallback {
                server: r.server.clone(),
                timeout,
            };
            tracing::warn!(slug = %t.slug, request = %r.id, "external provisioner did not call back in time");
            self.failed(&t, r, &e).await;
        }
        Ok(expired.len())
    }

    /// A request that failed (reported, or expired): for provisioning, the tenant's
    /// `provisioning_error` and, when retryable and retries remain, a new request after the
    /// backoff; for deprovisioning, an `error` event.
    async fn failed(self: &Arc<Self>, t: &Tenant, r: &Request, e: &ProvisionError) {
        match r.operation {
            Operation::Deprovision if t.status == TenantStatus::Deleting => {
                let payload = json!({
                    "operation": "deprovision", "step": e.step(), "error": e.to_string(),
                    "retryable": e.is_retryable(), "request_id": r.id,
                });
                if let Err(re) = self.registry.record_error(t.id, &self.actor, payload).await {
                    tracing::error!(error = %re, "could not record the deprovisioning error");
                }
            }
            Operation::Provision if t.status == TenantStatus::Provisioning => {
                let again = e.is_retryable() && r.attempt <= self.retries;
                let delay = super::job::retry_delay(self.retry_backoff, r.attempt);
                let schedule = crate::registry::RetrySchedule {
                    attempts: r.attempt,
                    retry_in: again.then_some(delay),
                };
                self.record_failure(t, e, schedule).await;
                self.metrics
                    .provisioning_total
                    .with_label_values(&["failed"])
                    .inc();
                if again {
                    // This replica asks again on time; should it stop, `provision-resume`
                    // finds the schedule on the tenant row.
                    let (me, t, attempts) = (self.clone(), t.clone(), r.attempt);
                    self.jobs.spawn(async move {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = me.cancel.cancelled() => return,
                        }
                        if let Ok(now) = me.registry.get_by_id(t.id).await {
                            if now.status == TenantStatus::Provisioning {
                                drop(me.start_after(now, attempts));
                            }
                        }
                    });
                }
            }
            // Deleted or activated meanwhile: nothing to record.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_s_token_is_the_same_on_every_send_and_differs_between_requests() {
        let key = SecretString::from("k");
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);

        let first = callback_token(&key, a);
        let again = callback_token(&key, a);
        let other = callback_token(&key, b);

        assert_eq!(first.expose_secret(), again.expose_secret());
        assert_ne!(first.expose_secret(), other.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        assert_ne!(
            first.expose_secret(),
            callback_token(&SecretString::from("other"), a).expose_secret()
        );
    }

    #[test]
    fn only_the_token_s_sha256_is_kept() {
        // Known answer: sha256("abc").
        let h = token_hash("abc");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
