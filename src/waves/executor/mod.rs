//! The `wave-worker` task: one per replica. It wakes when one of its tenants finishes,
//! when the completion batch falls due, or every 250 ms, and then:
//!
//! ```text
//!  record   the completion batch when due (`batch`: size, age, or a final failure)
//!  advance  every active wave's state machine (every 200 ms, at once after a failure)
//!  release  buffered tenants of waves that stopped taking claims
//!  start    buffered tenants into free slots (`buffer`)
//!  claim    one statement for all active waves, up to free slots + prefetch, when the
//!           buffer is at its low-water mark (not while the batch is backlogged)
//!  start    what was claimed; the rest waits in the buffer, its leases renewed together
//!           and its connections opened ahead (`ahead`)
//! ```
//!
//! Each started tenant runs on its own task with a lease heartbeat (`job`; dry-run targets
//! run and roll back instead). The same tick claims due analysis checks of soaking waves
//! (at most every `ANALYSIS_EVERY`) and evaluates each on its own task.
//!
//! On shutdown it stops claiming, gives its buffered tenants back, gives in-flight tenants
//! `shutdown_grace` to finish, then cancels the rest (dropping their connections rolls
//! back the open tenant transaction on the server), records what finished and releases
//! its leases so another replica continues at once.
//!
//! Settings: [`WorkerSettings`] (`instance_id`, `wave_lease`, `worker_slots`, `lock_wait`,
//! `retry_backoff`, `record_batch_age`, `prometheus_url`), filled by the configuration;
//! [`Executor::new`] takes nothing else of it.

mod ahead;
mod batch;
mod buffer;
mod feed;
mod files;
mod job;
mod warm;

pub use batch::RECORD_BATCH_AGE;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::analysis::prometheus::PrometheusClient;
use super::analysis::run as analysis;
use super::claim;
use super::{WaveError, WaveStore};
use crate::migrate::{tenant, DryRunOutcome, MigrationSet, RunLimits};
use crate::registry::Actor;
use crate::resolve::Connector;
use crate::sets::Catalog;
use batch::Batch;
use buffer::Buffer;

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
    /// How long a finished tenant's outcome waits for others to be recorded with it.
    pub record_batch_age: Duration,
    /// Take the tenant's schema fingerprint after a run that applied something
    /// (`drift_after_migration`); off, only scans read schemas.
    pub fingerprint_migrated: bool,
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
    /// Outcomes of finished tenants, recorded by the loop in batches.
    finished: std::sync::Mutex<Batch>,
    /// Tenants claimed ahead of a free slot.
    buffer: std::sync::Mutex<Buffer>,
    /// Connections of buffered tenants opened while the slots are busy.
    ahead: std::sync::Mutex<ahead::Ahead>,
    /// Waves whose secrets this replica fetched ahead.
    warmed: std::sync::Mutex<warm::Warmed>,
    /// When the loop last looked for due analysis checks.
    analysis_at: std::sync::Mutex<Option<Instant>>,
    /// Cancel handles of tenant connections migrating right now.
    in_flight: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, tokio_postgres::CancelToken>>,
    /// `prometheus_url`, for analysis checks.
    prometheus: Option<PrometheusClient>,
    /// The files of each wave this replica claimed from, fetched from the plan's source.
    files: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, Arc<MigrationSet>>>,
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
    /// Ran, with the schema fingerprint taken after it when it applied something.
    Done(tenant::RunOutcome, Option<crate::drift::Fingerprint>),
    Skipped(String),
}

enum DryRan {
    Done(DryRunOutcome),
    Skipped(String),
}

enum Prepared {
    Skip(String),
    Go(RunLimits),
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
            finished: std::sync::Mutex::new(Batch::default()),
            buffer: std::sync::Mutex::new(Buffer::default()),
            ahead: std::sync::Mutex::new(ahead::Ahead::default()),
            warmed: std::sync::Mutex::new(warm::Warmed::default()),
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

    fn batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.finished.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn buffered(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loop; returns after shutdown, leases released.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.cfg.slots));
        let mut jobs: JoinSet<()> = JoinSet::new();
        loop {
            // No waiting for more tenants to finish than the batch's age allows: those
            // finishing while the tick records and claims join the next batch anyway.
            let idle = Instant::now() + Duration::from_millis(250);
            let until = self
                .batch()
                .deadline(self.cfg.record_batch_age)
                .map_or(idle, |d| d.min(idle));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
            while jobs.try_join_next().is_some() {}
            if let Err(e) = self.tick(&slots, &mut jobs).await {
                tracing::warn!(error = %e, "wave worker tick failed");
            }
        }
        self.stop(jobs, grace).await;
    }

    /// Shutdown: buffered tenants back at once, in-flight ones finished within `grace`
    /// (then cancelled), outcomes recorded, the remaining leases released.
    async fn stop(&self, mut jobs: JoinSet<()>, grace: Duration) {
        let unstarted = self.buffered().drain();
        self.close_ahead(&unstarted);
        if let Err(e) = claim::release(
            self.store.pool(),
            &self.owner,
            &unstarted.iter().collect::<Vec<_>>(),
        )
        .await
        {
            tracing::warn!(error = %e, "could not give back buffered tenants; their leases expire on their own");
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

    /// Records the completion batch in one control-DB transaction. A tenant that failed
    /// for good sets `failed` (the state machine checks the budget before the next
    /// claim). A batch the control DB could not take for a passing reason is kept and
    /// tried again (claims wait while it grows); otherwise its leases run out and the
    /// tenants are checked again by whoever claims them next.
    async fn flush(&self) -> Result<(), WaveError> {
        let batch = self.batch().take();
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
            Err(e) => {
                if batch
                    .iter()
                    .any(|f| matches!(f, claim::Finished::Failed { .. }))
                {
                    self.failed
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                if e.is_retryable() {
                    self.batch().restore(batch);
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
        if self.batch().due(self.cfg.record_batch_age) {
            self.flush().await?;
        }
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
        let active = self.store.active().await?;
        self.warm_new_waves(&active);
        let mut settled = Vec::new();
        for &id in &active {
            // The state machine is checked every 200 ms, at once after a failure (the
            // budget must stop claims before they spread), and whenever there is nothing
            // left to claim (the phase may be done). Not after every tenant: on a
            // 1,000-tenant wave that would count the targets 1,000 times.
            if failed || self.advance_due(id) {
                while self.store.advance(id).await? {}
                settled.push(id);
            }
        }
        self.release_stopped(&active).await?;
        self.renew_held().await;
        self.start_buffered(slots, jobs);
        self.gauge();
        if self.claim_and_start(&active, slots, jobs).await? == 0 && settled.len() < active.len() {
            // Nothing claimable: advance the rest until they settle (a finished batch
            // starts the next one now) and claim once more.
            for &id in active.iter().filter(|id| !settled.contains(id)) {
                while self.store.advance(id).await? {}
                self.advanced_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, Instant::now());
            }
            self.claim_and_start(&active, slots, jobs).await?;
        }
        self.gauge();
        Ok(())
    }

    /// What waits in this replica: buffered tenants, unrecorded outcomes.
    fn gauge(&self) {
        let buffered = self.buffered().len() as i64;
        self.metrics.worker_buffered_tenants.set(buffered);
        let waiting = self.batch().len() as i64;
        self.metrics.worker_unrecorded_outcomes.set(waiting);
    }
}
