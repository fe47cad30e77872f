//! What the pinning tests share: replicas on one control database, tenants registered on a
//! chosen host or in a chosen status, a sampler of which tenant databases are being
//! migrated at each moment, and a TCP relay that can stall one replica's control-DB
//! traffic.
//!
//! "Being migrated" is read from the tenant server, not from drover: a runner holds a
//! session-level advisory lock in the tenant database from before its first file until
//! after its history check (from when it connected ahead, for a tenant waiting in a
//! replica's buffer: claimed, so the caps count it), so the databases holding an advisory
//! lock at one instant are the tenants migrating then, whichever replica runs them and
//! however drover counts them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::helpers::{
    connect, db_url, fresh_database, server_host_port, tenant_body, wait_until, ApiClient,
    MigrationsDir, SecretsDir, TenantDb, TestApp,
};

/// A replica for wave tests on control database `control` (a fresh one when `None`):
/// these files and secrets, retries 100 ms apart, a 2 s lease, instance `name`, `extra`
/// settings.
pub async fn replica(
    control: Option<&str>,
    name: &str,
    migrations: &MigrationsDir,
    secrets: &SecretsDir,
    extra: &[(&str, &str)],
) -> TestApp {
    let mut b = TestApp::builder()
        .env("DROVER_MIGRATIONS_DIR", migrations.path())
        .env("DROVER_SECRETS_DIR", secrets.path())
        .env("DROVER_RETRY_BACKOFF", "100ms")
        .env("DROVER_WAVE_LEASE", "2s")
        .env("DROVER_INSTANCE_ID", name)
        .envs(extra);
    if let Some(url) = control {
        b = b.control_db(url);
    }
    b.spawn().await
}

/// Two replicas sharing one fresh control database, each with `slots` worker slots.
pub async fn two_replicas(
    migrations: &MigrationsDir,
    secrets: &SecretsDir,
    slots: &str,
    extra: &[(&str, &str)],
) -> (TestApp, TestApp) {
    let mut env = vec![("DROVER_WORKER_SLOTS", slots)];
    env.extend_from_slice(extra);
    let a = replica(None, "pin-a", migrations, secrets, &env).await;
    let control = a.database_url.clone();
    let b = replica(Some(&control), "pin-b", migrations, secrets, &env).await;
    (a, b)
}

/// The database name at the end of a tenant's URL.
pub fn db_name(t: &TenantDb) -> String {
    t.url.rsplit('/').next().unwrap().to_string()
}

/// Creates a tenant database and registers it as `slug` with `db_host` = `host` (another
/// name for the test server makes another host for the per-host limits) and `patch` merged
/// into the body (status, canary, labels). Shares `file:tenants/pw` with the harness.
pub async fn register_on(
    api: &ApiClient,
    secrets: &SecretsDir,
    slug: &str,
    host: &str,
    patch: Value,
) -> TenantDb {
    secrets.put("tenants/pw", "unused-with-trust-auth");
    let (_, port) = server_host_port();
    let url = fresh_database("tenant").await;
    let mut body = tenant_body(slug);
    body["db_host"] = json!(host);
    body["db_port"] = json!(port);
    body["db_name"] = json!(url.rsplit('/').next().unwrap());
    body["db_user"] = json!("postgres");
    body["db_secret_ref"] = json!("file:tenants/pw");
    if let (Some(b), Value::Object(p)) = (body.as_object_mut(), patch) {
        b.extend(p);
    }
    let resp = api.create_tenant(&body).await;
    let status = resp.status();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        resp.text().await.unwrap()
    );
    TenantDb {
        slug: slug.to_string(),
        url,
    }
}

/// `prefix-000` … on `host`, active, no canaries.
pub async fn register_many(
    api: &ApiClient,
    secrets: &SecretsDir,
    prefix: &str,
    n: usize,
    host: &str,
) -> Vec<TenantDb> {
    let mut out = Vec::new();
    for i in 0..n {
        let slug = format!("{prefix}-{i:03}");
        out.push(register_on(api, secrets, &slug, host, json!({})).await);
    }
    out
}

