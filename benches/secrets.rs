//! Secret backend benchmark against moto's emulation of AWS Secrets Manager:
//! (a) resolution latency through a real `drover serve` (`GET /v1/resolve/{slug}`, one
//!     request at a time) for 1,000 tenants with `aws-sm:` references: each slug's first
//!     resolution with the start-up warm-up off (cold cache: one `GetSecretValue`) and
//!     then warm (from the cache); then a restart with the warm-up on: the time until all
//!     1,000 are cached (`BatchGetSecretValue`) and each slug's first resolution after it;
//! (b) fetching 1,000 secrets: `BatchGetSecretValue` (the backend's `fetch_many`, 20 a
//!     call) vs single `GetSecretValue`s 8 in flight vs one after another.
//!
//! Run: `cargo bench --bench secrets` (needs the PostgreSQL server binaries and moto:
//! `.ci/install-moto target/tools/moto`, or `DROVER_MOTO_BIN`). `BENCH_TENANTS` overrides
//! the 1,000. moto is a Python emulator on this machine: its own time per call is most of
//! every figure, so the numbers compare drover's ways of asking, not AWS's latency.

mod support;
use support::env_or;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover::secrets::aws::{https_client, AwsSmBackend};
use drover::secrets::{AwsSmSettings, SecretBackend, SecretRef};
use futures_util::StreamExt;
use support::daemon::{serve, KillOnDrop, ADMIN};

const REGION: &str = "us-east-1";
const KEY_ID: &str = "bench-access-key";
const SECRET_KEY: &str = "bench-secret-key";

fn moto_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("DROVER_MOTO_BIN") {
        return PathBuf::from(bin);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/moto/bin/moto_server");
    assert!(
        local.exists(),
        "moto is not installed: run .ci/install-moto target/tools/moto (or set DROVER_MOTO_BIN)"
    );
    local
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_moto() -> (KillOnDrop, String) {
    let port = free_port();
    let child = Command::new(moto_binary())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("{endpoint}/moto-api/"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "moto did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (KillOnDrop(child), endpoint)
}

fn loader(endpoint: &str) -> aws_config::ConfigLoader {
    use aws_sdk_secretsmanager::config::{Credentials, Region};
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(KEY_ID, SECRET_KEY, None, None, "bench"))
        .http_client(https_client())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{label:<34} p50 {:>10}  p99 {:>10}  max {:>10}  (n = {})",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap()),
        times.len()
    );
}

