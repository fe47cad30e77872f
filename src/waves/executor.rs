//! The `wave-worker` task: one per replica. Every 250 ms, or at once when one of its
//! tenants finishes, it records what finished since the last tick (one control-DB
//! transaction for all of them), advances every active wave's state machine and claims
//! free work up to its slot count; each claimed tenant runs on its own task with a lease
//! heartbeat (dry-run targets run and roll back instead). Tenants finishing while a tick
//! runs wait for the next one: the busier the loop, the larger its batches. The same tick
//! claims due analysis checks of soaking waves (at most every `ANALYSIS_EVERY`) and
//! evaluates each on its own task.
//!
//! On shutdown it stops claiming, gives in-flight tenants `shutdown_grace` to finish, then
//! cancels the rest (dropping their connections rolls back the open tenant transaction on
//! the server) and releases its leases so another replica continues at once.
//!
//! Settings: [`WorkerSettings`] (`instance_id`, `wave_lease`, `worker_slots`, `lock_wait`,
//! `retry_backoff`, `prometheus_url`), filled by the configuration; [`Executor::new`]
//! takes nothing else of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::analysis::prometheus::PrometheusClient;
use super::analysis::run as analysis;
use super::claim::{self, Claimed};
use super::{WaveError, WaveStore};
use crate::migrate::{
    dry_run, tenant, DryRunOutcome, MigrateError, MigrationSet, RunLimits, TenantConnection,
};
use crate::registry::Actor;
use crate::resolve::Connector;
use crate::sets::{matches_plan, Catalog, PlanSource};

/// Analysis checks one replica claims per tick.
const ANALYSIS_CLAIMS: i64 = 8;

/// How often a busy loop looks for due analysis checks (an idle one every tick).
const ANALYSIS_EVERY: Duration = Duration::from_millis(100);

/// How this replica works on migration waves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This replica's name; its leases carry it (plus a per-process nonce).
    pub instance_id: String,
    /// A claimed tenant is this replica's for this long unless renewed (renewed every third).
    pub lease: Duration,
    /// Tenants this replica migrates at once, over all waves.
    pub slots: usize,
    /// How long to poll for a tenant's advisory lock before giving up (retryable).
    pub lock_wait: Duration,
    /// First retry delay; doubles per attempt, capped at 60 s.
    pub retry_backoff: Duration,
    /// Prometheus (HTTP API base URL, already checked) that `prometheus` analysis checks
    /// query; `None`: those checks are inconclusive.
    pub prometheus_url: Option<String>,
}

/// Shared by the loop and the tenant tasks.
pub struct Executor {
    store: WaveStore,
    /// The migration files a wave's frozen fingerprint is checked against.
    catalog: Arc<Catalog>,
    connector: Connector,
    owner: String,
    actor: Actor,
    cfg: WorkerSettings,
    metrics: Arc<crate::metrics::Metrics>,
    wake: Notify,
    /// A tenant failed for good since the last tick: check the failure budget first.
    failed: std::sync::atomic::AtomicBool,
    advanced_at: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, Instant>>,
    /// Outcomes of finished tenants, recorded by the loop before it claims again.
    finished: std::sync::Mutex<Vec<claim::Finished>>,
    /// When the loop last looked for due analysis checks.
    analysis_at: std::sync::Mutex<Option<Instant>>,
    /// Cancel handles of tenant connections migrating right now.
    in_flight: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, tokio_postgres::CancelToken>>,
    /// `prometheus_url`, for analysis checks.
    prometheus: Option<PrometheusClient>,
    /// The files of each wave this replica claimed from, fetched from the plan's source.
    files: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, Arc<MigrationSet>>>,
}

/// Whether `set` is the one a plan's source names: the pushed set itself, or directory
/// files matching the plan's frozen fingerprint.
fn runs(set: &MigrationSet, source: &PlanSource) -> bool {
    match source {
        PlanSource::Pushed(id) => set.id() == id.as_str(),
        PlanSource::Directory(frozen) => matches_plan(set, frozen),
    }
}

