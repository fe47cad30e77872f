//! Wave benchmark: drover against the floor of plain `psql`.
//!
//! 1. The floor: the migration SQL applied to 200 databases by P parallel `psql` processes
//!    (`\c` per database), best of P = 2, 4, 8.
//! 2. drover: a wave of that one migration over 200 other databases (max_concurrency 8),
//!    twice: first on fresh databases (refinery creates its history table: one-time
//!    onboarding cost), then the same-shaped next migration (the steady state of a fleet).
//!    Before the second, a dry run of that migration over the same 200 databases (run and
//!    rolled back; nothing written).
//! 3. A no-op wave over 1,000 tenants already at the target.
//!
//! Prints wall times, the ratio to the floor and the daemon's peak RSS.
//! Run: `cargo bench --bench wave` (PostgreSQL server binaries needed; uses ~10 GB of
//! temporary disk for 1,400 databases). `BENCH_TENANTS` and `BENCH_NOOP_TENANTS` shrink it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover::devcluster::{Cluster, ClusterOptions};
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token-0123456789abcdef";
const SQL: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n\
                   CREATE INDEX items_name_idx ON items (name);\n\
                   INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;\n";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn create_databases(url: &str, prefix: &str, n: usize) {
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

fn psql_floor(cluster: &Cluster, prefix: &str, n: usize, p: usize) -> Duration {
    let dir = std::env::temp_dir().join(format!("drover-floor-{}-{p}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut scripts = Vec::new();
    for s in 0..p {
        let mut text = String::from("\\set ON_ERROR_STOP 1\n");
        for i in (s..n).step_by(p) {
            text.push_str(&format!("\\c {prefix}{i}\n{SQL}"));
        }
        let path = dir.join(format!("stream{s}.sql"));
        std::fs::write(&path, text).unwrap();
        scripts.push(path);
    }
    let psql = cluster.bindir().join("psql");
    let started = Instant::now();
    let children: Vec<_> = scripts
        .iter()
        .map(|path| {
            Command::new(&psql)
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &cluster.port().to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-f",
                ])
                .arg(path)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "psql failed");
    }
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    took
}