/// Another handle on the same tenant database.
pub fn copy_of(t: &TenantDb) -> TenantDb {
    TenantDb {
        slug: t.slug.clone(),
        url: t.url.clone(),
    }
}

/// The slugs of `tenants`, as a wave selector wants them.
pub fn slugs(tenants: &[TenantDb]) -> Vec<String> {
    tenants.iter().map(|t| t.slug.clone()).collect()
}

/// The tenant's `migrated` events (payloads with their actor), oldest first.
pub async fn migrated_events(api: &ApiClient, slug: &str) -> Vec<Value> {
    let page: Value = api
        .get_json(&format!("/v1/tenants/{slug}/events?limit=1000"))
        .await;
    let mut found: Vec<Value> = page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("events of {slug}: {page}"))
        .iter()
        .filter(|e| e["event_type"] == "migrated")
        .map(|e| json!({"actor": e["actor"], "payload": e["payload"]}))
        .collect();
    found.reverse();
    found
}

/// The tenant's `schema_version` in the registry.
pub async fn schema_version(api: &ApiClient, slug: &str) -> Value {
    let t: Value = api.get_json(&format!("/v1/tenants/{slug}")).await;
    t["schema_version"].clone()
}

/// `GET /v1/waves/{id}/targets` → slug → the target.
pub async fn targets(api: &ApiClient, id: &str) -> BTreeMap<String, Value> {
    let list: Vec<Value> = api.get_json(&format!("/v1/waves/{id}/targets")).await;
    list.into_iter()
        .map(|t| (t["slug"].as_str().unwrap().to_string(), t))
        .collect()
}

/// The slugs of the wave's targets in `state`.
pub async fn targets_in(api: &ApiClient, id: &str, state: &str) -> BTreeSet<String> {
    targets(api, id)
        .await
        .into_iter()
        .filter(|(_, t)| t["state"] == state)
        .map(|(s, _)| s)
        .collect()
}

/// Waits until `cond` holds on the wave (up to a minute); panics with the wave otherwise.
pub async fn wait_for_wave(api: &ApiClient, id: &str, what: &str, cond: impl Fn(&Value) -> bool) {
    let ok = wait_until(Duration::from_secs(60), || async {
        cond(&api.get_wave(id).await)
    })
    .await;
    assert!(ok, "never {what}: {:#}", api.get_wave(id).await);
}

const MIGRATING: &str =
    "SELECT DISTINCT d.datname FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
     WHERE l.locktype = 'advisory' AND l.granted AND d.datname = ANY($1)";

/// Which of some tenant databases held an advisory lock (were being migrated) at each
/// moment, sampled every 10 ms on the test server until stopped.
pub struct LockSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Samples>,
}

/// What a [`LockSampler`] saw: (when, the databases migrating then), in order.
pub struct Samples(pub Vec<(Instant, BTreeSet<String>)>);

impl LockSampler {
    /// Starts sampling the databases of `tenants`.
    pub async fn start(tenants: &[TenantDb]) -> LockSampler {
        let names: Vec<String> = tenants.iter().map(db_name).collect();
        let admin = connect(&db_url("postgres")).await;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::Acquire) {
                let rows = admin.query(MIGRATING, &[&names]).await.unwrap();
                let locked = rows.iter().map(|r| r.get("datname")).collect();
                seen.push((Instant::now(), locked));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Samples(seen)
        });
        LockSampler { stop, task }
    }

    /// Stops and returns every sample.
    pub async fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap()
    }
}

impl Samples {
    /// The most databases of `among` migrating at one instant.
    pub fn peak(&self, among: &[TenantDb]) -> usize {
        let names: BTreeSet<String> = among.iter().map(db_name).collect();
        self.0
            .iter()
            .map(|(_, s)| s.intersection(&names).count())
            .max()
            .unwrap_or(0)
    }

