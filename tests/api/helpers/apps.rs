//! `TestApp`: the daemon in-process on port 0 with its own control database. `spawn_app()`
//! starts the default one; `TestApp::builder()` says what differs (settings, a config file,
//! an existing control database). A `TestApp` derefs to its [`ApiClient`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Deref;

use drover::app::Application;
use drover::config::Config;
use drover::state::AppState;
use drover::tasks::Supervisor;
use tokio_util::sync::CancellationToken;

use super::{
    connect, fresh_control_database, temp_dir, ApiClient, MigrationsDir, SecretsDir, ADMIN_TOKEN,
};

/// A running daemon on its own control database.
pub struct TestApp {
    api: ApiClient,
    pub addr: SocketAddr,
    pub database_url: String,
    pub state: AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

/// What test daemons set `DROVER_WEBHOOK_ALLOWED_NETWORKS` to: the test receivers listen
/// on loopback, which webhooks may not reach by default. Tests of that default use
/// [`TestAppBuilder::public_webhooks_only`].
pub const LOOPBACK_NETWORKS: &str = "127.0.0.0/8, ::1/128";

/// Starts the daemon on a fresh control database with the test defaults.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

/// A daemon for wave tests: these migrations and secrets, retries 100 ms apart, `extra`
/// DROVER_* settings.
pub async fn wave_app(
    migrations: &MigrationsDir,
    secrets: &SecretsDir,
    extra: &[(&str, &str)],
) -> TestApp {
    TestApp::builder()
        .env("DROVER_MIGRATIONS_DIR", migrations.path())
        .env("DROVER_SECRETS_DIR", secrets.path())
        .env("DROVER_RETRY_BACKOFF", "100ms")
        .envs(extra)
        .spawn()
        .await
}

/// Adds tasks to a daemon's supervisor (see [`TestAppBuilder::tasks`]).
type ExtraTasks = Box<dyn FnOnce(&Supervisor) + Send>;

/// What a [`TestApp`] starts with besides the defaults.
#[derive(Default)]
pub struct TestAppBuilder {
    env: BTreeMap<String, String>,
    config_file: Option<String>,
    control_db: Option<String>,
    tasks: Option<ExtraTasks>,
    public_webhooks_only: bool,
}

impl TestApp {
    /// A builder for a daemon that differs from [`spawn_app`]'s.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }
}

impl TestAppBuilder {
    /// One DROVER_* setting.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Several DROVER_* settings.
    pub fn envs(self, pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(self, |b, (k, v)| b.env(k, v))
    }

    /// A config file holding `toml` (e.g. `[[provision_servers]]`, which only the file
    /// can express).
    pub fn config_file(mut self, toml: &str) -> Self {
        self.config_file = Some(toml.to_string());
        self
    }

    /// Background tasks of the test's own, run by the daemon's supervisor beside its tasks
    /// (a failing one, to watch how the daemon notices).
    pub fn tasks(mut self, add: impl FnOnce(&Supervisor) + Send + 'static) -> Self {
        self.tasks = Some(Box::new(add));
        self
    }

    /// Webhooks as a default deployment has them: only public addresses (no
    /// `DROVER_WEBHOOK_ALLOWED_NETWORKS`).
    pub fn public_webhooks_only(mut self) -> Self {
        self.public_webhooks_only = true;
        self
    }

    /// An existing control database instead of a fresh one (a restart, a second replica).
    pub fn control_db(mut self, url: &str) -> Self {
        self.control_db = Some(url.to_string());
        self
    }

    /// Builds the application on port 0 and runs it on a task until the app is stopped
    /// or dropped.
    pub async fn spawn(self) -> TestApp {
        let database_url = match self.control_db {
            Some(url) => url,
            None => fresh_control_database().await,
        };
        let mut env: BTreeMap<String, String> = BTreeMap::from([
            ("DROVER_DATABASE_URL".into(), database_url.clone()),
            ("DROVER_LISTEN".into(), "127.0.0.1:0".into()),
            ("DROVER_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("DROVER_POOL_SIZE".into(), "8".into()),
            ("DROVER_INSTANCE_ID".into(), "test".into()),
            (
                "DROVER_WEBHOOK_ALLOWED_NETWORKS".into(),
                LOOPBACK_NETWORKS.into(),
            ),
        ]);
        if self.public_webhooks_only {
            env.remove("DROVER_WEBHOOK_ALLOWED_NETWORKS");
        }
        env.extend(self.env);
        // A token and its `_REF` together are refused: a test that reads the admin token
        // through a reference does without the default one.
        if env.contains_key("DROVER_ADMIN_TOKEN_REF") {
            env.remove("DROVER_ADMIN_TOKEN");
        }
        let file = self.config_file.map(|toml| {
            let path = temp_dir("config").join("drover.toml");
            std::fs::write(&path, toml).unwrap();
            path
        });
        let config = Config::load_with(file.as_deref(), &|k| env.get(k).cloned());
        if let Some(dir) = file.as_ref().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        let app = Application::build(config.expect("test config is valid"))
            .await
            .expect("application builds");
        let addr = app.local_addr();
        let state = app.state().clone();
        let shutdown = CancellationToken::new();
        let extra = self.tasks.unwrap_or_else(|| Box::new(|_| {}));
        let task = tokio::spawn(app.run_with(shutdown.clone(), extra));
        TestApp {
            api: ApiClient::new(format!("http://{addr}")),
            addr,
            database_url,
            state,
            shutdown,
            task: Some(task),
        }
    }
}

impl TestApp {
    /// A direct connection to the control database.
    pub async fn control_db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }

    /// Count of rows matching `where_sql` in control_plane.tenants (all rows, deleted too).
    pub async fn tenant_rows(&self, where_sql: &str) -> i64 {
        let db = self.control_db().await;
        db.query_one(
            &format!("SELECT count(*) AS n FROM control_plane.tenants WHERE {where_sql}"),
            &[],
        )
        .await
        .unwrap()
        .get("n")
    }

    /// Count of all tenant events.
    pub async fn event_rows(&self) -> i64 {
        let db = self.control_db().await;
        db.query_one("SELECT count(*) AS n FROM control_plane.tenant_events", &[])
            .await
            .unwrap()
            .get("n")
    }

    /// Waits (at most 30 s) for the daemon to stop on its own, and returns how it ended.
    pub async fn stopped_by_itself(mut self) -> anyhow::Result<()> {
        let task = self.task.take().expect("the daemon runs");
        tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("the daemon stops within 30 s")
            .expect("app task")
    }

    /// Stops the daemon and waits for it to drain.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.expect("app task").expect("app ran cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
