//! Trials and other lifecycle deadlines, swept by the leader.
//!
//! ```text
//!  trial_ends_at - trial_warning_before ──► `trial_ending` {trial_ends_at}   (once per end)
//!  trial_ends_at passed, tenant active  ──► suspended, reason trial_expired
//!                                           + `suspended`, `trial_expired`  (one tx)
//!  PATCH trial_ends_at null (or later)  ──► a trial_expired suspension is lifted: `resumed`
//!  alias expires_at passed              ──► alias row removed (the slug is free again)
//! ```
//!
//! [`run`] is the `lifecycle-sweep` task: every [`EVERY`] while this replica leads, one
//! pass. Due tenants are claimed `FOR UPDATE SKIP LOCKED` in batches of [`BATCH`], and each
//! batch's changes commit together with their events, so a tenant is warned or suspended
//! exactly once even when a lease changes hands mid-pass. Resolution answers 423 with
//! `suspended_reason: trial_expired` from the next notification on.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{record_event, Actor, Registry, RegistryError};

/// The suspension reason of an expired trial.
pub const TRIAL_EXPIRED: &str = "trial_expired";
/// How often the leader sweeps: an expired trial is suspended within this (and a pass).
pub const EVERY: Duration = Duration::from_secs(5);
/// Tenants changed per transaction.
const BATCH: i64 = 100;

/// The `lifecycle-sweep` task: a pass every [`EVERY`] while `is_leader()`. A failed pass is
/// logged and tried again at the next tick.
pub async fn run(
    registry: Registry,
    actor: Actor,
    is_leader: impl Fn() -> bool,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        if !is_leader() {
            continue;
        }
        match registry.sweep(&actor).await {
            Ok(s) if s.warned + s.expired > 0 => {
                tracing::info!(warned = s.warned, expired = s.expired, "trials swept");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "lifecycle sweep failed"),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Swept {
    /// `trial_ending` warnings sent.
    pub warned: usize,
    /// Trials expired (tenants suspended).
    pub expired: usize,
}

impl Registry {
    /// One pass: warnings, expiries, then expired aliases.
    pub async fn sweep(&self, actor: &Actor) -> Result<Swept, RegistryError> {
        let mut swept = Swept::default();
        loop {
            let n = self.warn_batch(actor).await?;
            swept.warned += n;
            if n < BATCH as usize {
                break;
            }
        }
        loop {
            let n = self.expire_batch(actor).await?;
            swept.expired += n;
            if n < BATCH as usize {
                break;
            }
        }
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM control_plane.tenant_aliases WHERE expires_at <= now()",
                &[],
            )
            .await?;
        Ok(swept)
    }

    /// `trial_ending` for trials ending within `trial_warning_before`, once per end.
    async fn warn_batch(&self, actor: &Actor) -> Result<usize, RegistryError> {
        const DUE: &str = "SELECT id, trial_ends_at FROM control_plane.tenants \
             WHERE deleted_at IS NULL AND status IN ('active', 'provisioning') \
               AND trial_ends_at > now() AND trial_ends_at <= now() + make_interval(secs => $1) \
               AND trial_warned_for IS DISTINCT FROM trial_ends_at \
             ORDER BY trial_ends_at LIMIT $2 FOR UPDATE SKIP LOCKED";
        const MARK: &str =
            "UPDATE control_plane.tenants SET trial_warned_for = trial_ends_at WHERE id = $1";
        let before = self.lifecycle.trial_warning_before.as_secs_f64();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx.query(DUE, &[&before, &BATCH]).await?;
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let ends: chrono::DateTime<chrono::Utc> = row.try_get("trial_ends_at")?;
            tx.execute(MARK, &[&id]).await?;
            let payload = json!({ "trial_ends_at": ends });
            record_event(&*tx, id, "trial_ending", actor, payload).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Suspends active tenants whose trial has ended, with `suspended` and `trial_expired`.
    async fn expire_batch(&self, actor: &Actor) -> Result<usize, RegistryError> {
        const DUE: &str = "SELECT id, trial_ends_at FROM control_plane.tenants \
             WHERE deleted_at IS NULL AND status = 'active' AND trial_ends_at <= now() \
             ORDER BY trial_ends_at LIMIT $1 FOR UPDATE SKIP LOCKED";
        const SUSPEND: &str = "UPDATE control_plane.tenants \
             SET status = 'suspended', suspended_reason = $2 WHERE id = $1";
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx.query(DUE, &[&BATCH]).await?;
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let ends: chrono::DateTime<chrono::Utc> = row.try_get("trial_ends_at")?;
            tx.execute(SUSPEND, &[&id, &TRIAL_EXPIRED]).await?;
            let suspended = json!({ "from": "active", "to": "suspended", "reason": TRIAL_EXPIRED });
            record_event(&*tx, id, "suspended", actor, suspended).await?;
            let expired = json!({ "trial_ends_at": ends });
            record_event(&*tx, id, "trial_expired", actor, expired).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }
}