    /// The most databases of `among` migrating at one instant at or after `from`.
    pub fn peak_since(&self, among: &[TenantDb], from: Instant) -> usize {
        let names: BTreeSet<String> = among.iter().map(db_name).collect();
        self.0
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, s)| s.intersection(&names).count())
            .max()
            .unwrap_or(0)
    }

    /// Every database seen migrating at or after `from`.
    pub fn migrating_since(&self, from: Instant) -> BTreeSet<String> {
        self.0
            .iter()
            .filter(|(at, _)| *at >= from)
            .flat_map(|(_, s)| s.iter().cloned())
            .collect()
    }
}

/// A TCP relay in front of the test server. While stalled, nothing a client sends reaches
/// the server (its connections stay open, its statements just never arrive), as when a
/// replica's network to the control DB hangs. Answers still flow back.
pub struct StallRelay {
    pub port: u16,
    gate: Arc<Gate>,
    task: tokio::task::JoinHandle<()>,
}

/// Whether client bytes may pass, and how many writes to the server are under way.
#[derive(Default)]
struct Gate {
    stalled: AtomicBool,
    writing: AtomicUsize,
    opened: Notify,
}

impl Gate {
    /// Returns once bytes may pass, counted in `writing` (the caller decrements it).
    async fn pass(&self) {
        loop {
            let opened = self.opened.notified();
            self.writing.fetch_add(1, Ordering::SeqCst);
            if !self.stalled.load(Ordering::SeqCst) {
                return;
            }
            self.writing.fetch_sub(1, Ordering::SeqCst);
            opened.await;
        }
    }
}

impl StallRelay {
    /// Starts relaying a free local port to the test server.
    pub async fn start() -> StallRelay {
        let (host, port) = server_host_port();
        let upstream = format!("{host}:{port}");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap().port();
        let gate = Arc::new(Gate::default());
        let shared = gate.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, shared.clone()));
            }
        });
        StallRelay {
            port: local,
            gate,
            task,
        }
    }

    /// `url` (a database on the test server) with its port replaced by the relay's.
    pub fn url_for(&self, url: &str) -> String {
        let (_, port) = server_host_port();
        url.replacen(&format!(":{port}/"), &format!(":{}/", self.port), 1)
    }

    /// Stops forwarding what clients send; returns once no write to the server is under way.
    pub async fn stall(&self) {
        self.gate.stalled.store(true, Ordering::SeqCst);
        while self.gate.writing.load(Ordering::SeqCst) > 0 {
            tokio::task::yield_now().await;
        }
    }

    /// Forwards again, the held bytes first.
    pub fn resume(&self) {
        self.gate.stalled.store(false, Ordering::SeqCst);
        self.gate.opened.notify_waiters();
    }
}

impl Drop for StallRelay {
    fn drop(&mut self) {
        self.task.abort();
        self.resume();
    }
}

async fn relay(client: TcpStream, server: TcpStream, gate: Arc<Gate>) {
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            gate.pass().await;
            let written = server_w.write_all(&buf[..n]).await;
            gate.writing.fetch_sub(1, Ordering::SeqCst);
            if written.is_err() {
                break;
            }
        }
        let _ = server_w.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut server_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Stalls `relay` at a moment when none of the sessions named `application_name` on
/// the server is inside a transaction or running a statement, so the stalled replica
/// holds no row lock another replica would need. Retries until such a moment comes.
pub async fn stall_between_transactions(relay: &StallRelay, application_name: &str) {
    const BUSY: &str = "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE application_name = $1 AND state IS DISTINCT FROM 'idle'";
    let admin = connect(&db_url("postgres")).await;
    let busy = || async {
        admin
            .query_one(BUSY, &[&application_name])
            .await
            .unwrap()
            .get::<_, i64>("n")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        relay.stall().await;
        // The last bytes let through are in the server's socket: a backend picks them up
        // within microseconds, so five quiet looks over 50 ms mean nothing is under way.
        let mut quiet = 0;
        while quiet < 5 && busy().await == 0 {
            quiet += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if quiet == 5 {
            return;
        }
        relay.resume();
        assert!(
            Instant::now() < deadline,
            "{application_name} never paused between transactions"
        );
        wait_until(Duration::from_secs(5), || async { busy().await == 0 }).await;
    }
}
