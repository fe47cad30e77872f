//! One claimed tenant on its own task: the lease heartbeat, the migration (or the dry
//! run, rolled back), its metrics, and its outcome queued in the completion batch. Also
//! the analysis checks' evaluation, which runs on tasks of the same loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{AbortOnDrop, DryRan, Executor, Prepared, Ran};
use crate::drift;
use crate::migrate::tenant::Opened;
use crate::migrate::{dry_run, tenant, MigrateError, RunLimits, RunOutcome, TenantConnection};
use crate::waves::analysis::run as analysis;
use crate::waves::claim::{self, Claimed};
use crate::waves::WaveError;

impl Executor {
    #[tracing::instrument(skip_all, fields(slug = %c.slug, wave = %c.wave_id, attempt = c.attempt))]
    pub(super) async fn job(self: Arc<Self>, c: Claimed) {
        let started = Instant::now();
        let heartbeat = {
            let (me, c) = (self.clone(), c.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(me.cfg.lease / 3).await;
                    match claim::renew(me.store.pool(), &c, &me.owner, me.cfg.lease).await {
                        Ok(true) => {}
                        Ok(false) => break tracing::warn!("lease lost"),
                        Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                    }
                }
            })
        };
        // Aborted on drop too, so a panicking job cannot keep renewing a dead lease.
        let heartbeat = AbortOnDrop(heartbeat);
        if c.run.dry_run {
            let result = self.dry_run(&c).await;
            drop(heartbeat);
            let ms = started.elapsed().as_millis() as i64;
            if let Err(e) = self.record_dry_run(&c, result, ms).await {
                tracing::error!(error = %e, "could not record the dry run in the control DB");
            }
            return;
        }
        let result = self.migrate(&c).await;
        drop(heartbeat);
        let ms = started.elapsed().as_millis() as i64;
        self.metrics
            .migration_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(Ran::Done(out, _)) => {
                self.metrics
                    .migrations_applied_total
                    .inc_by(out.applied.len() as u64);
                self.metrics
                    .lock_wait_seconds
                    .observe(out.lock_wait.as_secs_f64());
            }
            Err(e) => self
                .metrics
                .migrations_failed_total
                .with_label_values(&[e.kind().as_str()])
                .inc(),
            Ok(Ran::Skipped(_)) => {}
        }
        let finished = match result {
            Ok(Ran::Done(out, schema)) => {
                tracing::info!(from = ?out.from, to = ?out.to, applied = ?out.applied, ms, "tenant migrated");
                claim::Finished::Succeeded {
                    claim: c,
                    out,
                    duration_ms: ms,
                    schema,
                }
            }
            Ok(Ran::Skipped(reason)) => claim::Finished::Skipped { claim: c, reason },
            Err(e) => {
                let retry = e.is_retryable() && c.attempt < c.run.max_attempts;
                tracing::warn!(error = %e, kind = e.kind().as_str(), retry, "tenant migration failed");
                let backoff = self.backoff(c.attempt);
                claim::Finished::Failed {
                    claim: c,
                    error: e,
                    backoff,
                }
            }
        };
        // Recorded by the loop with whatever else finishes meanwhile: at once when this
        // fills the batch or is a final failure, else when the batch is old enough.
        let due = self
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(finished);
        if due {
            self.wake.notify_one();
        }
    }

    #[tracing::instrument(skip_all, fields(wave = %due.wave_id, check = %due.check.name))]
    pub(super) async fn evaluate(self: Arc<Self>, due: analysis::Due) {
        let measurements =
            analysis::evaluate(&self.connector, self.prometheus.as_ref(), &due).await;
        for m in &measurements {
            self.metrics
                .analysis_evaluations_total
                .with_label_values(&[
                    due.check.name.as_str(),
                    due.check.kind.as_str(),
                    m.verdict.as_str(),
                ])
                .inc();
            tracing::info!(
                tenant = m.tenant.as_deref().unwrap_or(""),
                value = m.value.as_deref().unwrap_or(""),
                verdict = m.verdict.as_str(),
                detail = m.detail.as_deref().unwrap_or(""),
                "analysis measurement"
            );
        }
        if let Err(e) = analysis::record(self.store.pool(), &self.owner, &due, &measurements).await
        {
            // The lease runs out and the check is evaluated again.
            tracing::error!(error = %e, "could not record the analysis in the control DB");
        }
    }

    /// The retry delay after attempt `attempt`: doubling, capped at 60 s.
    fn backoff(&self, attempt: i32) -> Duration {
        let backoff =
            self.cfg.retry_backoff * 2u32.saturating_pow(attempt.saturating_sub(1) as u32);
        backoff.min(Duration::from_secs(60))
    }

    /// The wave's limits for the tenant, or why it is skipped.
    pub(super) async fn prepare(&self, c: &Claimed) -> Result<Prepared, MigrateError> {
        let t = &c.tenant;
        match t.status.as_deref() {
            None => return Ok(Prepared::Skip("tenant was deleted".into())),
            Some("active" | "suspended") => {}
            Some(other) => return Ok(Prepared::Skip(format!("tenant is {other}"))),
        }
        let limits = RunLimits {
            lock_timeout: Duration::from_millis(c.run.lock_timeout_ms as u64),
            statement_timeout: Duration::from_millis(c.run.statement_timeout_ms as u64),
            lock_wait: self.cfg.lock_wait,
            connect_timeout: Duration::from_secs(5),
        };
        Ok(Prepared::Go(limits))
    }

    /// Remembers a tenant connection's cancel handle while it runs (for a hard stop).
    fn track(&self, tenant_id: uuid::Uuid, token: tokio_postgres::CancelToken) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant_id, token);
    }

    fn untrack(&self, tenant_id: uuid::Uuid) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant_id);
    }

    async fn migrate(&self, c: &Claimed) -> Result<Ran, MigrateError> {
        let limits = match self.prepare(c).await? {
            Prepared::Skip(reason) => return Ok(Ran::Skipped(reason)),
            Prepared::Go(limits) => limits,
        };
        let set = self.wave_set(c).await?;
        let retries = &c.run.lock_retries;
        // Opened ahead while a slot was busy, or now.
        let (conn, opened) = match self.take_ahead(c).await {
            Some(ahead) => ahead,
            None => self.open(c, &limits).await?,
        };
        // Lets a hard stop cancel the running statement instead of waiting for the server
        // to notice the closed socket.
        self.track(c.tenant_id, opened.cancel_token());
        let counted = || self.metrics.lock_timeouts_total.inc();
        let fingerprint = TakeFingerprint::new(self.cfg.fingerprint_migrated);
        let run = tenant::Run {
            conn: &conn,
            set: &set,
            target: c.target_version,
            limits: &limits,
            retries,
            after: Some(&fingerprint),
        };
        let result = tenant::run_opened(opened, &run, &counted).await;
        self.untrack(c.tenant_id);
        // Recorded with the outcome, in the completion batch's transaction.
        result.map(|out| Ran::Done(out, fingerprint.taken()))
    }

    /// Connects to the tenant, tries its lock and reads its history (a refused password
    /// is refetched once: [`crate::resolve::Connector::open`]); the connection comes back
    /// with the password that worked.
    pub(super) async fn open(
        &self,
        c: &Claimed,
        limits: &RunLimits,
    ) -> Result<(TenantConnection, Opened), MigrateError> {
        let retries = &c.run.lock_retries;
        self.connector
            .open(&c.tenant.db, None, |conn| async move {
                let opened = tenant::open(&conn, limits, retries).await?;
                Ok((conn, opened))
            })
            .await
    }

    async fn dry_run(&self, c: &Claimed) -> Result<DryRan, MigrateError> {
        let limits = match self.prepare(c).await? {
            Prepared::Skip(reason) => return Ok(DryRan::Skipped(reason)),
            Prepared::Go(limits) => limits,
        };
        let set = self.wave_set(c).await?;
        let (set, limits) = (&set, &limits);
        let result = self
            .connector
            .open(&c.tenant.db, None, |conn| async move {
                dry_run::dry_run(&conn, set, c.target_version, limits, |token| {
                    self.track(c.tenant_id, token)
                })
                .await
            })
            .await;
        self.untrack(c.tenant_id);
        result.map(DryRan::Done)
    }

    /// Records a dry run's outcome: the target row only, and none of the migration metrics.
    async fn record_dry_run(
        &self,
        c: &Claimed,
        result: Result<DryRan, MigrateError>,
        ms: i64,
    ) -> Result<(), WaveError> {
        let pool = self.store.pool();
        let result = match result {
            Ok(DryRan::Skipped(reason)) => return claim::skip(pool, c, &self.owner, &reason).await,
            Ok(DryRan::Done(out)) => {
                tracing::info!(from = ?out.from, checked = ?out.checked, not_run = ?out.not_run, ms, "tenant dry-run");
                Ok(out)
            }
            Err(e) => {
                tracing::info!(error = %e, kind = e.kind().as_str(), ms, "tenant dry-run found a failure");
                Err(e)
            }
        };
        let set = self.wave_set(c).await.map_err(|e| WaveError::Invalid {
            field: "migration_set",
            message: e.to_string(),
        })?;
        crate::waves::dry_run::record(
            pool,
            c,
            &self.owner,
            &result,
            &set,
            ms,
            self.backoff(c.attempt),
        )
        .await
    }
}

/// Takes the tenant's schema fingerprint on the migration's connection, once its history
/// rows are written (see `migrate::tenant::AfterRun`), when the run applied something.
struct TakeFingerprint {
    /// `drift_after_migration`.
    on: bool,
    taken: std::sync::Mutex<Option<drift::Fingerprint>>,
}

impl TakeFingerprint {
    fn new(on: bool) -> Self {
        TakeFingerprint {
            on,
            taken: std::sync::Mutex::new(None),
        }
    }

    fn taken(&self) -> Option<drift::Fingerprint> {
        self.taken.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl tenant::AfterRun for TakeFingerprint {
    fn after<'c>(
        &'c self,
        client: &'c tokio_postgres::Client,
        outcome: &'c RunOutcome,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'c>> {
        Box::pin(async move {
            // A tenant the wave found up to date was not changed by it: its fingerprint
            // stands (a scan reads what others changed). Fingerprinting it anyway would
            // cost a no-op wave a catalog read and a control-DB write per tenant.
            if outcome.applied.is_empty() || !self.on {
                return;
            }
            match drift::fingerprint::take(client).await {
                Ok(fp) => *self.taken.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp),
                Err(e) => tracing::warn!(error = %e, "schema fingerprint not taken"),
            }
        })
    }
}
