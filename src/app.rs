//! The running daemon: [`AppState`] (the one value handlers and tasks share) and the
//! start-up / shutdown sequence.
//!
//! ```text
//!  build(): migrate control schema (advisory lock) → pool → bind listener
//!  run():   spawn named tasks ──► serve HTTP until the shutdown token fires
//!           SIGTERM/SIGINT ──► cancel token ──► stop accepting, drain in-flight requests
//!                          ──► await every task ──► close the pool
//! ```
//!
//! State: the configuration, the control pool, the registry, the resolver, the migration
//! catalog ([`Catalog`]: the tenant migration files, their reload and the fingerprint
//! check of a wave's plan), the tenant connector ([`Connector`]: tenant row → connection,
//! for waves, analysis and provisioning), the wave and schedule stores, this replica's
//! wave worker, the leadership flag, the metrics and the provisioner.
//!
//! Tasks: `http` (the axum server), `tenant-notify` (LISTEN for tenant changes, see
//! [`crate::resolve::listener`]), `wave-worker` (claims and migrates wave targets, see
//! [`crate::waves::executor`]), `leader` (the leader lease and the replica roster) and
//! `scheduler` (fires due schedules while this replica leads), see [`crate::schedule`], one
//! `provision` task per provisioning job and `provision-drain`, which gives them the grace
//! period on shutdown (see [`crate::provision`]); `events-notify` (LISTEN for committed
//! events, waking streams) and `webhook-worker` (sends the webhook outbox), see
//! [`crate::events`]. Every task is named, watches the same
//! [`CancellationToken`] and is awaited before the pool closes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use deadpool_postgres::Pool;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::db;
use crate::metrics::Metrics;
use crate::provision::{self, Provisioner};
use crate::registry::Registry;
use crate::resolve::{self, Connector, Resolver};
use crate::schedule::{Leadership, ScheduleStore};
use crate::secrets::SecretStore;
use crate::sets::Catalog;
use crate::waves::executor::Executor;
use crate::waves::WaveStore;

/// Shared state: configuration, the control pool and the modules built on it. Cloning is
/// one reference-count increment (axum clones it for every request).
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

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
}

/// The secret backends the configuration enables (`env:` always).
pub fn secret_store(config: &Config) -> anyhow::Result<SecretStore> {
    Ok(SecretStore::from_settings(&config.secrets)?)
}

/// A daemon that has migrated the control schema and bound its port, ready to run.
pub struct Application {
    state: AppState,
    listener: TcpListener,
    /// HTTPS on the listener, when `tls_cert_file` and `tls_key_file` are set.
    https: Option<tokio_rustls::TlsAcceptor>,
}

impl Application {
    /// Migrates the control schema, opens the pool and binds `config.listen` (port 0 picks
    /// a free port, which the tests use).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.require_serve()?;
        let url = config.require_database_url()?.clone();
        let applied = db::migrate_control(&url, config.ca_file.as_deref())
            .await
            .context("applying control-plane migrations")?;
        if !applied.is_empty() {
            tracing::info!(?applied, "control-plane migrations applied");
        }
        let pool = db::control_pool(&url, config.pool_size, config.ca_file.as_deref())?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (DROVER_LISTEN)", config.listen))?;
        // Read now: a bad certificate or key stops the start-up, not the first client.
        let https = config
            .https
            .as_ref()
            .map(crate::http::https::acceptor)
            .transpose()?;
        let metrics = Arc::new(Metrics::new());
        let secrets = secret_store(&config)?;
        let resolver = Arc::new(
            Resolver::new(pool.clone(), secrets.clone(), &config.cache, &metrics)
                .with_scope(config.ref_scope.clone()),
        );
        // A missing directory is an empty catalog (waves then refuse with a clear error);
        // a broken one stops the start-up naming the bad file.
        let catalog = Arc::new(
            Catalog::load(&config.migrations_dir)
                .with_context(|| {
                    format!(
                        "loading tenant migrations from {} (DROVER_MIGRATIONS_DIR)",
                        config.migrations_dir.display()
                    )
                })?
                .with_control(pool.clone()),
        );
        let connector = Connector::new(resolver.clone(), config.ca_file.clone());
        let waves = WaveStore::new(pool.clone());
        let executor = Arc::new(Executor::new(
            waves.clone(),
            catalog.clone(),
            connector.clone(),
            config.waves.clone(),
            metrics.clone(),
        ));
        let config = Arc::new(config);
        let registry = Registry::with_scope(pool.clone(), config.ref_scope.clone());
        let events = Arc::new(
            crate::events::Events::new(
                pool.clone(),
                secrets.clone(),
                &config.events,
                db::control_addresses(&url).await,
                metrics.clone(),
            )
            .context("building the webhook HTTP client")?,
        );
        let provisioner = Arc::new(Provisioner::new(provision::Parts {
            settings: config.provision.clone(),
            secrets,
            registry: registry.clone(),
            catalog: catalog.clone(),
            connector: connector.clone(),
            resolver: resolver.clone(),
            metrics: metrics.clone(),
        })?);
        let state = AppState(Arc::new(AppInner {
            events,
            preflight: crate::preflight::Cache::default(),
            provisioner,
            schedules: ScheduleStore::new(pool.clone()),
            leadership: Arc::new(Leadership::default()),
            metrics: metrics.clone(),
            catalog,
            connector,
            waves,
            executor,
            admin_token: config.admin_token.clone().context("admin token missing")?,
            resolver_token: config.resolver_token.clone(),
            tokens: crate::access::TokenStore::new(pool.clone()),
            resolver,
            registry,
            pool,
            config,
        }));
        Ok(Application {
            state,
            listener,
            https,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.listen)
    }

