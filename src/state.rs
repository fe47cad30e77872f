//! [`AppState`]: the one value every handler, console page and background task shares,
//! built once by [`crate::app::Application::build`]. It sits above the domains (it holds
//! their handles) and below `http`, `console` and `app`, which all read it; nothing in a
//! domain imports it.
//!
//! It holds the configuration, the control pool, the registry, the resolver, the migration
//! catalog ([`Catalog`]: the tenant migration files, their reload and the fingerprint
//! check of a wave's plan), the tenant connector ([`Connector`]: tenant row → connection,
//! for waves, analysis and provisioning), the wave and schedule stores, this replica's
//! wave worker, the leadership flag, the metrics and the provisioner.

use std::sync::Arc;

use deadpool_postgres::Pool;
use secrecy::SecretString;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::provision::Provisioner;
use crate::registry::Registry;
use crate::resolve::{Connector, Resolver};
use crate::schedule::{Leadership, ScheduleStore};
use crate::sets::Catalog;
use crate::waves::executor::Executor;
use crate::waves::WaveStore;

/// Shared state: configuration, the control pool and the modules built on it. Cloning is
/// one reference-count increment (axum clones it for every request).
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<AppInner>);

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppInner {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The control-plane pool.
    pub pool: Pool,
    /// Tenant registry.
    pub registry: Registry,
    /// Admin bearer token.
    pub admin_token: SecretString,
    /// Resolver bearer token, when configured.
    pub resolver_token: Option<SecretString>,
    /// Named tokens (hashed, in the control DB) and this replica's lookup cache.
    pub tokens: crate::access::TokenStore,
    /// Slug → DSN resolution with its caches.
    pub resolver: Arc<Resolver>,
    /// The tenant migration files: loaded, reloaded, matched against a wave's plan.
    pub catalog: Arc<Catalog>,
    /// Tenant row → connection (passwords through the resolver's secret cache).
    pub connector: Connector,
    /// Migration waves in the control DB.
    pub waves: WaveStore,
    /// This replica's wave worker loop.
    pub executor: Arc<Executor>,
    /// Schedules in the control DB.
    pub schedules: ScheduleStore,
    /// Whether this replica currently leads (runs the scheduler).
    pub leadership: Arc<Leadership>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Creates and drops tenant databases (background jobs).
    pub provisioner: Arc<Provisioner>,
    /// The event feed, streams and webhook deliveries.
    pub events: Arc<crate::events::Events>,
    /// The last preflight results, for `/readyz`.
    pub preflight: crate::preflight::Cache,
    /// The background tasks' health (which failed lately), for `/readyz`.
    pub tasks: crate::tasks::TaskHealth,
    /// Schema drift scans (run by the leader's `drift-scan` task).
    pub scanner: crate::drift::Scanner,
}
