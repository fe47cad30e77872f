//! Test harness: one throwaway PostgreSQL cluster per test binary (or the server named by
//! `DROVER_TEST_DATABASE_URL`), a fresh database per test, and `spawn_app` running the
//! real router on port 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use drover::app::{AppState, Application};
use drover::config::Config;
use drover::devcluster::{Cluster, ClusterOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The admin token every test app uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

enum Server {
    Owned(Cluster),
    External(String),
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("DROVER_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server::External(url),
        _ => {
            let opts = ClusterOptions {
                stop_with_process: true,
                ..ClusterOptions::default()
            };
            Server::Owned(
                Cluster::start(opts)
                    .unwrap_or_else(|e| panic!("cannot start a test PostgreSQL: {e}")),
            )
        }
    })
}

/// URL of database `db` on the test server, as its superuser.
pub fn db_url(db: &str) -> String {
    match server() {
        Server::Owned(c) => c.url(db),
        Server::External(url) => {
            let (base, query) = match url.split_once('?') {
                Some((b, q)) => (b, format!("?{q}")),
                None => (url.as_str(), String::new()),
            };
            let cut = base
                .rfind('/')
                .filter(|i| *i > "postgres://".len())
                .unwrap_or(base.len());
            format!("{}/{db}{query}", &base[..cut])
        }
    }
}

/// The maintenance database used to create per-test databases.
fn admin_db() -> String {
    match server() {
        Server::Owned(_) => db_url("postgres"),
        Server::External(url) => url.clone(),
    }
}

/// Opens a plain connection.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect failed: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Creates a fresh, uniquely named database and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let admin = connect(&admin_db()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e:?}"));
    db_url(&name)
}

/// A configuration for a test daemon on `database_url`; `extra` adds DROVER_* pairs.
pub fn test_config(database_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut env: BTreeMap<String, String> = BTreeMap::from([
        ("DROVER_DATABASE_URL".into(), database_url.into()),
        ("DROVER_LISTEN".into(), "127.0.0.1:0".into()),
        ("DROVER_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("DROVER_POOL_SIZE".into(), "8".into()),
        ("DROVER_INSTANCE_ID".into(), "test".into()),
    ]);
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    // A token and its `_REF` together are refused: a test that reads the admin token
    // through a reference does without the default one.
    if env.contains_key("DROVER_ADMIN_TOKEN_REF") {
        env.remove("DROVER_ADMIN_TOKEN");
    }
    Config::load_with(None, &|k| env.get(k).cloned()).expect("test config is valid")
}

/// Starts the daemon on a fresh control database with a config file holding `toml` (e.g.
/// `[[provision_servers]]`, which only the file can express) and extra DROVER_* settings.
pub async fn spawn_app_with_file(toml: &str, extra: &[(&str, &str)]) -> TestApp {
    static N: AtomicU32 = AtomicU32::new(0);
    let url = fresh_database("control").await;
    let path = std::env::temp_dir().join(format!(
        "drover-test-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, toml).unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::from([
        ("DROVER_DATABASE_URL".into(), url.clone()),
        ("DROVER_LISTEN".into(), "127.0.0.1:0".into()),
        ("DROVER_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ("DROVER_POOL_SIZE".into(), "8".into()),
        ("DROVER_INSTANCE_ID".into(), "test".into()),
    ]);
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::load_with(Some(&path), &|k| env.get(k).cloned());
    let _ = std::fs::remove_file(&path);
    let app = Application::build(config.expect("test config is valid"))
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        addr,
        database_url: url,
        state,
        http: reqwest::Client::new(),
        shutdown,
        task: Some(task),
    }
}

/// A running daemon on its own control database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub database_url: String,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Starts the daemon on a fresh control database.
pub async fn spawn_app() -> TestApp {
    let url = fresh_database("control").await;
    spawn_app_on(&url).await
}

/// Starts the daemon on a fresh control database with extra DROVER_* settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let url = fresh_database("control").await;
    spawn_app_on_with(&url, extra).await
}

/// Starts the daemon on an existing control database.
pub async fn spawn_app_on(database_url: &str) -> TestApp {
    spawn_app_on_with(database_url, &[]).await
}

/// Starts the daemon on an existing control database with extra DROVER_* settings.
pub async fn spawn_app_on_with(database_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let app = Application::build(test_config(database_url, extra))
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        addr,
        database_url: database_url.to_string(),
        state,
        http: reqwest::Client::new(),
        shutdown,
        task: Some(task),
    }
}

