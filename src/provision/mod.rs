//! Provisioning: creating a tenant's role and database, storing its password in the
//! secret backend, migrating it to the latest tenant migration, and the reverse.
//!
//! ```text
//!  POST /v1/tenants {provision: true} ──► registry row, status provisioning ──► 202
//!        │ (or POST /v1/tenants/{slug}/provision to retry)
//!        ▼ background job "provision" (at most 4 at once per replica)
//!  lock ──► secret ──► role ──► database ──► migrate ──► activate
//!   │        │          │          │            │           └ provisioning → active,
//!   │        │          │          │            │             schema_version, `migrated`
//!   │        │          │          │            │             + `provisioned` events (one tx)
//!   │        │          │          │            └ tenant::run to the newest set
//!   │        │          │          └ CREATE DATABASE … OWNER role, or reuse ours
//!   │        │          └ CREATE ROLE … PASSWORD <SCRAM verifier>, or reuse ours
//!   │        └ reuse the password already behind the ref, else generate and write it
//!   └ pg_try_advisory_lock on the admin connection: one runner per tenant, all replicas
//!
//!  any step fails ──► `provisioning_failed` event {operation, step, error, retryable} and the tenant's
//!                     `provisioning_error` (one transaction); the tenant stays
//!                     `provisioning`. A retryable failure (server unreachable, too many
//!                     connections) is tried again by the job itself, `provision_retries`
//!                     times with doubling delays from `provision_retry_backoff`; a
//!                     permanent one waits for the retry endpoint, which runs every step
//!                     again, reusing what is ours. Success sets `provisioned_at` and
//!                     clears `provisioning_error`.
//! ```
//!
//! Where: a tenant is placed on one of the provisioning servers ([`servers`]) when it is
//! created, and the server is recorded on it (`server`); retries and deprovisioning use
//! that recorded server. A tenant created from its slug alone gets its names from the
//! `provision_*` templates and its host and port from the server ([`Provisioner::create`]).
//!
//! Deprovisioning (`DELETE /v1/tenants/{slug}?drop_database=true`) runs in the request:
//! check ownership → `deleting` → drop database (FORCE) and role → remove the secret →
//! `deleted`. A failure leaves the tenant `deleting` with an `error` event; the same
//! request again finishes the job.
//!
//! Jobs are tracked; on shutdown they get `shutdown_grace` to finish and are then
//! cancelled (the tenant stays `provisioning`, and the retry endpoint picks it up).

mod admin;
mod error;
mod report;
pub mod servers;

pub use admin::marker;
pub use error::ProvisionError;
pub use report::ServerReport;
pub use servers::Server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::migrate::{tenant, Catalog, MigrateError, RunLimits};
use crate::registry::{
    Actor, DbIdent, NewTenant, ProvisioningError, Registry, Slug, Tenant, TenantStatus,
};
use crate::resolve::{Connector, TenantDb};
use crate::secrets::{SecretError, SecretRef, SecretStore};

/// Provisioning jobs one replica runs at once: CREATE DATABASE copies a template and
/// checkpoints, so a burst of 50 creates would stall the server for everyone else.
const CONCURRENT_JOBS: usize = 4;

/// Advisory-lock namespace on the admin connection (`hashtextextended(…)` of this prefix
/// and the tenant id), so two replicas never provision one tenant at once.
const LOCK_PREFIX: &str = "drover-provision:";

/// How a finished job ended, as seen by `?wait=true` callers.
pub type JobResult = Result<Tenant, Arc<ProvisionError>>;

