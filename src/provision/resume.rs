//! The `provision-resume` task: starts the provisioning retries that are due on the tenant
//! rows but that no replica started, because the replica that scheduled them stopped
//! (crashed, killed, redeployed) while waiting.
//!
//! ```text
//!  every RESUME_EVERY (2 s) ──► tenants `provisioning` whose `provision_retry_at` passed
//!                               LATE_BY (5 s) ago ──► start_after(tenant, attempts)
//!                          ──► external provisioners' requests past `expires_at` without a
//!                              callback ──► failed attempt (retried on the schedule)
//! ```
//!
//! The replica that recorded a failure waits for the retry itself and starts it on time,
//! so a retry is only overdue when that replica is gone (or its attempt outlasts
//! `LATE_BY`). Starting one twice is harmless: a replica already running the tenant's job
//! joins it, and across replicas the tenant's advisory lock lets one job work while the
//! other ends `Busy` without recording anything.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Provisioner;

/// How often overdue retries are looked for.
pub const RESUME_EVERY: Duration = Duration::from_secs(2);

/// How far past its time a retry must be before another replica starts it.
pub const LATE_BY: Duration = Duration::from_secs(5);

/// Overdue retries started per round (the job slots bound how many run at once anyway).
const PER_ROUND: i64 = 16;

impl Provisioner {
    /// Starts the job of every overdue retry (one round).
    pub async fn resume_due(self: &Arc<Self>) -> Result<usize, super::ProvisionError> {
        let due = self
            .registry
            .due_provisioning_retries(LATE_BY, PER_ROUND)
            .await
            .map_err(super::ProvisionError::Lookup)?;
        let mut started = 0;
        for d in due {
            let tenant = match self.registry.get_by_id(d.tenant_id).await {
                Ok(t) => t,
                // Deleted since: nothing to resume.
                Err(e) if !e.is_retryable() => continue,
                Err(e) => return Err(super::ProvisionError::Lookup(e)),
            };
            tracing::info!(slug = %tenant.slug, failed = d.attempts, "resuming a provisioning retry no replica started");
            drop(self.start_after(tenant, d.attempts));
            started += 1;
        }
        Ok(started)
    }
}

/// The `provision-resume` task: a round every [`RESUME_EVERY`] until `shutdown` fires.
pub async fn run(provisioner: Arc<Provisioner>, shutdown: CancellationToken) {
    if !provisioner.available() {
        // Nothing to resume, but a task returning before shutdown counts as failing.
        shutdown.cancelled().await;
        return;
    }
    loop {
        tokio::select! {
            r = provisioner.expire_requests() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retryable = e.is_retryable(), "could not look for expired provisioning requests");
                }
            }
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            r = provisioner.resume_due() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retryable = e.is_retryable(), "could not look for provisioning retries to resume");
                }
            }
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUME_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
