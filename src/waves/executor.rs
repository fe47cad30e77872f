//! The `wave-worker` task: one per replica. Every 250 ms, or at once when one of its
//! tenants finishes, it advances every active wave's state machine and claims free work
//! up to its slot count; each claimed tenant runs on its own task with a lease heartbeat.
//!
//! On shutdown it stops claiming, gives in-flight tenants `shutdown_grace` to finish, then
//! cancels the rest (dropping their connections rolls back the open tenant transaction on
//! the server) and releases its leases so another replica continues at once.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::claim::{self, Claimed};
use super::{WaveError, WaveStore};
use crate::config::WaveConfig;
use crate::migrate::{tenant, MigrateError, MigrationSet, RunLimits, TenantConnection};
use crate::registry::{string_map, Actor};
use crate::resolve::Resolver;

/// Shared by the loop and the tenant tasks.
pub struct Executor {
    store: WaveStore,
    resolver: Arc<Resolver>,
    owner: String,
    actor: Actor,
    cfg: WaveConfig,
    migrations_dir: PathBuf,
    default_ca: Option<PathBuf>,
    set: RwLock<Arc<MigrationSet>>,
    wake: Notify,
}

enum Ran {
    Done(tenant::RunOutcome),
    Skipped(String),
}

impl Executor {
    /// An executor for this replica.
    pub fn new(
        store: WaveStore,
        resolver: Arc<Resolver>,
        owner: &str,
        cfg: WaveConfig,
        migrations_dir: PathBuf,
        default_ca: Option<PathBuf>,
        set: MigrationSet,
    ) -> Self {
        let actor = Actor::new(&format!(
            "drover:{}",
            owner.chars().take(90).collect::<String>()
        ))
        .unwrap_or_else(|_| {
            Actor::new("drover").unwrap_or_else(|_| unreachable!("static actor is valid"))
        });
        Executor {
            store,
            resolver,
            owner: owner.to_string(),
            actor,
            cfg,
            migrations_dir,
            default_ca,
            set: RwLock::new(Arc::new(set)),
            wake: Notify::new(),
        }
    }

    /// The migration set as last loaded.
    pub fn migrations(&self) -> Arc<MigrationSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reloads the migration files from disk (wave creation does this, so new files count).
    pub fn reload(&self) -> Result<Arc<MigrationSet>, crate::migrate::SetError> {
        let set = Arc::new(MigrationSet::load(&self.migrations_dir)?);
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = set.clone();
        Ok(set)
    }

    /// Wakes the loop (a wave was created or changed).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Whether our files match the wave's frozen fingerprint (reloading once if not).
    fn plan_matches(&self, plan: &Value) -> bool {
        let matches = |set: &MigrationSet| {
            let Some(frozen) = plan.as_array() else {
                return false;
            };
            frozen.iter().all(|f| {
                let (v, checksum) = (
                    f[0].as_i64().unwrap_or(-1) as i32,
                    f[2].as_str().unwrap_or(""),
                );
                set.get(v)
                    .is_some_and(|m| m.checksum.to_string() == checksum)
            })
        };
        if matches(&self.migrations()) {
            return true;
        }
        let ok = self.reload().map(|s| matches(&s)).unwrap_or(false);
        if !ok {
            tracing::error!("this replica's tenant migration files differ from a wave's plan; not working on it");
        }
        ok
    }

    /// The loop; returns after shutdown, leases released.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.cfg.slots));
        let mut jobs: JoinSet<()> = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
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
        match claim::release_all(self.store.pool(), &self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "released wave leases"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release wave leases; they expire on their own")
            }
        }
    }

    async fn tick(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        jobs: &mut JoinSet<()>,
    ) -> Result<(), WaveError> {
        for id in self.store.active().await? {
            // Advance until it settles: a finished batch starts the next one in this tick.
            while self.store.advance(id).await? {}
            let free = slots.available_permits();
            if free == 0 {
                break;
            }
            let claimed = claim::claim(
                self.store.pool(),
                id,
                &self.owner,
                self.cfg.lease,
                free,
                |p| self.plan_matches(p),
            )
            .await?;
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
        let result = self.migrate(&c).await;
        heartbeat.abort();
        let ms = started.elapsed().as_millis() as i64;
        let pool = self.store.pool();
        let recorded = match &result {
            Ok(Ran::Done(out)) => {
                tracing::info!(from = ?out.from, to = ?out.to, applied = ?out.applied, ms, "tenant migrated");
                claim::succeed(pool, &c, &self.owner, out, ms, &self.actor).await
            }
            Ok(Ran::Skipped(reason)) => claim::skip(pool, &c, &self.owner, reason).await,
            Err(e) => {
                let backoff = self.cfg.retry_backoff
                    * 2u32.saturating_pow(c.attempt.saturating_sub(1) as u32);
                let backoff = backoff.min(Duration::from_secs(60));
                let retried = claim::fail(pool, &c, &self.owner, e, backoff, &self.actor).await;
                if let Ok(r) = &retried {
                    tracing::warn!(error = %e, kind = e.kind().as_str(), retry = r, "tenant migration failed");
                }
                retried.map(|_| ())
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the tenant is re-checked by whoever claims it next.
            tracing::error!(error = %e, "could not record the outcome in the control DB");
        }
    }

    async fn migrate(&self, c: &Claimed) -> Result<Ran, MigrateError> {
        const TENANT: &str =
            "SELECT status, db_host, db_port, db_name, db_user, db_secret_ref, db_options \
             FROM control_plane.tenants WHERE id = $1 AND deleted_at IS NULL";
        let row = {
            let client = self
                .store
                .pool()
                .get()
                .await
                .map_err(|e| MigrateError::Other(format!("control database: {e}")))?;
            client
                .query_opt(TENANT, &[&c.tenant_id])
                .await
                .map_err(|e| MigrateError::Other(crate::db::describe(&e)))?
        };
        let Some(row) = row else {
            return Ok(Ran::Skipped("tenant was deleted".into()));
        };
        let status: String = row.get(0);
        if !(status == "active" || status == "suspended") {
            return Ok(Ran::Skipped(format!("tenant is {status}")));
        }
        let secret_ref: String = row.get(5);
        let password = self.resolver.password(&secret_ref).await?;
        let port: i32 = row.get(2);
        let conn = TenantConnection {
            host: row.get(1),
            port: u16::try_from(port).unwrap_or(5432),
            dbname: row.get(3),
            user: row.get(4),
            password: SecretString::from(password.expose_secret().to_string()),
            options: string_map(row.get(6)),
            default_ca: self.default_ca.clone(),
        };
        let limits = RunLimits {
            lock_timeout: Duration::from_millis(c.lock_timeout_ms as u64),
            statement_timeout: Duration::from_millis(c.statement_timeout_ms as u64),
            lock_wait: self.cfg.lock_wait,
            connect_timeout: Duration::from_secs(5),
        };
        let set = self.migrations();
        tenant::run(&conn, &set, c.target_version, &limits)
            .await
            .map(Ran::Done)
    }
}