/// Creates and drops tenant databases. One per replica, in `AppState`.
pub struct Provisioner {
    servers: Vec<Server>,
    templates: Templates,
    retries: u32,
    retry_backoff: Duration,
    default_ca: Option<PathBuf>,
    secrets: SecretStore,
    registry: Registry,
    catalog: Arc<Catalog>,
    connector: Connector,
    resolver: Arc<crate::resolve::Resolver>,
    lock_wait: Duration,
    actor: Actor,
    slots: Arc<Semaphore>,
    jobs: TaskTracker,
    cancel: CancellationToken,
    running: Mutex<HashMap<Uuid, watch::Receiver<Option<JobResult>>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The name templates of a tenant created from its slug.
struct Templates {
    db_name: String,
    db_user: String,
    secret_ref: String,
}

/// Longest retry delay, however many retries are configured.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// What [`Provisioner::new`] needs from the application.
pub struct Parts {
    /// Validated configuration.
    pub config: Arc<crate::config::Config>,
    /// Secret backends (shared with resolution).
    pub secrets: SecretStore,
    /// The registry.
    pub registry: Registry,
    /// The tenant migration files (a new tenant is migrated to the latest).
    pub catalog: Arc<Catalog>,
    /// Tenant connections (with the CA bundle).
    pub connector: Connector,
    /// Resolution, whose secret cache must forget a password drover just replaced.
    pub resolver: Arc<crate::resolve::Resolver>,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Provisioner {
    /// A provisioner; without servers it refuses every request with a clear error.
    pub fn new(p: Parts) -> Result<Self, ProvisionError> {
        let c = &p.config.provision;
        let actor = Actor::new(&format!(
            "drover:{}",
            p.config.instance_id.chars().take(90).collect::<String>()
        ))
        .map_err(|e| ProvisionError::Config(e.to_string()))?;
        Ok(Provisioner {
            servers: c.servers.clone(),
            templates: Templates {
                db_name: c.db_name.clone(),
                db_user: c.db_user.clone(),
                secret_ref: c.secret_ref.clone(),
            },
            retries: c.retries,
            retry_backoff: c.retry_backoff,
            default_ca: p.config.ca_file.clone(),
            secrets: p.secrets,
            registry: p.registry,
            catalog: p.catalog,
            connector: p.connector,
            resolver: p.resolver,
            lock_wait: p.config.waves.lock_wait,
            actor,
            slots: Arc::new(Semaphore::new(CONCURRENT_JOBS)),
            jobs: TaskTracker::new(),
            cancel: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            metrics: p.metrics,
        })
    }

    /// Whether any provisioning server is configured.
    pub fn available(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The configured servers, in configuration order.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// `POST /v1/tenants` with `provision: true`: fills what the request leaves out (display
    /// name, database and role names, secret reference from the templates; host and port
    /// from the server), places the tenant on a server and registers it in `provisioning`.
    /// Explicit fields win. Nothing is written when any check fails.
    pub async fn create(
        &self,
        request: &NewTenant,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        if !self.available() {
            return Err(ProvisionError::NotConfigured);
        }
        let slug = Slug::for_lookup(&request.slug)?;
        let mut new = request.clone();
        new.fill_display_name();
        self.fill_names(&mut new, &slug)?;
        if let Some(name) = &new.server {
            self.named(name)?;
        }
        self.check_request(&new.db_secret_ref, None).await?;
        self.registry
            .create_placed(actor, |loads| {
                let server = match &new.server {
                    Some(name) => {
                        let s = self.named(name)?;
                        let load = loads.get(&s.name).copied().unwrap_or(0);
                        if !s.has_room(load) {
                            return Err(ProvisionError::NoServer {
                                labels: format!("server={name}"),
                                servers: format!(
                                    "{name} is full ({load} of {} tenants)",
                                    s.max_tenants.unwrap_or_default()
                                ),
                            });
                        }
                        s
                    }
                    None => servers::place(&self.servers, &new.labels, loads)?,
                };
                Ok(on_server(new, server))
            })
            .await
    }

    /// Database, role and secret reference from the templates, where not given.
    fn fill_names(&self, new: &mut NewTenant, slug: &Slug) -> Result<(), ProvisionError> {
        let derive = |field: &'static str, template: &str| {
            let name = servers::render(template, slug.as_str());
            if name.len() > 63 {
                return Err(ProvisionError::Invalid {
                    field,
                    message: format!(
                        "{name:?} (from the template {template:?}) is {} bytes; PostgreSQL names are at most 63 and drover never shortens one: give {field} explicitly or use a shorter slug",
                        name.len()
                    ),
                });
            }
            DbIdent::parse(field, &name).map_err(ProvisionError::invalid)?;
            Ok(name)
        };
        if new.db_name.is_empty() {
            new.db_name = derive("db_name", &self.templates.db_name)?;
        }
        if new.db_user.is_empty() {
            new.db_user = derive("db_user", &self.templates.db_user)?;
        }
        if new.db_secret_ref.is_empty() {
            new.db_secret_ref = servers::render(&self.templates.secret_ref, slug.as_str());
        }
        Ok(())
    }

    fn named(&self, name: &str) -> Result<&Server, ProvisionError> {
        self.servers
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ProvisionError::UnknownServer {
                name: name.to_string(),
                configured: self.configured_names(),
            })
    }