#[tokio::main]
async fn main() {
    let tenants = env_or("BENCH_TENANTS", 1_000);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "secrets bench: {tenants} aws-sm secrets on moto; load average at start: {}",
        load.trim()
    );
    let (_moto, endpoint) = start_moto().await;
    let sm = aws_sdk_secretsmanager::Client::new(&loader(&endpoint).load().await);
    let planted = Instant::now();
    let creates: Vec<_> = (0..tenants)
        .map(|i| {
            sm.create_secret()
                .name(format!("tenants/bench/t{i}"))
                .secret_string(format!(r#"{{"password":"pw-{i}"}}"#))
                .send()
        })
        .collect();
    let created = futures_util::stream::iter(creates)
        .buffer_unordered(16)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    assert_eq!(created, tenants, "every secret planted in moto");
    println!(
        "planted {tenants} secrets in {:.1} s",
        planted.elapsed().as_secs_f64()
    );

    fetch_comparison(&endpoint, tenants).await;
    resolution(&endpoint, tenants).await;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
}

/// (b): the same 1,000 references three ways, each on a fresh backend (no connection or
/// credential warmed by another way).
async fn fetch_comparison(endpoint: &str, tenants: usize) {
    let refs: Vec<SecretRef> = (0..tenants)
        .map(|i| {
            format!("aws-sm:tenants/bench/t{i}#password")
                .parse()
                .unwrap()
        })
        .collect();
    let backend = || {
        let endpoint = endpoint.to_string();
        AwsSmBackend::from_loader(AwsSmSettings::default(), move || loader(&endpoint))
    };
    println!("\n(b) fetching {tenants} secrets");

    let b = backend();
    let started = Instant::now();
    let answers = b.fetch_many(&refs).await;
    let batched = started.elapsed();
    assert!(
        answers.iter().all(|a| a.is_ok()),
        "every batched answer is a value"
    );

    let b = backend();
    let started = Instant::now();
    let singles: Vec<_> = refs.iter().map(|r| b.fetch(r)).collect();
    let answers: Vec<_> = futures_util::stream::iter(singles)
        .buffered(drover::secrets::FETCH_MANY_IN_FLIGHT)
        .collect()
        .await;
    let in_flight = started.elapsed();
    assert!(answers.iter().all(|a| a.is_ok()));

    let b = backend();
    let started = Instant::now();
    for r in &refs {
        b.fetch(r).await.expect("a value");
    }
    let serial = started.elapsed();

    let calls = tenants.div_ceil(20);
    for (label, took, n) in [
        ("BatchGetSecretValue (fetch_many)", batched, calls),
        ("GetSecretValue, 8 in flight", in_flight, tenants),
        ("GetSecretValue, serial", serial, tenants),
    ] {
        println!(
            "{label:<34} {:>8.0} ms  {:>6} calls  {:>7.0} secrets/s",
            took.as_secs_f64() * 1000.0,
            n,
            tenants as f64 / took.as_secs_f64()
        );
    }
}

/// (a): daemons with `tenants` tenants on `aws-sm:` references, resolved one request at a
/// time. First without the start-up warm-up (`secret_warm_limit = 0`): every slug once
/// (cold: each is a backend read), then every slug again (warm). Then a restart with the
/// warm-up on: how long until every secret is in the cache, and what each slug's first
/// resolution costs after it.
async fn resolution(endpoint: &str, tenants: usize) {
    let (_cluster, pool) = support::control_db("secretsbench", 4).await;
    let control = pool.get().await.unwrap();
    control
        .execute(
            "INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
             SELECT 't' || i, 'Tenant ' || i, 'db_t' || i, 'db' || (i % 8), 'u_t' || i, \
                    'aws-sm:tenants/bench/t' || i || '#password', 'active' \
             FROM generate_series(0, $1::int - 1) AS i",
            &[&(tenants as i32)],
        )
        .await
        .unwrap();
    let control_url = _cluster.url("secretsbench");
    let work = std::env::temp_dir().join(format!("drover-secrets-bench-{}", std::process::id()));
    std::fs::create_dir_all(work.join("secrets")).unwrap();
    std::fs::create_dir_all(work.join("migrations")).unwrap();
    println!("\n(a) resolution through the daemon, one request at a time");
    {
        let (_daemon, api) = serve(&control_url, &work, &daemon_env(endpoint, "0")).await;
        // One resolution first so the SDK's configuration, the HTTP connection and the
        // tenant rows are loaded: the cold figures are then one backend read each.
        resolve(&api, &format!("t{}", tenants - 1)).await;
        let mut cold = Vec::with_capacity(tenants);
        for i in 0..tenants - 1 {
            cold.push(resolve(&api, &format!("t{i}")).await);
        }
        let mut warm = Vec::with_capacity(tenants * 3);
        for _ in 0..3 {
            for i in 0..tenants {
                warm.push(resolve(&api, &format!("t{i}")).await);
            }
        }
        report("cold cache (one GetSecretValue)", cold);
        report("warm cache", warm);
    }

    // A restart with the warm-up on (limit = every tenant): the clock runs from the
    // process start to the moment the warm-up has counted every secret.
    let limit = tenants.to_string();
    let started = Instant::now();
    let (_daemon, api) = serve(&control_url, &work, &daemon_env(endpoint, &limit)).await;
    let ready = started.elapsed();
    let mut warmed = 0.0;
    while warmed < tenants as f64 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "warm-up counted {warmed} of {tenants} in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        warmed = metric(&api, "drover_secret_warm_total{outcome=\"ok\"}").await;
    }
    let done = started.elapsed();
    println!(
        "warm start of {tenants} secrets (BatchGetSecretValue): ready after {:.2} s, every secret cached after {:.2} s",
        ready.as_secs_f64(),
        done.as_secs_f64()
    );
    let mut first = Vec::with_capacity(tenants);
    for i in 0..tenants {
        first.push(resolve(&api, &format!("t{i}")).await);
    }
    report("first resolution after warm start", first);
    let _ = std::fs::remove_dir_all(&work);
}

/// The daemon's environment: moto's endpoint and credentials, caches that outlast the
/// bench, and the start-up warm-up's limit.
fn daemon_env<'a>(endpoint: &'a str, warm_limit: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("DROVER_SECRET_TTL", "10m"),
        ("DROVER_TENANT_CACHE_TTL", "10m"),
        ("DROVER_SECRET_WARM_LIMIT", warm_limit),
    ]
}

async fn resolve(api: &support::daemon::Api, slug: &str) -> Duration {
    let req = api
        .http
        .get(format!("{}/v1/resolve/{slug}", api.base))
        .bearer_auth(ADMIN);
    let started = Instant::now();
    let r = req.send().await.unwrap();
    let status = r.status();
    let _ = r.bytes().await;
    assert!(status.is_success(), "resolve {slug}: {status}");
    started.elapsed()
}

/// The value of one sample line of the daemon's `/metrics` (0 when absent).
async fn metric(api: &support::daemon::Api, series: &str) -> f64 {
    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