/// CPU seconds (user + system) of one process.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// CPU seconds (busy, all cores) of the whole machine.
fn machine_cpu_secs() -> f64 {
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

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
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
    async fn wave(&self, body: Value) -> (Duration, Value) {
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

#[tokio::main]
async fn main() {
    let n = env_or("BENCH_TENANTS", 200);
    let noop = env_or("BENCH_NOOP_TENANTS", 1000).max(n);
    let cluster = Cluster::start(ClusterOptions {
        stop_with_process: true,
        settings: vec![("max_connections".into(), "300".into())],
        ..Default::default()
    })
    .expect("PostgreSQL starts");
    let admin = cluster.url("postgres");
    print!("creating {} databases... ", n + noop + 1);
    let t = Instant::now();
    create_databases(&admin, "floor", n).await;
    create_databases(&admin, "t", noop).await;
    cluster
        .psql("postgres", "CREATE DATABASE drover_bench")
        .unwrap();
    println!("{:.1?}", t.elapsed());

    // The floor, on its own databases: each P gets fresh ones via DROP/CREATE of the table.
    let mut floor = Vec::new();
    for p in [2, 4, 8] {
        if !floor.is_empty() {
            for i in 0..n {
                cluster
                    .psql(&format!("floor{i}"), "DROP TABLE items")
                    .unwrap();
            }
        }
        floor.push((p, psql_floor(&cluster, "floor", n, p)));
    }
    let (best_p, best) = *floor.iter().min_by_key(|(_, d)| *d).unwrap();

    let work = std::env::temp_dir().join(format!("drover-wave-bench-{}", std::process::id()));
    std::fs::create_dir_all(work.join("migrations")).unwrap();
    std::fs::create_dir_all(work.join("secrets/tenants")).unwrap();
    std::fs::write(work.join("migrations/V1__items.sql"), SQL).unwrap();
    std::fs::write(
        work.join("migrations/V2__orders.sql"),
        SQL.replace("items", "orders"),
    )
    .unwrap();
    std::fs::write(work.join("secrets/tenants/pw"), "trust-auth\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daemon = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("serve")
        .env("DROVER_DATABASE_URL", cluster.url("drover_bench"))
        .env("DROVER_ADMIN_TOKEN", ADMIN)
        .env("DROVER_SECRETS_DIR", work.join("secrets"))
        .env("DROVER_MIGRATIONS_DIR", work.join("migrations"))
        .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("DROVER_WORKER_SLOTS", "16")
        .env(
            "DROVER_LOG",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("DROVER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(match std::env::var("BENCH_LOG_FILE") {
            Ok(f) => Stdio::from(std::fs::File::create(f).unwrap()),
            Err(_) => Stdio::inherit(),
        })
        .spawn()
        .expect("drover serve starts");
    // Killed on every way out, a failed assertion included.
    let daemon = KillOnDrop(daemon);
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
    for i in 0..noop {
        let timed = if i < n { "yes" } else { "no" };
        api.post(
            "/v1/tenants",
            json!({"slug": format!("t{i}"), "display_name": format!("Tenant {i}"), "db_name": format!("t{i}"),
                   "db_host": "127.0.0.1", "db_port": cluster.port(), "db_user": "postgres",
                   "db_secret_ref": "file:tenants/pw", "status": "active", "labels": {"timed": timed}}),
        )
        .await;
    }
    let plan = |labels: Value, target: i32| {
        json!({"selector": {"labels": labels}, "target_version": target, "batch_size": 10000, "max_concurrency": 8,
               "soak_seconds": 0, "canary": {"count": 0}})
    };
    let (first_time, w) = api.wave(plan(json!({"timed": "yes"}), 1)).await;
    assert_eq!(w["state"], "completed", "{w}");
    let mut dry = plan(json!({"timed": "yes"}), 2);
    dry["dry_run"] = json!(true);
    let (dry_time, dw) = api.wave(dry).await;
    assert_eq!(dw["dry_run_report"]["would_succeed"], n as i64, "{dw}");
    let (cpu0, sys0) = (cpu_secs(daemon.id()), machine_cpu_secs());
    let (wave_time, w) = api.wave(plan(json!({"timed": "yes"}), 2)).await;
    let (cpu1, sys1) = (cpu_secs(daemon.id()), machine_cpu_secs());
    assert_eq!(w["state"], "completed", "{w}");
    let rss = peak_rss_mb(daemon.id());
    if noop > n {
        let (_, rest) = api.wave(plan(json!({"timed": "no"}), 2)).await;
        assert_eq!(rest["state"], "completed", "{rest}");
    }
    let (cpu2, sys2) = (cpu_secs(daemon.id()), machine_cpu_secs());
    let (noop_time, nw) = api.wave(json!({"batch_size": 10000, "max_concurrency": 16, "soak_seconds": 0, "canary": {"count": 0}})).await;
    let (cpu3, sys3) = (cpu_secs(daemon.id()), machine_cpu_secs());
    assert_eq!(nw["state"], "completed", "{nw}");
    assert_eq!(nw["counts"]["succeeded"], noop as i64);

    println!("drover wave benchmark: {n} tenants, one migration (CREATE TABLE + CREATE INDEX + INSERT 100 rows)");
    for (p, d) in &floor {
        println!("  psql floor, P={p}       {:>8.2} s", d.as_secs_f64());
    }
    println!(
        "  drover, first migration of fresh databases {:>6.2} s = {:.2} x the floor (creates refinery_schema_history)",
        first_time.as_secs_f64(),
        first_time.as_secs_f64() / best.as_secs_f64()
    );
    println!(
        "  drover, next migration (steady state)      {:>6.2} s = {:.2} x the floor (best P={best_p}; target <= 1.15)",
        wave_time.as_secs_f64(),
        wave_time.as_secs_f64() / best.as_secs_f64()
    );
    println!(
        "  dry run of the next migration              {:>6.2} s = {:.2} x the real wave (run, then rolled back)",
        dry_time.as_secs_f64(),
        dry_time.as_secs_f64() / wave_time.as_secs_f64()
    );
    println!(
        "  no-op wave, {noop} up-to-date tenants {:>6.2} s   (target < 3 s)",
        noop_time.as_secs_f64()
    );
    println!(
        "  CPU during the wave: drover {:.2} s, whole machine {:.2} s; during the no-op wave: drover {:.2} s, machine {:.2} s",
        cpu1 - cpu0, sys1 - sys0, cpu3 - cpu2, sys3 - sys2
    );
    println!("  daemon peak RSS        {rss:>8.1} MB  (target < 100 MB)");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&work);
}

/// The daemon child, killed and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
