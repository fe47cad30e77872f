//! The running daemon: the start-up / shutdown sequence around [`AppState`] (the one value
//! handlers and tasks share, in [`crate::state`]).
//!
//! ```text
//!  build(): migrate control schema (advisory lock) → pool → bind listener
//!  run():   spawn named tasks under one supervisor ──► serve HTTP until the token fires
//!           SIGTERM/SIGINT ──► cancel token ──► stop accepting, drain in-flight requests
//!                          ──► wait for every task (naming any late past the grace)
//!                          ──► close the pool
//! ```
//!
//! Tasks, all under one [`Supervisor`] (see [`crate::tasks`]: a task that panics, fails or
//! returns early is logged, counted, listed by `/readyz` and restarted with backoff):
//! `http` (the axum server; critical: its failure stops the daemon with an error),
//! `tenant-notify` (LISTEN for tenant changes, see [`crate::resolve::listener`]),
//! `wave-worker` (claims and migrates wave targets, see [`crate::waves::executor`]),
//! `leader` (the leader lease and the replica roster) and `scheduler` (fires due schedules
//! while this replica leads), see [`crate::schedule`]; `provision-drain`, which gives the
//! provisioning jobs the grace period on shutdown (each job is a task of
//! [`crate::provision`]'s own), and `server-probe` (each provisioning server's
//! reachability, every 5 s, for `GET /v1/servers`), `provision-resume` (starts the
//! provisioning retries due on tenant rows that a stopped replica left, every 2 s);
//! `token-refresh` (this replica's copy of
//! the token table: LISTEN for changes, reload every second, see
//! [`crate::access::snapshot`]); `events-notify` (LISTEN for committed events, waking
//! streams) and `webhook-worker` (sends the webhook outbox), `provision-requests` (sends
//! external provisioners their requests), see [`crate::events`];
//! `fleet-gauges` (the `/metrics` snapshot, see [`crate::http::metrics`]); `prune` (removes
//! history past its retention every `prune_interval` while this replica leads, see
//! [`crate::retention`]); `drift-scan` (schema drift scans asked for, or every
//! `drift_scan_interval`, while this replica leads, see [`crate::drift::scan`]). Every task
//! watches the same [`CancellationToken`] and is awaited before the pool closes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db;
use crate::metrics::Metrics;
use crate::provision::{self, Provisioner};
use crate::registry::Registry;
use crate::resolve::{self, Connector, Resolver};
use crate::schedule::{Leadership, ScheduleStore};
use crate::secrets::SecretStore;
use crate::sets::Catalog;
use crate::state::{AppInner, AppState};
use crate::tasks::{Policy, Supervisor};
use crate::waves::executor::Executor;
use crate::waves::WaveStore;

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
        let registry = Registry::with_scope(pool.clone(), config.ref_scope.clone())
            .with_lifecycle(config.lifecycle.clone());
        warn_refs_out_of_scope(&registry).await;
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
            pool: pool.clone(),
        })?);
        let tokens = crate::access::TokenStore::new(pool.clone());
        tokens.load().await.context("reading the token table")?;
        let scanner = crate::drift::Scanner::new(
            pool.clone(),
            connector.clone(),
            catalog.clone(),
            config.drift.clone(),
            config.ca_file.clone(),
        );
        let state = AppState(Arc::new(AppInner {
            scanner,
            events,
            preflight: crate::preflight::Cache::default(),
            tasks: crate::tasks::TaskHealth::default(),
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
            tokens,
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

    /// Serves until `shutdown` is cancelled, then drains and closes. Returns an error when
    /// a task the daemon cannot do without (the HTTP server) failed and stopped it.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.run_with(shutdown, |_| {}).await
    }

    /// [`Application::run`], letting `extra` add tasks to the same supervisor once the
    /// daemon's own are spawned (the tests add a failing one and watch `/readyz`).
    pub async fn run_with(
        self,
        shutdown: CancellationToken,
        extra: impl FnOnce(&Supervisor),
    ) -> anyhow::Result<()> {
        let Application {
            state,
            listener,
            https,
        } = self;
        let tasks = Supervisor::new(
            shutdown,
            state.tasks.clone(),
            state.metrics.task_failures_total.clone(),
        );
        // Before the server starts: the first scrape already sees every bounded series.
        crate::http::metrics::preset(&state.metrics);
        spawn_http(&tasks, &state, listener, https)?;
        spawn_listeners(&tasks, &state)?;
        spawn_workers(&tasks, &state);
        extra(&tasks);
        let stopped = tasks.stop(state.config.shutdown_grace).await;
        // Last: every task is done with the pool (the leader has resigned its lease).
        state.pool.close();
        tracing::info!("drover stopped");
        match stopped.critical {
            Some(failure) => Err(failure.into()),
            None => Ok(()),
        }
    }
}

/// The `http` task: the API and the console side by side (neither mounts the other).
/// Critical: the daemon stops when it fails; it cannot restart, since it owns the listener.
fn spawn_http(
    tasks: &Supervisor,
    state: &AppState,
    listener: TcpListener,
    https: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<()> {
    // The server hands handlers the peer's address (`ConnectInfo`): the console believes a
    // proxy's `X-Forwarded-*` only from `trusted_proxies`.
    let router = crate::http::layers(
        crate::http::router(state).merge(crate::console::router(state.clone())),
        state.clone(),
    );
    tracing::info!(addr = %listener.local_addr()?, instance = %state.config.instance_id,
        https = https.is_some(), "drover listening");
    let streams = state.events.stop.clone();
    let limits = state.config.listener;
    let mut once = Some((listener, https, router));
    tasks.spawn("http", Policy::Critical, move |shutdown| {
        let parts = once.take();
        let streams = streams.clone();
        async move {
            let Some((listener, https, router)) = parts else {
                anyhow::bail!("the HTTP server cannot start twice");
            };
            // Open event streams end when shutdown starts: graceful shutdown waits for
            // every response, and a stream never ends on its own.
            let accept_shutdown = shutdown.clone();
            let stop = async move {
                shutdown.cancelled().await;
                streams.cancel();
            };
            use crate::http::serve::{serve, Plain};
            let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
            match https {
                Some(acceptor) => {
                    let tls = crate::http::https::HttpsListener::new(
                        listener,
                        acceptor,
                        slots,
                        accept_shutdown,
                    );
                    serve(tls, router, limits.header_timeout, stop).await
                }
                None => {
                    serve(
                        Plain::new(listener, slots),
                        router,
                        limits.header_timeout,
                        stop,
                    )
                    .await
                }
            }
            Ok(())
        }
    });
    Ok(())
}

/// `tenant-notify`, `token-refresh` and `events-notify`: LISTEN for committed changes
/// (restarted on failure).
fn spawn_listeners(tasks: &Supervisor, state: &AppState) -> anyhow::Result<()> {
    let url = state.config.require_database_url()?.clone();
    let (resolver, ca) = (state.resolver.clone(), state.config.ca_file.clone());
    let tenant_url = url.clone();
    tasks.spawn("tenant-notify", Policy::Restart, move |shutdown| {
        resolve::listener::run(resolver.clone(), tenant_url.clone(), ca.clone(), shutdown)
    });
    let (tokens, ca) = (state.tokens.snapshot(), state.config.ca_file.clone());
    let tokens_url = url.clone();
    tasks.spawn("token-refresh", Policy::Restart, move |shutdown| {
        crate::access::snapshot::run(tokens.clone(), tokens_url.clone(), ca.clone(), shutdown)
    });
    let (wake, ca) = (state.events.wake.clone(), state.config.ca_file.clone());
    tasks.spawn("events-notify", Policy::Restart, move |shutdown| {
        crate::events::notify::run(wake.clone(), url.clone(), ca.clone(), shutdown)
    });
    Ok(())
}

/// The loops doing the daemon's work, each restarted with backoff when it fails.
fn spawn_workers(tasks: &Supervisor, state: &AppState) {
    let grace = state.config.shutdown_grace;
    let (sender, wake) = (state.events.sender.clone(), state.events.wake.clone());
    tasks.spawn("webhook-worker", Policy::Restart, move |shutdown| {
        crate::events::webhooks::deliver::run(sender.clone(), wake.clone(), shutdown, grace)
    });
    let (sender, wake) = (state.events.sender.clone(), state.events.wake.clone());
    let provisioner = state.provisioner.clone();
    tasks.spawn("provision-requests", Policy::Restart, move |shutdown| {
        crate::events::webhooks::provisioners::run(
            sender.clone(),
            provisioner.clone(),
            wake.clone(),
            shutdown,
        )
    });
    let resolver = state.resolver.clone();
    tasks.spawn("secret-warm", Policy::Restart, move |shutdown| {
        resolve::secret::warm_task(resolver.clone(), shutdown)
    });
    let executor = state.executor.clone();
    tasks.spawn("wave-worker", Policy::Restart, move |shutdown| {
        executor.clone().run(shutdown, grace)
    });
    let s = state.clone();
    tasks.spawn("leader", Policy::Restart, move |shutdown| {
        crate::schedule::leader::run(
            s.pool.clone(),
            s.config.instance_id.clone(),
            s.config.leader_ttl,
            s.leadership.clone(),
            shutdown,
        )
    });
    let s = state.clone();
    tasks.spawn("scheduler", Policy::Restart, move |shutdown| {
        let executor = s.executor.clone();
        crate::schedule::scheduler::run(
            s.pool.clone(),
            s.config.instance_id.clone(),
            s.leadership.clone(),
            s.catalog.clone(),
            move || executor.poke(),
            shutdown,
        )
    });
    // Drains provisioning jobs as soon as shutdown starts (not after the HTTP server):
    // a `?wait=true` request holds the server's graceful shutdown until its job ends.
    let s = state.clone();
    tasks.spawn("provision-drain", Policy::Restart, move |shutdown| {
        let s = s.clone();
        async move {
            shutdown.cancelled().await;
            s.provisioner.shutdown(s.config.shutdown_grace).await;
        }
    });
    let s = state.clone();
    tasks.spawn("lifecycle-sweep", Policy::Restart, move |shutdown| {
        let leadership = s.leadership.clone();
        crate::registry::trials::run(
            s.registry.clone(),
            s.provisioner.actor().clone(),
            move || leadership.is_leader(),
            shutdown,
        )
    });
    let s = state.clone();
    tasks.spawn("drift-scan", Policy::Restart, move |shutdown| {
        let leadership = s.leadership.clone();
        s.scanner
            .clone()
            .run(move || leadership.is_leader(), shutdown)
    });
    let provisioner = state.provisioner.clone();
    tasks.spawn("server-probe", Policy::Restart, move |shutdown| {
        provision::probe::run(provisioner.clone(), shutdown)
    });
    let provisioner = state.provisioner.clone();
    tasks.spawn("provision-resume", Policy::Restart, move |shutdown| {
        provision::resume::run(provisioner.clone(), shutdown)
    });
    let pruner = Arc::new(pruner(state));
    tasks.spawn("prune", Policy::Restart, move |shutdown| {
        pruner.clone().run(shutdown)
    });
    let s = state.clone();
    tasks.spawn("fleet-gauges", Policy::Restart, move |shutdown| {
        crate::http::metrics::refresh_fleet_gauges(s.clone(), shutdown)
    });
}

/// The leader's pruner: the domains' sweeps, then the console's sessions.
fn pruner(state: &AppState) -> crate::retention::Pruner {
    let settings = &state.config.retention;
    let mut sweeps = crate::retention::domain_sweeps(settings);
    sweeps.push(crate::console::session::retention_sweep(
        settings.console_sessions,
    ));
    crate::retention::Pruner::new(
        state.pool.clone(),
        sweeps,
        settings.prune_interval,
        state.leadership.clone(),
        state.metrics.pruned_rows_total.clone(),
    )
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

/// Logs, once at start, each live tenant whose secret reference the scopes refuse (after an
/// upgrade narrowed them, say): it does not resolve until its secret moves. `drover doctor`
/// lists the same.
async fn warn_refs_out_of_scope(registry: &Registry) {
    match registry.refs_out_of_scope().await {
        Ok(found) => {
            for (slug, secret_ref, rule) in found {
                tracing::warn!(%slug, %secret_ref, %rule,
                    "tenant's secret reference is outside the scopes and will not resolve; move the secret and PATCH the reference (drover doctor lists them all)");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not check tenants' secret references against the scopes")
        }
    }
}