    /// The shared state (tests reach the registry through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then drains and closes.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application {
            state,
            listener,
            https,
        } = self;
        // The peer's address reaches handlers (`ConnectInfo`): the console believes a
        // proxy's `X-Forwarded-*` only from `trusted_proxies`.
        let router =
            crate::http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(addr = %listener.local_addr()?, instance = %state.config.instance_id,
            https = https.is_some(), "drover listening");
        let http_shutdown = shutdown.clone();
        let accept_shutdown = shutdown.clone();
        let streams = state.events.stop.clone();
        let http = tokio::spawn(
            async move {
                // Open event streams end when shutdown starts: graceful shutdown waits for
                // every response, and a stream never ends on its own.
                let stop = async move {
                    http_shutdown.cancelled().await;
                    streams.cancel();
                };
                match https {
                    Some(acceptor) => {
                        let tls = crate::http::https::HttpsListener::new(
                            listener,
                            acceptor,
                            accept_shutdown,
                        )?;
                        // axum hands a custom listener's peer address to `ConnectInfo`
                        // through its `TapIo` wrapper; the tap itself does nothing.
                        let tls = axum::serve::ListenerExt::tap_io(tls, |_| {});
                        axum::serve(tls, router).with_graceful_shutdown(stop).await
                    }
                    None => {
                        axum::serve(listener, router)
                            .with_graceful_shutdown(stop)
                            .await
                    }
                }
            }
            .instrument(tracing::info_span!("task", name = "http")),
        );
        let url = state.config.require_database_url()?.clone();
        let notify = tokio::spawn(
            resolve::listener::run(
                state.resolver.clone(),
                url.clone(),
                state.config.ca_file.clone(),
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("task", name = "tenant-notify")),
        );
        let events_notify = tokio::spawn(
            crate::events::notify::run(
                state.events.wake.clone(),
                url.clone(),
                state.config.ca_file.clone(),
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("task", name = "events-notify")),
        );
        let webhooks = tokio::spawn(
            crate::events::webhooks::deliver::run(
                state.events.sender.clone(),
                state.events.wake.clone(),
                shutdown.clone(),
                state.config.shutdown_grace,
            )
            .instrument(tracing::info_span!("task", name = "webhook-worker")),
        );
        let worker = tokio::spawn(
            state
                .executor
                .clone()
                .run(shutdown.clone(), state.config.shutdown_grace)
                .instrument(tracing::info_span!("task", name = "wave-worker")),
        );
        let leader = tokio::spawn(
            crate::schedule::leader::run(
                state.pool.clone(),
                state.config.instance_id.clone(),
                state.config.leader_ttl,
                state.leadership.clone(),
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("task", name = "leader")),
        );
        let wake_worker = {
            let executor = state.executor.clone();
            move || executor.poke()
        };
        let scheduler = tokio::spawn(
            crate::schedule::scheduler::run(
                state.pool.clone(),
                state.config.instance_id.clone(),
                state.leadership.clone(),
                state.catalog.clone(),
                wake_worker,
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("task", name = "scheduler")),
        );
        // Drains provisioning jobs as soon as shutdown starts (not after the HTTP server):
        // a `?wait=true` request holds the server's graceful shutdown until its job ends.
        let provisioning = tokio::spawn({
            let (state, shutdown) = (state.clone(), shutdown.clone());
            async move {
                shutdown.cancelled().await;
                let grace = state.config.shutdown_grace;
                state.provisioner.shutdown(grace).await;
            }
            .instrument(tracing::info_span!("task", name = "provision-drain"))
        });
        let result = http.await.context("http task panicked")?;
        // The HTTP server only returns early on an error; stop the others with it.
        shutdown.cancel();
        notify.await.context("tenant-notify task panicked")?;
        worker.await.context("wave-worker task panicked")?;
        webhooks.await.context("webhook-worker task panicked")?;
        events_notify.await.context("events-notify task panicked")?;
        provisioning
            .await
            .context("provision-drain task panicked")?;
        scheduler.await.context("scheduler task panicked")?;
        // Last: resigning leadership lets another replica take over at once.
        leader.await.context("leader task panicked")?;
        state.pool.close();
        tracing::info!("drover stopped");
        result.context("http server failed")
    }
}

/// Cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken, executor: Option<Arc<Executor>>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        #[cfg(not(unix))]
        let mut term: Option<()> = None;
        let first = next_signal(&mut term).await;
        tracing::info!("{first}: shutting down (a second signal stops at once)");
        token.cancel();
        let second = next_signal(&mut term).await;
        // Exiting closes every connection: the server rolls back any open tenant
        // transaction, and the leases of unfinished tenants expire for other replicas.
        tracing::warn!("{second} again: stopping now, in-flight tenants are rolled back");
        if let Some(e) = executor {
            e.cancel_in_flight().await;
        }
        std::process::exit(130);
    });
}

#[cfg(unix)]
async fn next_signal(term: &mut Option<tokio::signal::unix::Signal>) -> &'static str {
    let term_recv = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term_recv => "SIGTERM",
    }
}

#[cfg(not(unix))]
async fn next_signal(_: &mut Option<()>) -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// `drover serve`: build, then run until a signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let token = CancellationToken::new();
    cancel_on_signal(token.clone(), Some(app.state().executor.clone()));
    app.run(token).await
}
