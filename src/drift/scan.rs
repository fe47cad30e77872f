//! The `drift-scan` task (leader only): fingerprints every live tenant when a scan is
//! asked for (`POST /v1/drift/scans`, `drover drift scan`) or every `drift_scan_interval`
//! (off by default), then answers every tenant against the reference once, so one scan
//! signals each changed tenant once.
//!
//! ```text
//!  every second, on the leader:
//!   interval due (newest scan asked for is older than it) → ask for one
//!   start the oldest scan asked for (SKIP LOCKED) ─► per tenant, at most
//!     `drift_scan_concurrency` at once and `drift_scan_max_per_host` per database host:
//!       connect ─► history + catalog read, pipelined ─► close ─► save (own statement)
//!   ─► reconcile (drifted flags + events, one transaction) ─► forget unused schemas
//! ```
//!
//! A tenant that cannot be read keeps its last fingerprint and counts as `failed`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use secrecy::SecretString;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store::{self, Scan};
use super::{cohorts, fingerprint, replay, DriftError};
use crate::migrate::tenant::{connect_with, read_history};
use crate::migrate::RunLimits;
use crate::registry::{queries, TenantDb};
use crate::resolve::Connector;
use crate::sets::Catalog;

/// How often the leader looks for a scan to run.
const TICK: Duration = Duration::from_secs(1);

/// Schema-drift settings (`drift_*` keys).
#[derive(Debug, Clone)]
pub struct DriftSettings {
    /// A scan is asked for this long after the last one; None: only on request.
    pub scan_interval: Option<Duration>,
    /// Tenants read at once by a scan.
    pub scan_concurrency: usize,
    /// Tenants of one database host read at once by a scan.
    pub scan_max_per_host: usize,
    /// Admin connection to a server where drover may create and drop a scratch database
    /// to replay migration sets; None: the majority of each version is the reference.
    pub scratch_url: Option<SecretString>,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            scan_interval: None,
            scan_concurrency: 8,
            scan_max_per_host: 4,
            scratch_url: None,
        }
    }
}

/// Limits of one tenant read: short, a scan must not sit on a slow tenant.
const READ_LIMITS: RunLimits = RunLimits {
    lock_timeout: Duration::from_secs(1),
    statement_timeout: Duration::from_secs(30),
    lock_wait: Duration::ZERO,
    connect_timeout: Duration::from_secs(5),
};

/// Runs scans on the leader.
#[derive(Clone)]
pub struct Scanner {
    pool: Pool,
    connector: Connector,
    catalog: Arc<Catalog>,
    settings: DriftSettings,
    /// `ca_file`, for a scratch server with `sslmode=verify-*` and no `sslrootcert`.
    default_ca: Option<PathBuf>,
}

impl Scanner {
    pub fn new(
        pool: Pool,
        connector: Connector,
        catalog: Arc<Catalog>,
        settings: DriftSettings,
        default_ca: Option<PathBuf>,
    ) -> Scanner {
        Scanner {
            pool,
            connector,
            catalog,
            settings,
            default_ca,
        }
    }

    /// Replays the newest migration set on the scratch server when it has not been
    /// (nothing without `drift_scratch_url`). A failed replay is logged: the majority
    /// stays the reference for the versions without one.
    async fn replay_newest(&self) {
        let Some(url) = &self.settings.scratch_url else {
            return;
        };
        let set = match self.catalog.newest().await {
            Ok(set) => set,
            Err(e) => return tracing::warn!(error = %e, "schema drift: no migration set to replay"),
        };
        if let Err(e) = replay::ensure(&self.pool, url, self.default_ca.as_deref(), &set).await {
            tracing::warn!(error = %e, "schema drift: replay on the scratch database failed");
        }
    }

    /// Asks for a scan (answered 202: the leader runs it).
    pub async fn request(&self, requested_by: &str) -> Result<Scan, DriftError> {
        store::request_scan(&self.pool, requested_by).await
    }