    fn configured_names(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The server a tenant lives on: the one it recorded; for tenants from before servers
    /// were recorded, the one with its host and port, or the only one.
    pub fn server_for(&self, t: &Tenant) -> Result<&Server, ProvisionError> {
        if let Some(name) = &t.server {
            return self.named(name);
        }
        if let Some(s) = self
            .servers
            .iter()
            .find(|s| s.host == t.db_host && s.port == t.db_port)
        {
            return Ok(s);
        }
        match self.servers.as_slice() {
            [only] => Ok(only),
            [] => Err(ProvisionError::NotConfigured),
            _ => Err(ProvisionError::UnknownServer {
                name: format!(
                    "(none recorded; no server has host {}:{})",
                    t.db_host, t.db_port
                ),
                configured: self.configured_names(),
            }),
        }
    }

    /// Checks, before anything is written, that a tenant with this secret ref can be
    /// provisioned here: an admin connection exists and the ref's backend can be written.
    pub async fn check_request(
        &self,
        secret_ref: &str,
        tenant: Option<Uuid>,
    ) -> Result<(), ProvisionError> {
        if !self.available() {
            return Err(ProvisionError::NotConfigured);
        }
        let r: SecretRef = secret_ref
            .parse()
            .map_err(
                |e: crate::secrets::SecretRefError| ProvisionError::Invalid {
                    field: "db_secret_ref",
                    message: e.to_string(),
                },
            )?;
        self.registry
            .scope()
            .check(&r)
            .map_err(|e| ProvisionError::Invalid {
                field: "db_secret_ref",
                message: e.to_string(),
            })?;
        if r.scheme() == crate::secrets::Scheme::Env {
            return Err(ProvisionError::Invalid {
                field: "db_secret_ref",
                message: "provisioning stores a generated password, so the reference must be file: or vault:, not env:".into(),
            });
        }
        self.secrets
            .check_writable(&r)
            .map_err(|e| ProvisionError::Invalid {
                field: "db_secret_ref",
                message: e.to_string(),
            })?;
        let shared = self
            .registry
            .secret_ref_shared(secret_ref, tenant)
            .await
            .map_err(ProvisionError::Lookup)?;
        if shared {
            return Err(ProvisionError::Invalid {
                field: "db_secret_ref",
                message: "another live tenant uses this secret reference; a provisioned tenant needs its own".into(),
            });
        }
        Ok(())
    }

    /// Starts (or joins) the provisioning job of a tenant in `provisioning`; the receiver
    /// turns `Some` when it ends.
    pub fn start(self: &Arc<Self>, tenant: Tenant) -> watch::Receiver<Option<JobResult>> {
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
                    r = me.job(tenant) => r,
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

    /// Stops taking jobs, lets running ones finish within `grace`, then cancels the rest.
    pub async fn shutdown(&self, grace: Duration) {
        self.jobs.close();
        if tokio::time::timeout(grace, self.jobs.wait()).await.is_err() {
            tracing::warn!("provisioning jobs still running after the grace period; cancelling them (retry with POST /v1/tenants/{{slug}}/provision)");
            self.cancel.cancel();
            self.jobs.wait().await;
        }
    }

    /// Runs the steps, and again after a retryable failure (bounded, with backoff). The
    /// slot is given back while waiting, so a server that is down does not block others.
    async fn job(&self, tenant: Tenant) -> Result<Tenant, ProvisionError> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
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
            if !matches!(e, ProvisionError::Busy) {
                self.record_failure(&tenant, &e, attempt).await;
            }
            if !again {
                return Err(e);
            }
            tokio::time::sleep(retry_delay(self.retry_backoff, attempt)).await;
        }
    }

