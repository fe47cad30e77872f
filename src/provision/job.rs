//! The provisioning job: one background task per tenant in `provisioning`, bounded per
//! replica, retried with backoff on retryable failures; its steps are those of the module
//! diagram (lock, secret, role, database, migrate, activate).

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use super::{admin, JobResult, ProvisionError, Provisioner};
use crate::migrate::{tenant, MigrateError, RunLimits};
use crate::registry::TenantDb;
use crate::registry::{DbIdent, ProvisioningError, RetrySchedule, Tenant, TenantStatus};
use crate::secrets::{SecretError, SecretRef};

/// Longest retry delay, however many retries are configured.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

impl Provisioner {
    /// Starts (or joins) the provisioning job of a tenant in `provisioning`; the receiver
    /// turns `Some` when it ends.
    pub fn start(self: &Arc<Self>, tenant: Tenant) -> watch::Receiver<Option<JobResult>> {
        self.start_after(tenant, 0)
    }

    /// Starts (or joins) the job of a tenant whose earlier job failed `failed` attempts
    /// and stopped with a retry due (`provision-resume`): it continues the count, so
    /// `provision_retries` bounds the attempts whichever replicas make them.
    pub fn start_after(
        self: &Arc<Self>,
        tenant: Tenant,
        failed: u32,
    ) -> watch::Receiver<Option<JobResult>> {
        if self.is_external(&tenant) {
            return self.request_provisioning(tenant, failed);
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = running.get(&tenant.id) {
            if rx.borrow().is_none() {
                return rx.clone();
            }
        }
        let (tx, rx) = watch::channel(None);
        running.insert(tenant.id, rx.clone());
        drop(running);
        let me = self.clone();
        let span = tracing::info_span!("task", name = "provision", slug = %tenant.slug);
        self.jobs.spawn(
            async move {
                let id = tenant.id;
                let result = tokio::select! {
                    r = me.job(tenant, failed) => r,
                    _ = me.cancel.cancelled() => Err(ProvisionError::Cancelled),
                };
                let outcome = if result.is_ok() {
                    "succeeded"
                } else {
                    "failed"
                };
                me.metrics
                    .provisioning_total
                    .with_label_values(&[outcome])
                    .inc();
                let _ = tx.send(Some(result.map_err(Arc::new)));
                me.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
            .instrument(span),
        );
        rx
    }

    /// Runs the steps, and again after a retryable failure (bounded, with backoff). The
    /// slot is given back while waiting, so a server that is down does not block others.
    /// Each failure records when the next attempt is due on the tenant: this replica
    /// waits for it, and should it stop, another resumes (`resume`).
    async fn job(&self, tenant: Tenant, failed: u32) -> Result<Tenant, ProvisionError> {
        let started = Instant::now();
        let mut attempt: u32 = failed;
        loop {
            attempt += 1;
            let result = {
                let _slot = self
                    .slots
                    .acquire()
                    .await
                    .map_err(|_| ProvisionError::Cancelled)?;
                self.provision(&tenant, started).await
            };
            let Err(e) = result else {
                return result;
            };
            // Busy: another runner has it, and will record its own outcome.
            let again =
                e.is_retryable() && !matches!(e, ProvisionError::Busy) && attempt <= self.retries;
            tracing::warn!(step = e.step(), error = %e, attempt, retry = again, "provisioning failed");
            let delay = retry_delay(self.retry_backoff, attempt);
            if !matches!(e, ProvisionError::Busy) {
                let schedule = RetrySchedule {
                    attempts: attempt,
                    retry_in: again.then_some(delay),
                };
                self.record_failure(&tenant, &e, schedule).await;
            }
            if !again {
                return Err(e);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The `error` event and the tenant's `provisioning_error`, together.
    pub(super) async fn record_failure(
        &self,
        tenant: &Tenant,
        e: &ProvisionError,
        schedule: RetrySchedule,
    ) {
        let payload = json!({
            "operation": "provision", "step": e.step(),
            "error": e.to_string(), "retryable": e.is_retryable(), "attempt": schedule.attempts,
        });
        let error = ProvisioningError {
            step: e.step().to_string(),
            message: e.to_string(),
            retryable: e.is_retryable(),
            at: chrono::Utc::now(),
        };
        if let Err(re) = self
            .registry
            .record_provisioning_error(tenant.id, &self.actor, payload, &error, schedule)
            .await
        {
            tracing::error!(error = %re, "could not record the provisioning error");
        }
    }

    /// Every step, in order (see the module diagram).
    async fn provision(&self, queued: &Tenant, started: Instant) -> Result<Tenant, ProvisionError> {
        let server = self.server_for(queued)?;
        let mut admin = self.admin_client(server).await?;
        admin::lock(&admin, queued.id).await?;
        // The job may have waited for a slot or the lock: work from the row as it is now,
        // and not at all if the tenant was deleted or activated meanwhile.
        let t = &self
            .registry
            .get_by_id(queued.id)
            .await
            .map_err(ProvisionError::Lookup)?;
        if t.status != TenantStatus::Provisioning {
            return Err(ProvisionError::Lookup(
                crate::registry::RegistryError::IllegalTransition {
                    slug: t.slug.clone(),
                    verb: "provision",
                    from: t.status.to_string(),
                },
            ));
        }
        let role = DbIdent::parse("db_user", &t.db_user).map_err(ProvisionError::invalid)?;
        let db = DbIdent::parse("db_name", &t.db_name).map_err(ProvisionError::invalid)?;
        let secret_ref = self.writable_ref(t).await?;
        // Refuse somebody else's role or database before a password is written anywhere.
        admin::refuse_foreign(&admin, &db, &role, t.id).await?;
        let password = self.password(t, &secret_ref).await?;
        let role_created = admin::ensure_role(&mut admin, &role, &password, t.id).await?;
        let db_created = admin::ensure_database(&admin, &db, &role, t.id).await?;
        // The admin connection (and its lock) stays open through the migration, so a
        // second runner cannot start until this one is done.
        let outcome = self.migrate(t, password).await?;
        let payload = json!({
            "version": outcome.to, "role": role.as_str(), "database": db.as_str(),
            "role_created": role_created, "database_created": db_created,
            "duration_ms": started.elapsed().as_millis() as u64,
        });
        let finished = self
            .registry
            .finish_provisioning(
                t.id,
                crate::registry::Reached {
                    from: outcome.from,
                    to: outcome.to,
                    applied: &outcome.applied,
                },
                payload,
                &self.actor,
            )
            .await;
        drop(admin);
        let tenant = finished.map_err(|e| {
            // Deleted (or activated by hand) while the job ran: what it built stays, and
            // must not stay unnoticed.
            tracing::error!(slug = %t.slug, role = role.as_str(), database = db.as_str(), error = %e,
                "provisioning finished for a tenant that changed meanwhile; its role and database are left in place");
            ProvisionError::Registry(format!(
                "{e}; role {:?} and database {:?} were created and are left in place",
                role.as_str(),
                db.as_str()
            ))
        })?;
        tracing::info!(version = ?outcome.to, ms = started.elapsed().as_millis() as u64, "tenant provisioned");
        Ok(tenant)
    }

    /// The tenant's secret reference, if drover may write a password behind it: parsed,
    /// and not shared with another live tenant (whose password it would replace).
    async fn writable_ref(&self, t: &Tenant) -> Result<SecretRef, ProvisionError> {
        let r: SecretRef =
            t.db_secret_ref
                .parse()
                .map_err(
                    |e: crate::secrets::SecretRefError| ProvisionError::Invalid {
                        field: "db_secret_ref",
                        message: e.to_string(),
                    },
                )?;
        let shared = self
            .registry
            .secret_ref_shared(&t.db_secret_ref, Some(t.id))
            .await
            .map_err(ProvisionError::Lookup)?;
        if shared {
            return Err(ProvisionError::Invalid {
                field: "db_secret_ref",
                message: "another live tenant uses this secret reference; a provisioned tenant needs its own".into(),
            });
        }
        Ok(r)
    }

    /// The password already behind the ref (an earlier attempt's, or one an operator put
    /// there), else a new one written there, and remembered on the tenant's row as the one
    /// secret deprovisioning may remove.
    async fn password(&self, t: &Tenant, r: &SecretRef) -> Result<SecretString, ProvisionError> {
        match self.secrets.read(r).await {
            Ok(existing) if !existing.expose_secret().is_empty() => return Ok(existing),
            Ok(_) | Err(SecretError::NotFound { .. }) => {}
            Err(e) => return Err(ProvisionError::Secret(e)),
        }
        let password = generate_password()?;
        // Remembered before the write: nothing was behind the ref, so whatever is there
        // after a crash between the two is ours; remembered after, a crash would leave
        // drover's own password behind for good.
        self.registry
            .record_secret_written(t.id, &r.to_string())
            .await
            .map_err(ProvisionError::Lookup)?;
        self.secrets
            .write(r, &password)
            .await
            .map_err(ProvisionError::Secret)?;
        self.resolver.forget_secret(&r.to_string());
        Ok(password)
    }

    pub(super) async fn migrate(
        &self,
        t: &Tenant,
        password: SecretString,
    ) -> Result<tenant::RunOutcome, ProvisionError> {
        let set = self.catalog.newest().await.map_err(|e| {
            // A control-DB hiccup is retried like any connection failure; a broken
            // directory needs a person.
            if e.is_retryable() {
                ProvisionError::Migrate(MigrateError::Other(e.to_string()))
            } else {
                ProvisionError::Migrations(e.to_string())
            }
        })?;
        let limits = RunLimits {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(600),
            lock_wait: self.lock_wait,
            connect_timeout: Duration::from_secs(5),
        };
        let Some(target) = set.latest() else {
            return Ok(tenant::RunOutcome {
                from: None,
                to: None,
                applied: Vec::new(),
                lock_wait: Duration::ZERO,
            });
        };
        let (set, limits) = (&set, &limits);
        self.connector
            .open(&TenantDb::from(t), Some(password), |conn| async move {
                tenant::run(&conn, set, target, limits, |_| {}).await
            })
            .await
            .map_err(ProvisionError::Migrate)
    }
}

/// The wait before retry `attempt` (1-based): `first`, doubled each time, capped.
pub(super) fn retry_delay(first: Duration, attempt: u32) -> Duration {
    first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_RETRY_DELAY)
}
/// 32 random bytes as 43 URL-safe base64 characters (256 bits): safe in a DSN, a shell
/// and a YAML file without quoting.
fn generate_password() -> Result<SecretString, ProvisionError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| ProvisionError::Config(format!("no randomness source (/dev/urandom): {e}")))?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(43);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    bytes.fill(0);
    Ok(SecretString::from(out))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_url_safe_and_different() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();

        assert_eq!(a.expose_secret().len(), 43);
        assert!(a
            .expose_secret()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn retry_delays_double_and_stop_growing() {
        let first = Duration::from_secs(2);

        assert_eq!(retry_delay(first, 1), Duration::from_secs(2));
        assert_eq!(retry_delay(first, 3), Duration::from_secs(8));
        assert_eq!(retry_delay(first, 40), MAX_RETRY_DELAY);
    }
}