    /// A scan by id.
    pub async fn get(&self, id: Uuid) -> Result<Option<Scan>, DriftError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| DriftError::Db(e.into()))?;
        store::scan(&**client, id).await
    }

    /// The task's loop (see the module diagram).
    pub async fn run(self, is_leader: impl Fn() -> bool, shutdown: CancellationToken) {
        let mut was_leader = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.cancelled() => return,
            }
            let leader = is_leader();
            if !leader {
                was_leader = false;
                continue;
            }
            if let Err(e) = self.tick(!was_leader, &shutdown).await {
                tracing::warn!(error = %e, "schema drift scan failed");
            }
            was_leader = true;
        }
    }

    async fn tick(
        &self,
        became_leader: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), DriftError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| DriftError::Db(e.into()))?;
        if became_leader {
            // The previous leader stopped mid-scan: its scan starts over here.
            store::restart_abandoned_scans(&**client).await?;
        }
        if let Some(every) = self.settings.scan_interval {
            store::request_scan_if_older(&**client, every, "drover").await?;
        }
        let Some(scan) = store::start_scan(&**client).await? else {
            return Ok(());
        };
        drop(client);
        self.scan(scan.id, shutdown).await
    }

    /// Fingerprints every live tenant, then answers them all against the reference.
    #[tracing::instrument(skip_all, fields(scan = %id))]
    pub async fn scan(&self, id: Uuid, shutdown: &CancellationToken) -> Result<(), DriftError> {
        self.replay_newest().await;
        let rows = {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| DriftError::Db(e.into()))?;
            queries::scan_targets(&**client)
                .await
                .map_err(|e| DriftError::Db(e.into()))?
        };
        let all = Arc::new(Semaphore::new(self.settings.scan_concurrency.max(1)));
        let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let (done, failed) = (Arc::new(AtomicI32::new(0)), Arc::new(AtomicI32::new(0)));
        let mut jobs = JoinSet::new();
        for row in rows {
            let (tenant_id, slug): (Uuid, String) = match (row.try_get("id"), row.try_get("slug")) {
                (Ok(id), Ok(slug)) => (id, slug),
                _ => continue,
            };
            let Ok(db) = TenantDb::from_row(&row) else {
                failed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let host = hosts
                .entry(db.host.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.settings.scan_max_per_host.max(1))))
                .clone();
            // Host first: a busy host must not hold global slots others could use.
            let host_permit = tokio::select! {
                p = host.acquire_owned() => p,
                _ = shutdown.cancelled() => break,
            };
            let permit = tokio::select! {
                p = all.clone().acquire_owned() => p,
                _ = shutdown.cancelled() => break,
            };
            let (this, done, failed) = (self.clone(), done.clone(), failed.clone());
            jobs.spawn(async move {
                let _permits = (host_permit, permit);
                match this.one(tenant_id, &db).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(%slug, error = %e, "schema drift: tenant not read");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            });
            // Finished jobs are collected as we go (a fleet of thousands is not kept).
            while jobs.try_join_next().is_some() {}
        }
        while jobs.join_next().await.is_some() {}
        cohorts::reconcile(&self.pool).await?;
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| DriftError::Db(e.into()))?;
        store::forget_unused_schemas(&**client).await?;
        let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        store::progress_scan(&**client, id, done, failed, true).await?;
        tracing::info!(tenants = done, failed, "schema drift scan finished");
        Ok(())
    }

    /// Reads one tenant (connect, history and catalog pipelined, close) and saves it.
    async fn one(&self, tenant_id: Uuid, db: &TenantDb) -> Result<(), DriftError> {
        let client = self
            .connector
            .open(db, None, |conn| async move {
                connect_with(&conn, &READ_LIMITS, "", "drover-drift").await
            })
            .await?;
        let (history, fp) =
            futures_util::future::join(read_history(&client), fingerprint::take(&client)).await;
        drop(client);
        let version = history
            .map_err(|e| DriftError::Tenant(crate::db::describe(&e)))?
            .iter()
            .map(|h| h.0)
            .max();
        // Answered once for every tenant when the scan ends (`reconcile`).
        cohorts::save(&self.pool, tenant_id, version, &fp?).await
    }
}
