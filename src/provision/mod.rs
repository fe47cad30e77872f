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
//!                     times with doubling delays from `provision_retry_backoff`; each
//!                     failure records the attempts and when the next is due on the tenant
//!                     row, so if this replica stops, any replica resumes the schedule
//!                     (`provision-resume`, [`resume`]); a permanent one waits for the
//!                     retry endpoint, which runs every step again, reusing what is ours.
//!                     Success sets `provisioned_at` and clears `provisioning_error` and
//!                     the schedule.
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
//!
//! Settings: [`ProvisionSettings`] (the servers, the `provision_*` name templates, retries
//! and their backoff, the default CA bundle, the replica's `instance_id` and `lock_wait`),
//! filled by the configuration, which also reads `[[provision_servers]]` into [`Server`]s;
//! [`Provisioner::new`] takes nothing else of it.
//!
//! External servers (`kind = "external"`): none of the steps above run there; the tenant's
//! job asks the server's provisioner with a signed request and the provisioner's callback
//! finishes (or fails) the attempt, see [`external`].
//!
//! Files: `placement.rs` (names from templates, choosing a server, the checks before a
//! tenant is registered), `plan.rs` (the same checks and the steps, written nowhere: the
//! dry run of a create), `job.rs` (the background job and its steps), `deprovision.rs`
//! (dropping a tenant's database, role and secret), `admin.rs` (SQL on the admin
//! connection), `servers.rs` (a server and where a tenant goes), `probe.rs` (the
//! `server-probe` task: each server's reachability, every 5 s), `resume.rs` (the
//! `provision-resume` task: due retries a stopped replica left, every 2 s), `report.rs`
//! (`GET /v1/servers`).

mod admin;
mod deprovision;
mod error;
pub mod external;
mod job;
mod placement;
mod plan;
pub mod probe;
mod report;
pub mod resume;
pub mod servers;

pub use admin::marker;
pub use error::ProvisionError;
pub use plan::{register_plan, CreatePlan};
pub use report::ServerReport;
pub use servers::Server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::registry::{Actor, Registry, Tenant, TenantStatus};
use crate::resolve::Connector;
use crate::secrets::SecretStore;
use crate::sets::Catalog;

/// Provisioning jobs one replica runs at once: CREATE DATABASE copies a template and
/// checkpoints, so a burst of 50 creates would stall the server for everyone else.
const CONCURRENT_JOBS: usize = 4;

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
    /// The control pool (external provisioners' requests are written with their events).
    pool: deadpool_postgres::Pool,
    /// Each server's last answer, for `GET /v1/servers`.
    reach: probe::Reachability,
}

/// The name templates of a tenant created from its slug.
struct Templates {
    db_name: String,
    db_user: String,
    secret_ref: String,
}

/// Provisioning: the servers and the names a tenant created from its slug gets.
#[derive(Debug, Clone)]
pub struct ProvisionSettings {
    /// `[[provision_servers]]`, or `DROVER_PROVISION_URL` as `default`; empty: provisioning
    /// is refused.
    pub servers: Vec<Server>,
    /// Template of `db_name` (`{slug}`, `{ident}` = slug with `-` → `_`).
    pub db_name: String,
    /// Template of `db_user`.
    pub db_user: String,
    /// Template of `db_secret_ref`.
    pub secret_ref: String,
    /// Automatic retries of a retryable failure (0: none).
    pub retries: u32,
    /// First retry delay; doubles per retry, capped at 5 minutes.
    pub retry_backoff: Duration,
    /// CA bundle of admin connections whose server names none (`ca_file`).
    pub ca_file: Option<PathBuf>,
    /// This replica's name; jobs act as `drover:<instance_id>`.
    pub instance_id: String,
    /// How long a job polls for the tenant's advisory lock before giving up.
    pub lock_wait: Duration,
}

/// What [`Provisioner::new`] needs from the application.
pub struct Parts {
    /// Servers, templates, retries.
    pub settings: ProvisionSettings,
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
    /// The control pool.
    pub pool: deadpool_postgres::Pool,
}

impl Provisioner {
    /// A provisioner; without servers it refuses every request with a clear error.
    pub fn new(p: Parts) -> Result<Self, ProvisionError> {
        let c = p.settings;
        let actor = Actor::new(&format!(
            "drover:{}",
            c.instance_id.chars().take(90).collect::<String>()
        ))
        .map_err(|e| ProvisionError::Config(e.to_string()))?;
        Ok(Provisioner {
            reach: probe::Reachability::new(c.servers.len()),
            servers: c.servers,
            templates: Templates {
                db_name: c.db_name,
                db_user: c.db_user,
                secret_ref: c.secret_ref,
            },
            retries: c.retries,
            retry_backoff: c.retry_backoff,
            default_ca: c.ca_file,
            secrets: p.secrets,
            registry: p.registry,
            catalog: p.catalog,
            connector: p.connector,
            resolver: p.resolver,
            lock_wait: c.lock_wait,
            actor,
            slots: Arc::new(Semaphore::new(CONCURRENT_JOBS)),
            jobs: TaskTracker::new(),
            cancel: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            metrics: p.metrics,
            pool: p.pool,
        })
    }

    /// The actor this replica's own changes are recorded as (`drover:<instance_id>`).
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Whether any provisioning server is configured.
    pub fn available(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The configured servers, in configuration order.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// Stops taking jobs, lets running ones finish within `grace`, then cancels the rest.
    pub async fn shutdown(&self, grace: Duration) {
        self.jobs.close();
        if tokio::time::timeout(grace, self.jobs.wait()).await.is_err() {
            tracing::warn!("provisioning jobs still running after the grace period; cancelling them (a due retry is resumed by any replica; otherwise retry with POST /v1/tenants/{{slug}}/provision)");
            self.cancel.cancel();
            self.jobs.wait().await;
        }
    }

    /// A connection to `server` as its admin role (with the default CA bundle). Whether it
    /// opened is the server's latest reachability too.
    async fn admin_client(
        &self,
        server: &Server,
    ) -> Result<tokio_postgres::Client, ProvisionError> {
        let connected = server.connect(self.default_ca.as_deref()).await;
        let error = match &connected {
            Ok(_) => None,
            Err(ProvisionError::Admin { message, .. }) => Some(message.clone()),
            Err(e) => Some(e.to_string()),
        };
        self.heard_from(server, error);
        connected
    }

    /// The status a tenant must have for the retry endpoint.
    pub fn retryable_status(status: TenantStatus) -> bool {
        status == TenantStatus::Provisioning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_names_the_tenant() {
        let id = Uuid::nil();
        assert_eq!(
            marker(id),
            "drover tenant 00000000-0000-0000-0000-000000000000"
        );
    }
}
