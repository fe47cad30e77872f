//! A `drover serve` child for the benches that drive waves through the HTTP API, the
//! tenant databases it migrates, and the figures read back from the control DB and /proc.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The admin token the bench daemons accept.
pub const ADMIN: &str = "bench-admin-token-0123456789abcdef";

/// Starts `drover serve` on a free port against the control DB `control_url`, with the
/// secrets and migrations under `work` and `env` on top; returns once `/readyz` answers.
/// `BENCH_LOG` sets its log level (default warn), `BENCH_LOG_FILE` where its log goes.
pub async fn serve(control_url: &str, work: &Path, env: &[(&str, &str)]) -> (KillOnDrop, Api) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    cmd.arg("serve")
        .env("DROVER_DATABASE_URL", control_url)
        .env("DROVER_ADMIN_TOKEN", ADMIN)
        .env("DROVER_SECRETS_DIR", work.join("secrets"))
        .env("DROVER_MIGRATIONS_DIR", work.join("migrations"))
        .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "DROVER_LOG",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("DROVER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(match std::env::var("BENCH_LOG_FILE") {
            Ok(f) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(f)
                    .unwrap(),
            ),
            Err(_) => Stdio::inherit(),
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Killed on every way out, a failed assertion included.
    let daemon = KillOnDrop(cmd.spawn().expect("drover serve starts"));
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    while api
        .http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (daemon, api)
}

/// Creates databases `{prefix}0` .. `{prefix}{n-1}` over four connections.
pub async fn create_databases(url: &str, prefix: &str, n: usize) {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let url = url.to_string();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            for i in (w..n).step_by(4) {
                c.batch_execute(&format!("CREATE DATABASE {prefix}{i}"))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// CPU seconds (user + system) of one process.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// CPU seconds (busy, all cores) of the whole machine.
pub fn machine_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    (f.iter().sum::<f64>() - f[3] - f[4]) / 100.0
}

pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {v}");
        v
    }

    /// Starts a wave and returns its wall time until a final state.
    pub async fn wave(&self, body: Value) -> (Duration, Value) {
        let started = Instant::now();
        let id = self.post("/v1/waves", body).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        loop {
            let w: Value = self
                .http
                .get(format!("{}/v1/waves/{id}", self.base))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ["completed", "halted", "aborted"].contains(&w["state"].as_str().unwrap()) {
                return (started.elapsed(), w);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Per-tenant figures of one wave, from its targets in the control DB.
pub struct Tenants {
    pub median_ms: f64,
    pub p90_ms: f64,
    /// Mean duration of the first and last tenth of the tenants to finish.
    pub first_tenth_ms: f64,
    pub last_tenth_ms: f64,
    /// Tenants per second during the first and last tenth.
    pub first_tenth_rate: f64,
    pub last_tenth_rate: f64,
    /// Wave created → first tenant claimed, and last tenant recorded → wave completed (s).
    pub start_lag: f64,
    pub tail: f64,
    /// Share of the slots (`max_concurrency`) busy with tenant work while the wave ran.
    pub busy: f64,
}

pub async fn per_tenant(control: &tokio_postgres::Client, wave: &Value) -> Tenants {
    const SQL: &str =
        "SELECT duration_ms::float8 AS ms, extract(epoch FROM finished_at)::float8 AS at \
         FROM control_plane.wave_targets WHERE wave_id = $1::text::uuid ORDER BY finished_at";
    let id = wave["id"].as_str().unwrap();
    let rows = control.query(SQL, &[&id]).await.unwrap();
    let ms: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>("ms")).collect();
    let at: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>("at")).collect();
    const SHAPE: &str = "SELECT extract(epoch FROM min(t.started_at) - w.created_at)::float8 AS start_lag, \
         extract(epoch FROM w.finished_at - max(t.finished_at))::float8 AS tail, \
         (sum(t.duration_ms) / 1000.0 / (extract(epoch FROM max(t.finished_at) - min(t.started_at)) * w.max_concurrency))::float8 AS busy \
         FROM control_plane.wave_targets t JOIN control_plane.waves w ON w.id = t.wave_id \
         WHERE w.id = $1::text::uuid GROUP BY w.created_at, w.finished_at, w.max_concurrency";
    let shape = control.query_one(SHAPE, &[&id]).await.unwrap();
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |f: f64| sorted[((sorted.len() - 1) as f64 * f) as usize];
    let tenth = (ms.len() / 10).max(2);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rate = |v: &[f64]| (v.len() - 1) as f64 / (v[v.len() - 1] - v[0]).max(1e-3);
    Tenants {
        median_ms: q(0.5),
        p90_ms: q(0.9),
        first_tenth_ms: mean(&ms[..tenth]),
        last_tenth_ms: mean(&ms[ms.len() - tenth..]),
        first_tenth_rate: rate(&at[..tenth]),
        last_tenth_rate: rate(&at[at.len() - tenth..]),
        start_lag: shape.get("start_lag"),
        tail: shape.get("tail"),
        busy: shape.get("busy"),
    }
}

/// The daemon child, killed and reaped when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