impl TestApp {
    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A request with the admin token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base()))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// `GET path` with the admin token, decoded from JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `POST /v1/tenants`.
    pub async fn create_tenant(&self, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, "/v1/tenants")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/tenants?wait=true`: the answer once provisioning has finished.
    pub async fn create_tenant_waiting(&self, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, "/v1/tenants?wait=true")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/tenants/{slug}/provision?wait=true`.
    pub async fn provision_waiting(&self, slug: &str) -> reqwest::Response {
        self.req(
            reqwest::Method::POST,
            &format!("/v1/tenants/{slug}/provision?wait=true"),
        )
        .send()
        .await
        .unwrap()
    }

    /// `GET /v1/servers` → its items.
    pub async fn servers(&self) -> Vec<Value> {
        let list: Value = self.get_json("/v1/servers").await;
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// `GET /v1/tenants?email=` → the slugs found.
    pub async fn slugs_by_email(&self, email: &str) -> Vec<String> {
        let page: Value = self
            .req(reqwest::Method::GET, "/v1/tenants")
            .query(&[("email", email)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t["slug"].as_str().map(str::to_string))
            .collect()
    }

    /// `GET /v1/tenants/{slug}/limits`.
    pub async fn limits(&self, slug: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, &format!("/v1/tenants/{slug}/limits"))
            .send()
            .await
            .unwrap()
    }

    /// `PUT /v1/tenants/{slug}/limits`.
    pub async fn put_limits(&self, slug: &str, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::PUT, &format!("/v1/tenants/{slug}/limits"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/tenants/{slug}`.
    pub async fn get_tenant(&self, slug: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, &format!("/v1/tenants/{slug}"))
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/tenants/{slug}/{action}` with an optional body.
    pub async fn act(&self, slug: &str, action: &str, body: Option<Value>) -> reqwest::Response {
        let mut r = self.req(
            reqwest::Method::POST,
            &format!("/v1/tenants/{slug}/{action}"),
        );
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// Event types of a tenant, newest first.
    pub async fn event_types(&self, slug: &str) -> Vec<String> {
        let page: Value = self
            .req(
                reqwest::Method::GET,
                &format!("/v1/tenants/{slug}/events?limit=1000"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    }

    /// A request with `token` instead of the admin token.
    pub fn req_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base()))
            .bearer_auth(token)
    }

    /// `POST /v1/tokens` with the admin token.
    pub async fn create_token(
        &self,
        name: &str,
        role: &str,
        expires_in: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({ "name": name, "role": role });
        if let Some(e) = expires_in {
            body["expires_in"] = json!(e);
        }
        self.req(reqwest::Method::POST, "/v1/tokens")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A new named token with `role` (asserts the 201); returns the token.
    pub async fn issue_token(&self, name: &str, role: &str) -> String {
        let resp = self.create_token(name, role, None).await;
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::CREATED,
            "create token {name}"
        );
        let body: Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// `POST /v1/migration-sets` with the admin token.
    pub async fn push_set(&self, body: &Value) -> reqwest::Response {
        push_set_at(&self.base(), ADMIN_TOKEN, body).await
    }

    /// `GET /v1/migration-sets/{id}` (an id, a label or `latest`).
    pub async fn get_set(&self, id: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, &format!("/v1/migration-sets/{id}"))
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/migration-sets` → the items.
    pub async fn list_sets(&self) -> Vec<Value> {
        let page: Value = self.get_json("/v1/migration-sets").await;
        page["items"].as_array().unwrap().clone()
    }

    /// `DELETE /v1/migration-sets/{id}`.
    pub async fn delete_set(&self, id: &str) -> reqwest::Response {
        self.req(reqwest::Method::DELETE, &format!("/v1/migration-sets/{id}"))
            .send()
            .await
            .unwrap()
    }

    /// Pushes `files` (with `label`), expecting 201 or 200; the set's id.
    pub async fn pushed_set(&self, files: &[(&str, &str)], label: Option<&str>) -> String {
        let resp = self.push_set(&set_body(files, label)).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "push: {status} {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// `GET /v1/tokens` with the admin token, as text (to look for leaked values).
    pub async fn list_tokens_text(&self) -> String {
        self.req(reqwest::Method::GET, "/v1/tokens")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `DELETE /v1/tokens/{name}` with the admin token.
    pub async fn revoke_token(&self, name: &str) -> reqwest::Response {
        self.req(reqwest::Method::DELETE, &format!("/v1/tokens/{name}"))
            .send()
            .await
            .unwrap()
    }

    /// The value of one sample of `/metrics` (`name{labels}` exactly as exposed), 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// A direct connection to the control database.
    pub async fn control_db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }

    /// Count of rows matching `where_sql` in control_plane.tenants (all rows, deleted too).
    pub async fn tenant_rows(&self, where_sql: &str) -> i64 {
        let db = self.control_db().await;
        db.query_one(
            &format!("SELECT count(*) FROM control_plane.tenants WHERE {where_sql}"),
            &[],
        )
        .await
        .unwrap()
        .get(0)
    }

    /// Count of all tenant events.
    pub async fn event_rows(&self) -> i64 {
        let db = self.control_db().await;
        db.query_one("SELECT count(*) FROM control_plane.tenant_events", &[])
            .await
            .unwrap()
            .get(0)
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

/// A valid create body for `slug`.
pub fn tenant_body(slug: &str) -> Value {
    json!({
        "slug": slug,
        "display_name": format!("{slug} Inc."),
        "db_name": format!("t_{}", slug.replace('-', "_")),
        "db_host": "db1.internal",
        "db_port": 5432,
        "db_user": format!("u_{}", slug.replace('-', "_")),
        "db_secret_ref": format!("file:tenants/{slug}"),
        "labels": {"plan": "pro", "region": "eu"},
        "status": "active"
    })
}

/// Path of the built `drover` binary.
pub fn drover_bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

/// A `drover` command with a clean DROVER_* environment.
pub fn drover_cmd() -> std::process::Command {
    let mut cmd = std::process::Command::new(drover_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("DROVER_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Host and port of the test server, for tenant rows that point at it.
pub fn server_host_port() -> (String, u16) {
    let cfg: tokio_postgres::Config = db_url("postgres").parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    (host, cfg.get_ports().first().copied().unwrap_or(5432))
}

/// A tenant database owned by a login role that must authenticate with `password`
/// (the harness' pg_hba requires SCRAM for members of `drover_password_auth`).
/// Returns the database (and role) name.
pub async fn password_tenant_db(prefix: &str, password: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let admin = connect(&admin_db()).await;
    let quoted_pw = password.replace('\'', "''");
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             CREATE ROLE \"{name}\" LOGIN PASSWORD '{quoted_pw}' IN ROLE drover_password_auth;"
        ))
        .await
        .unwrap_or_else(|e| panic!("create role {name}: {e:?}"));
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("create tenant db {name}: {e:?}"));
    name
}

/// A fresh directory for `file:` secrets, removed when dropped.
pub struct SecretsDir(pub std::path::PathBuf);

impl SecretsDir {
    /// Creates an empty directory.
    pub fn new() -> SecretsDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "drover-test-secrets-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        SecretsDir(dir)
    }

    /// Writes `value` (plus a newline, as editors do) to `name`.
    pub fn put(&self, name: &str, value: &str) {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{value}\n")).unwrap();
    }

    /// The directory as a string for DROVER_SECRETS_DIR.
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SecretsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Collects a child's stderr on a thread, so a chatty child never blocks on a full pipe.
pub fn drain_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    })
}

/// A temporary tenant-migrations directory.
pub struct MigrationsDir(pub std::path::PathBuf);

impl MigrationsDir {
    /// A directory holding `files` (name, SQL).
    pub fn new(files: &[(&str, &str)]) -> MigrationsDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "drover-test-migrations-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let d = MigrationsDir(dir);
        for (name, sql) in files {
            d.put(name, sql);
        }
        d
    }

    /// Adds or replaces a file.
    pub fn put(&self, name: &str, sql: &str) {
        std::fs::write(self.0.join(name), sql).unwrap();
    }

    /// The path as a string.
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for MigrationsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Migrations whose every step leaves a row in `side_effects`, so a test can prove each
/// ran exactly once per tenant. `sleep` slows V2 and V3 down to widen crash windows.
pub fn counted_migrations(sleep_secs: f64) -> Vec<(String, String)> {
    vec![
        (
            "V1__side_effects.sql".into(),
            "CREATE TABLE side_effects (version int NOT NULL, at timestamptz DEFAULT clock_timestamp());\n\
             INSERT INTO side_effects (version) VALUES (1);"
                .into(),
        ),
        (
            "V2__widgets.sql".into(),
            format!("CREATE TABLE widgets (id int PRIMARY KEY, name text);\nINSERT INTO side_effects (version) VALUES (2);\nSELECT pg_sleep({sleep_secs});"),
        ),
        (
            "V3__widget_colour.sql".into(),
            format!("ALTER TABLE widgets ADD COLUMN colour text;\nINSERT INTO side_effects (version) VALUES (3);\nSELECT pg_sleep({sleep_secs});"),
        ),
    ]
}

/// A tenant database registered with the daemon.
pub struct TenantDb {
    pub slug: String,
    pub url: String,
}

/// Creates `n` tenant databases on the test server named `{prefix}-{i}` and registers them
/// (active; the first `canaries` flagged canary). All share the `file:tenants/pw` secret.
pub async fn register_tenants(
    app: &TestApp,
    secrets: &SecretsDir,
    prefix: &str,
    n: usize,
    canaries: usize,
) -> Vec<TenantDb> {
    register_tenants_at(&app.base(), secrets, prefix, n, canaries).await
}

/// [`register_tenants`] against any daemon's base URL.
pub async fn register_tenants_at(
    base: &str,
    secrets: &SecretsDir,
    prefix: &str,
    n: usize,
    canaries: usize,
) -> Vec<TenantDb> {
    secrets.put("tenants/pw", "unused-with-trust-auth");
    let http = reqwest::Client::new();
    let (host, port) = server_host_port();
    let mut out = Vec::new();
    for i in 0..n {
        let url = fresh_database("tenant").await;
        let db = url.rsplit('/').next().unwrap().to_string();
        let slug = format!("{prefix}-{i:03}");
        let mut body = tenant_body(&slug);
        body["db_host"] = json!(host);
        body["db_port"] = json!(port);
        body["db_name"] = json!(db);
        body["db_user"] = json!("postgres");
        body["db_secret_ref"] = json!("file:tenants/pw");
        body["canary"] = json!(i < canaries);
        let resp = http
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::CREATED,
            "{}",
            resp.text().await.unwrap()
        );
        out.push(TenantDb { slug, url });
    }
    out
}

/// The body of `POST /v1/migration-sets`.
pub fn set_body(files: &[(&str, &str)], label: Option<&str>) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|(name, sql)| json!({ "name": name, "sql": sql }))
        .collect();
    match label {
        Some(l) => json!({ "label": l, "files": files }),
        None => json!({ "files": files }),
    }
}

/// `POST /v1/migration-sets` against any daemon's base URL with `token`.
pub async fn push_set_at(base: &str, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/migration-sets"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `POST /v1/waves` → the wave id.
pub async fn start_wave(app: &TestApp, body: Value) -> String {
    start_wave_at(&app.base(), body).await
}

/// [`start_wave`] against any daemon's base URL.
pub async fn start_wave_at(base: &str, body: Value) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/waves"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// `GET /v1/waves/{id}` against any daemon base URL.
pub async fn wave_at(base: &str, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/v1/waves/{id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /v1/waves/{id}/events`: (type, actor, payload) of the wave's timeline, oldest first.
pub async fn wave_timeline(app: &TestApp, id: &str) -> Vec<(String, String, Value)> {
    let page: Value = app.get_json(&format!("/v1/waves/{id}/events")).await;
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page:#}"))
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .collect()
}

/// `POST /v1/waves/{id}/{action}` (pause, resume, abort, promote) as `actor`; the wave after it.
pub async fn wave_action(app: &TestApp, id: &str, action: &str, actor: &str) -> Value {
    let resp = app
        .req(reqwest::Method::POST, &format!("/v1/waves/{id}/{action}"))
        .header("X-Drover-Actor", actor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "{action} {id}");
    resp.json().await.unwrap()
}

/// Waits until the wave reaches a state in `states`; panics with the wave after `timeout`.
pub async fn wait_wave(base: &str, id: &str, states: &[&str], timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let w = wave_at(base, id).await;
        if states.contains(&w["state"].as_str().unwrap_or("")) {
            return w;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "wave never reached {states:?}: {w:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (version, count) of `refinery_schema_history`, or empty when the table is absent.
pub async fn history(url: &str) -> Vec<i32> {
    let c = connect(url).await;
    let exists: bool = c
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    if !exists {
        return Vec::new();
    }
    c.query(
        "SELECT version FROM refinery_schema_history ORDER BY version",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Versions recorded in `side_effects`, in insertion order (duplicates would show twice).
pub async fn side_effects(url: &str) -> Vec<i32> {
    let c = connect(url).await;
    c.query("SELECT version FROM side_effects ORDER BY version", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

/// A `drover serve` child process.
pub struct Daemon {
    pub child: std::process::Child,
    pub base: String,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Daemon {
    /// Starts `drover serve` on a free port and waits until it is ready.
    pub async fn start(control_url: &str, instance: &str, env: &[(&str, &str)]) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = drover_cmd();
        cmd.arg("serve")
            .env("DROVER_DATABASE_URL", control_url)
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("DROVER_INSTANCE_ID", instance)
            .env("DROVER_LOG", "info,drover=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let logs = Some(drain_stderr(&mut child));
        let base = format!("http://127.0.0.1:{port}");
        let ready_url = format!("{base}/readyz");
        let ready = wait_until(Duration::from_secs(30), || async {
            matches!(reqwest::get(&ready_url).await, Ok(r) if r.status().is_success())
        })
        .await;
        assert!(ready, "drover serve {instance} never became ready");
        Daemon { child, base, logs }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit; returns (success, logs).
    pub async fn terminate(mut self) -> (bool, String) {
        crate::helpers::sigterm(&self.child.id().to_string());
        let mut child = std::mem::replace(
            &mut self.child,
            std::process::Command::new("true").spawn().unwrap(),
        );
        let logs = self.logs.take();
        tokio::task::spawn_blocking(move || {
            let ok = child.wait().unwrap().success();
            (ok, logs.map(|l| l.join().unwrap()).unwrap_or_default())
        })
        .await
        .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM through the shell's builtin `kill` (a minimal image may lack /bin/kill).
pub fn sigterm(pid: &str) -> std::process::ExitStatus {
    std::process::Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", pid])
        .status()
        .unwrap()
}

/// Creates `widgets` in a tenant database so the counted migrations' V2 (which creates
/// it) fails there with 42P07: a tenant broken the way real data breaks migrations.
pub async fn plant_widgets_clash(url: &str) {
    connect(url)
        .await
        .batch_execute("CREATE TABLE widgets (x int)")
        .await
        .unwrap();
}

/// A binary from PATH, or None (then the test skips loudly, unless
/// DROVER_REQUIRE_PROMETHEUS=1 makes a missing Prometheus a failure).
pub fn tool(name: &str) -> Option<String> {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    if !path.is_empty() {
        return Some(path);
    }
    assert!(
        std::env::var("DROVER_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
        "{name} is required (apt-get install -y prometheus)"
    );
    eprintln!("*** skipping: {name} not installed (apt-get install -y prometheus)");
    None
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus (the Debian package's binary) scraping one drover every second, on
/// its own port and data directory; killed when dropped.
pub struct Prometheus {
    child: Option<std::process::Child>,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// Starts `binary` on `port` scraping `target` (host:port of a drover).
    pub fn start(binary: &str, port: u16, target: SocketAddr) -> Prometheus {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "drover-prom-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: drover\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            child: Some(child),
            port,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API's answer to an instant query, or None when Prometheus does not answer.
    pub async fn query(&self, q: &str) -> Option<Value> {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", q)])
            .send()
            .await
            .ok()?;
        r.json::<Value>().await.ok()
    }

    /// Waits until Prometheus has scraped drover at least `n` times.
    pub async fn wait_scraped(&self, n: u32) -> bool {
        wait_until(Duration::from_secs(30), || async {
            self.query("count_over_time(up{job=\"drover\"}[1m])")
                .await
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .map(|c| c.parse::<f64>().unwrap_or(0.0) >= n as f64)
                })
                .unwrap_or(false)
        })
        .await
    }

    /// Kills Prometheus now (a real outage for whoever queries it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pg_dump --schema-only` of a database on the test server, without the random
/// `\restrict` key newer pg_dump releases write (it differs on every run).
pub fn pg_dump_schema(url: &str) -> String {
    let program = match server() {
        Server::Owned(c) => c.bindir().join("pg_dump"),
        Server::External(_) => std::path::PathBuf::from("pg_dump"),
    };
    let out = std::process::Command::new(&program)
        .args(["--schema-only", "--no-owner", "--dbname", url])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wave states a wave does not leave by itself.
pub const WAVE_DONE: &[&str] = &["completed", "halted", "aborted"];

/// A daemon for wave tests: these migrations and secrets, retries 100 ms apart, `extra`
/// DROVER_* settings.
pub async fn wave_app(
    migrations: &MigrationsDir,
    secrets: &SecretsDir,
    extra: &[(&str, &str)],
) -> TestApp {
    let mut settings = vec![
        ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_RETRY_BACKOFF", "100ms"),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(&settings).await
}

/// [`counted_migrations`] without delays, as a directory.
pub fn counted_migrations_dir() -> MigrationsDir {
    let files = counted_migrations(0.0);
    MigrationsDir::new(
        &files
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect::<Vec<_>>(),
    )
}