fn process_nonce() -> u32 {
    use std::io::Read;
    let mut b = [0u8; 4];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    match random {
        Ok(()) => u32::from_le_bytes(b),
        Err(_) => {
            std::process::id()
                ^ (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()))
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Ran {
    Done(tenant::RunOutcome),
    Skipped(String),
}

enum DryRan {
    Done(DryRunOutcome),
    Skipped(String),
}

enum Prepared {
    Skip(String),
    Go(TenantConnection, RunLimits),
}

impl Executor {
    /// An executor for this replica, working as `cfg` says.
    pub fn new(
        store: WaveStore,
        catalog: Arc<Catalog>,
        connector: Connector,
        cfg: WorkerSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let owner = cfg.instance_id.as_str();
        // The URL was checked with the rest of the configuration; a client that still
        // cannot be built leaves prometheus checks inconclusive, with the reason logged.
        let prometheus = cfg.prometheus_url.as_deref().and_then(|u| {
            PrometheusClient::new(u)
                .map_err(|e| tracing::error!(error = %e, "prometheus checks will be inconclusive"))
                .ok()
        });
        let actor = Actor::new(&format!(
            "drover:{}",
            owner.chars().take(90).collect::<String>()
        ))
        .unwrap_or_else(|_| {
            Actor::new("drover").unwrap_or_else(|_| unreachable!("static actor is valid"))
        });
        Executor {
            store,
            catalog,
            connector,
            // Unique per process even when two replicas share DROVER_INSTANCE_ID, so one
            // replica can never renew or release the other's leases.
            owner: format!("{owner}#{:08x}", process_nonce()),
            actor,
            cfg,
            metrics,
            wake: Notify::new(),
            failed: std::sync::atomic::AtomicBool::new(false),
            advanced_at: std::sync::Mutex::new(std::collections::HashMap::new()),
            finished: std::sync::Mutex::new(Vec::new()),
            analysis_at: std::sync::Mutex::new(None),
            in_flight: std::sync::Mutex::new(std::collections::HashMap::new()),
            prometheus,
            files: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Asks every tenant server to cancel the statement this replica is running there (a
    /// hard stop): the migration's transaction rolls back now rather than when the
    /// server next notices the connection is gone.
    pub async fn cancel_in_flight(&self) {
        let tokens: Vec<_> = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for t in tokens {
            // Best effort: a server that insists on TLS for cancel requests keeps running
            // until it notices the closed connection.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                t.cancel_query(tokio_postgres::NoTls),
            )
            .await;
        }
    }

    /// Wakes the loop (a wave was created or changed).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// The loop; returns after shutdown, leases released.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.cfg.slots));
        let mut jobs: JoinSet<()> = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // No waiting for more tenants to finish: those finishing while the tick
                // records and claims are batched into the next one anyway.
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            while jobs.try_join_next().is_some() {}
            if let Err(e) = self.tick(&slots, &mut jobs).await {
                tracing::warn!(error = %e, "wave worker tick failed");
            }
        }
        if !jobs.is_empty() {
            tracing::info!(
                in_flight = jobs.len(),
                ?grace,
                "waiting for in-flight tenants"
            );
            let drained =
                tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} })
                    .await;
            if drained.is_err() {
                tracing::warn!(
                    left = jobs.len(),
                    "grace period over; cancelling in-flight tenants"
                );
                jobs.abort_all();
                while jobs.join_next().await.is_some() {}
            }
        }
        // Finished tenants are recorded before their leases are given back: released, they
        // would only be checked again by whoever claims them next.
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "could not record finished tenants; they are checked again when claimed");
        }
        match claim::release_all(self.store.pool(), &self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "released wave leases"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release wave leases; they expire on their own")
            }
        }
    }

    fn advance_due(&self, id: uuid::Uuid) -> bool {
        let mut at = self.advanced_at.lock().unwrap_or_else(|p| p.into_inner());
        let due = at
            .get(&id)
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
        if due {
            at.insert(id, Instant::now());
        }
        due
    }

    fn analysis_due(&self) -> bool {
        let mut at = self.analysis_at.lock().unwrap_or_else(|p| p.into_inner());
        let due = at.is_none_or(|t| t.elapsed() >= ANALYSIS_EVERY);
        if due {
            *at = Some(Instant::now());
        }
        due
    }

    /// Records every outcome queued by finished tenants, in one control-DB transaction.
    /// A tenant that failed for good sets `failed` (the budget is checked before claims).
    async fn flush(&self) -> Result<(), WaveError> {
        let batch = std::mem::take(&mut *self.finished.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let result = claim::record(self.store.pool(), &self.owner, &self.actor, &batch).await;
        tracing::debug!(
            tenants = batch.len(),
            ms = started.elapsed().as_millis() as u64,
            "outcomes recorded"
        );
        match result {
            Ok(0) => Ok(()),
            Ok(_) => {
                self.failed
                    .store(true, std::sync::atomic::Ordering::Release);
                Ok(())
            }
            // The leases run out and the tenants are re-checked by whoever claims them next.
            Err(e) => {
                if batch
                    .iter()
                    .any(|f| matches!(f, claim::Finished::Failed { .. }))
                {
                    self.failed
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                Err(e)
            }
        }
    }

    async fn tick(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        jobs: &mut JoinSet<()>,
    ) -> Result<(), WaveError> {
        // What finished is recorded first: the failure budget must see every failure
        // before anything else is claimed.
        self.flush().await?;
        let failed = self.failed.swap(false, std::sync::atomic::Ordering::AcqRel);
        // Analysis checks take no worker slot: they are short, bounded by their timeout,
        // and a soaking wave has no tenant work competing for the slots anyway.
        if self.analysis_due() {
            for due in analysis::claim_due(self.store.pool(), &self.owner, ANALYSIS_CLAIMS).await? {
                let me = self.clone();
                jobs.spawn(async move {
                    me.clone().evaluate(due).await;
                    me.wake.notify_one();
                });
            }
        }
        for id in self.store.active().await? {
            // The state machine is checked every 200 ms, at once after a failure (the
            // budget must stop claims before they spread), and whenever there is nothing
            // left to claim (the phase may be done). Not after every tenant: on a
            // 1,000-tenant wave that would count the targets 1,000 times.
            let due = failed || self.advance_due(id);
            if due {
                while self.store.advance(id).await? {}
            }
            let free = slots.available_permits();
            if free == 0 {
                // Keep advancing the other waves: their gates (soak, analysis, budget)
                // must not wait for this replica's slots.
                continue;
            }
            let mut claimed = self.claim_wave(id, free).await?;
            if claimed.is_empty() && !due {
                // Advance until it settles: a finished batch starts the next one now.
                while self.store.advance(id).await? {}
                self.advanced_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, Instant::now());
                claimed = self.claim_wave(id, free).await?;
            }
            for c in claimed {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let me = self.clone();
                jobs.spawn(async move {
                    me.clone().job(c).await;
                    drop(permit);
                    me.wake.notify_one();
                });
            }
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(slug = %c.slug, wave = %c.wave_id, attempt = c.attempt))]
    async fn job(self: Arc<Self>, c: Claimed) {
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
            Ok(Ran::Done(out)) => {
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
            Ok(Ran::Done(out)) => {
                tracing::info!(from = ?out.from, to = ?out.to, applied = ?out.applied, ms, "tenant migrated");
                claim::Finished::Succeeded {
                    claim: c,
                    out,
                    duration_ms: ms,
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
        // Recorded by the loop, with whatever else finished meanwhile, before it claims.
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(finished);
    }

    #[tracing::instrument(skip_all, fields(wave = %due.wave_id, check = %due.check.name))]
    async fn evaluate(self: Arc<Self>, due: analysis::Due) {
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

    /// The tenant's connection and the wave's limits, or why it is skipped.
    async fn prepare(&self, c: &Claimed) -> Result<Prepared, MigrateError> {
        let t = &c.tenant;
        match t.status.as_deref() {
            None => return Ok(Prepared::Skip("tenant was deleted".into())),
            Some("active" | "suspended") => {}
            Some(other) => return Ok(Prepared::Skip(format!("tenant is {other}"))),
        }
        let conn = self.connector.connection(&t.db).await?;
        let limits = RunLimits {
            lock_timeout: Duration::from_millis(c.run.lock_timeout_ms as u64),
            statement_timeout: Duration::from_millis(c.run.statement_timeout_ms as u64),
            lock_wait: self.cfg.lock_wait,
            connect_timeout: Duration::from_secs(5),
        };
        Ok(Prepared::Go(conn, limits))
    }

    /// Claims up to `free` targets of wave `id`. The claim says where the plan's files
    /// come from; the first time this replica meets the wave it fetches them and claims
    /// again, and a replica whose files differ from the plan leaves the wave to others.
    async fn claim_wave(&self, id: uuid::Uuid, free: usize) -> Result<Vec<Claimed>, WaveError> {
        for _ in 0..2 {
            let known = self.known_files(id);
            let accept = |s: &PlanSource| known.as_deref().is_some_and(|set| runs(set, s));
            let source = match claim::claim(
                self.store.pool(),
                id,
                &self.owner,
                self.cfg.lease,
                free,
                accept,
            )
            .await?
            {
                claim::Claim::Took(claimed) => return Ok(claimed),
                claim::Claim::Refused(source) => source,
            };
            match self.files(&source).await {
                Some(set) if runs(&set, &source) => self.remember_files(id, set),
                _ => return Ok(Vec::new()),
            }
        }
        Ok(Vec::new())
    }

    /// The files this replica already fetched for wave `id`.
    fn known_files(&self, id: uuid::Uuid) -> Option<Arc<MigrationSet>> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn remember_files(&self, id: uuid::Uuid, set: Arc<MigrationSet>) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        // Plans never change, so forgetting only costs a fetch.
        if files.len() >= 4096 {
            files.clear();
        }
        files.insert(id, set);
    }

    /// The files a plan's source names (the catalog logs why when it has none).
    async fn files(&self, source: &PlanSource) -> Option<Arc<MigrationSet>> {
        self.catalog.for_source(source).await
    }

    /// The files of a claimed target's wave (remembered: the claim just fetched them).
    async fn wave_set(&self, c: &Claimed) -> Result<Arc<MigrationSet>, MigrateError> {
        let set = match self.known_files(c.wave_id) {
            Some(set) => Some(set),
            None => self.files(&c.source).await,
        };
        set.ok_or_else(|| {
            MigrateError::Other("the wave's migration set is unavailable on this replica".into())
        })
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
        let (conn, limits) = match self.prepare(c).await? {
            Prepared::Skip(reason) => return Ok(Ran::Skipped(reason)),
            Prepared::Go(conn, limits) => (conn, limits),
        };
        let set = self.wave_set(c).await?;
        let counted = || self.metrics.lock_timeouts_total.inc();
        let result = tenant::run_with(
            &conn,
            &set,
            c.target_version,
            &limits,
            &c.run.lock_retries,
            &counted,
            |token| self.track(c.tenant_id, token),
        )
        .await;
        self.untrack(c.tenant_id);
        result.map(Ran::Done)
    }

    async fn dry_run(&self, c: &Claimed) -> Result<DryRan, MigrateError> {
        let (conn, limits) = match self.prepare(c).await? {
            Prepared::Skip(reason) => return Ok(DryRan::Skipped(reason)),
            Prepared::Go(conn, limits) => (conn, limits),
        };
        let set = self.wave_set(c).await?;
        let result = dry_run::dry_run(&conn, &set, c.target_version, &limits, |token| {
            self.track(c.tenant_id, token)
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