    /// The `error` event and the tenant's `provisioning_error`, together.
    async fn record_failure(&self, tenant: &Tenant, e: &ProvisionError, attempt: u32) {
        let payload = json!({
            "operation": "provision", "step": e.step(),
            "error": e.to_string(), "retryable": e.is_retryable(), "attempt": attempt,
        });
        let error = ProvisioningError {
            step: e.step().to_string(),
            message: e.to_string(),
            retryable: e.is_retryable(),
            at: chrono::Utc::now(),
        };
        if let Err(re) = self
            .registry
            .record_provisioning_error(tenant.id, &self.actor, payload, &error)
            .await
        {
            tracing::error!(error = %re, "could not record the provisioning error");
        }
    }

    async fn admin_client(
        &self,
        server: &Server,
    ) -> Result<tokio_postgres::Client, ProvisionError> {
        server.connect(self.default_ca.as_deref()).await
    }

    /// Every step, in order (see the module diagram).
    async fn provision(&self, queued: &Tenant, started: Instant) -> Result<Tenant, ProvisionError> {
        let server = self.server_for(queued)?;
        let mut admin = self.admin_client(server).await?;
        lock(&admin, queued.id).await?;
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
        refuse_foreign(&admin, &db, &role, t.id).await?;
        let password = self.password(&secret_ref).await?;
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
            .finish_provisioning(t.id, &outcome, payload, &self.actor)
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
    /// there), else a new one written there.
    async fn password(&self, r: &SecretRef) -> Result<SecretString, ProvisionError> {
        match self.secrets.read(r).await {
            Ok(existing) if !existing.expose_secret().is_empty() => return Ok(existing),
            Ok(_) | Err(SecretError::NotFound { .. }) => {}
            Err(e) => return Err(ProvisionError::Secret(e)),
        }
        let password = generate_password()?;
        self.secrets
            .write(r, &password)
            .await
            .map_err(ProvisionError::Secret)?;
        self.resolver.forget_secret(&r.to_string());
        Ok(password)
    }

    async fn migrate(
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
        let conn = self.connector.with_password(&TenantDb::from(t), password);
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
        tenant::run(&conn, &set, target, &limits, |_| {})
            .await
            .map_err(ProvisionError::Migrate)
    }

    /// `DELETE …?drop_database=true`: drops the database, the role and the secret, then
    /// finishes the soft delete. Refuses, before changing anything, when the database or
    /// role was not created by drover for this tenant.
    pub async fn deprovision(&self, slug: &str, actor: &Actor) -> Result<Tenant, ProvisionError> {
        let t = self
            .registry
            .get(slug)
            .await
            .map_err(ProvisionError::Lookup)?;
        let role = DbIdent::parse("db_user", &t.db_user).map_err(ProvisionError::invalid)?;
        let db = DbIdent::parse("db_name", &t.db_name).map_err(ProvisionError::invalid)?;
        let server = self.server_for(&t)?;
        let admin = self.admin_client(server).await?;
        lock(&admin, t.id).await?;
        let nothing_here = refuse_foreign(&admin, &db, &role, t.id).await?;
        // Absent both: on a first attempt, the tenant lives on another server (or was never
        // provisioned): say so rather than report a drop that did not happen. On a retry
        // (`deleting`), an earlier attempt dropped them.
        if nothing_here && t.status != TenantStatus::Deleting {
            return Err(ProvisionError::NothingToDrop {
                server: server.name.clone(),
                database: db.as_str().to_string(),
                role: role.as_str().to_string(),
            });
        }
        self.registry
            .begin_delete(&t.slug, json!({ "drop_database": true }), actor)
            .await
            .map_err(ProvisionError::Lookup)?;
        let result = self.drop_all(&admin, &t, &db, &role, actor).await;
        if let Err(e) = &result {
            let payload = json!({
                "operation": "deprovision", "step": e.step(),
                "error": e.to_string(), "retryable": e.is_retryable(),
            });
            if let Err(re) = self.registry.record_error(t.id, actor, payload).await {
                tracing::error!(error = %re, "could not record the deprovisioning error");
            }
        }
        result
    }

    async fn drop_all(
        &self,
        admin: &tokio_postgres::Client,
        t: &Tenant,
        db: &DbIdent,
        role: &DbIdent,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let (db_dropped, role_dropped) = admin::drop_tenant(admin, db, role, t.id).await?;
        // The password goes when drover provisioned the tenant (it wrote it), also on a
        // retry whose database and role are already gone, but never while another live
        // tenant logs in with the same reference.
        let ours = self
            .registry
            .provisioned_by_drover(t.id)
            .await
            .map_err(ProvisionError::Lookup)?
            && !self
                .registry
                .secret_ref_shared(&t.db_secret_ref, Some(t.id))
                .await
                .map_err(ProvisionError::Lookup)?;
        let secret_removed = match t.db_secret_ref.parse::<SecretRef>() {
            Ok(r) if r.scheme() != crate::secrets::Scheme::Env && ours => {
                self.secrets
                    .remove(&r)
                    .await
                    .map_err(ProvisionError::Secret)?;
                self.resolver.forget_secret(&t.db_secret_ref);
                true
            }
            _ => false,
        };
        let payload = json!({
            "database_dropped": db_dropped, "role_dropped": role_dropped,
            "secret_removed": secret_removed,
        });
        let tenant = self
            .registry
            .finish_delete(t.id, payload, actor)
            .await
            .map_err(|e| ProvisionError::Registry(e.to_string()))?;
        tracing::info!(slug = %t.slug, db_dropped, role_dropped, "tenant deprovisioned");
        Ok(tenant)
    }

    /// The status a tenant must have for the retry endpoint.
    pub fn retryable_status(status: TenantStatus) -> bool {
        status == TenantStatus::Provisioning
    }
}

/// The request placed on `server`: its name recorded, host and port (and `sslmode`, when
/// the server sets one) filled where the request left them out.
fn on_server(mut new: NewTenant, server: &Server) -> NewTenant {
    if new.db_host.is_empty() {
        new.db_host.clone_from(&server.host);
    }
    if new.db_port.is_none() {
        new.db_port = Some(server.port);
    }
    if let Some(mode) = server.sslmode {
        new.db_options
            .entry("sslmode".into())
            .or_insert_with(|| mode.as_str().to_string());
    }
    new.server = Some(server.name.clone());
    new
}

/// The wait before retry `attempt` (1-based): `first`, doubled each time, capped.
fn retry_delay(first: Duration, attempt: u32) -> Duration {
    first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_RETRY_DELAY)
}

/// Fails with [`ProvisionError::Foreign`] when the database or the role exists and is not
/// drover's for this tenant; otherwise whether both are absent.
async fn refuse_foreign(
    admin: &tokio_postgres::Client,
    db: &DbIdent,
    role: &DbIdent,
    tenant: Uuid,
) -> Result<bool, ProvisionError> {
    let db_state = admin::database_state(admin, db, role, tenant).await?;
    if db_state == admin::Found::Foreign {
        return Err(ProvisionError::Foreign {
            what: "database",
            name: db.as_str().to_string(),
        });
    }
    let role_state = admin::role_state(admin, role, tenant).await?;
    if role_state == admin::Found::Foreign {
        return Err(ProvisionError::Foreign {
            what: "role",
            name: role.as_str().to_string(),
        });
    }
    Ok(db_state == admin::Found::Absent && role_state == admin::Found::Absent)
}

/// One runner per tenant across replicas: a session lock on the admin connection, held
/// until the connection closes.
async fn lock(admin: &tokio_postgres::Client, tenant: Uuid) -> Result<(), ProvisionError> {
    const SQL: &str = "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS got";
    let key = format!("{LOCK_PREFIX}{tenant}");
    let got: bool = admin
        .query_one(SQL, &[&key])
        .await
        .and_then(|row| row.try_get("got"))
        .map_err(|e| ProvisionError::from_pg("lock", &e))?;
    if got {
        Ok(())
    } else {
        Err(ProvisionError::Busy)
    }
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

    #[test]
    fn marker_names_the_tenant() {
        let id = Uuid::nil();
        assert_eq!(
            marker(id),
            "drover tenant 00000000-0000-0000-0000-000000000000"
        );
    }
}
