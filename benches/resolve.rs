//! Resolution benchmark: 10,000 tenants, warm cache, `wrk` at 64 connections for 10 s
//! against `/v1/resolve/{random slug}` and then `/healthz` in the same run; prints
//! throughput, latency percentiles and the daemon's RSS.
//!
//! Run: `cargo bench --bench resolve` (needs `wrk`: `apt-get install -y wrk`, and the
//! PostgreSQL server binaries). `BENCH_TENANTS`, `BENCH_SECONDS`, `BENCH_CONNECTIONS`
//! override the defaults.

mod support;
use support::env_or;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover::devcluster::{Cluster, ClusterOptions};

const ADMIN: &str = "bench-admin-token-0123456789abcdef";
const RESOLVER: &str = "bench-resolver-token-0123456789abcdef";

struct Wrk {
    rps: f64,
    p50: String,
    p99: String,
    non_2xx: u64,
}

fn wrk(url: &str, script: &str, conns: usize, secs: usize) -> Wrk {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
            script,
            url,
        ])
        .output()
        .expect("wrk is installed (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
            .unwrap_or_else(|| panic!("wrk output lacks {prefix:?}:\n{text}"))
    };
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map_or(0, |n| n.trim().parse().unwrap_or(0));
    Wrk {
        rps: field("Requests/sec:").parse().unwrap(),
        p50: field("50%"),
        p99: field("99%"),
        non_2xx,
    }
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn main() {
    let tenants = env_or("BENCH_TENANTS", 10_000);
    let secs = env_or("BENCH_SECONDS", 10);
    let conns = env_or("BENCH_CONNECTIONS", 64);
    let cluster = Cluster::start(ClusterOptions {
        stop_with_process: true,
        ..Default::default()
    })
    .expect("PostgreSQL starts");
    cluster
        .psql("postgres", "CREATE DATABASE drover_bench")
        .unwrap();
    let work = cluster
        .data_dir()
        .parent()
        .unwrap()
        .join(format!("drover-bench-{}", std::process::id()));
    let secrets = work.join("secrets");
    std::fs::create_dir_all(secrets.join("tenants")).unwrap();
    for i in 0..tenants {
        std::fs::write(secrets.join(format!("tenants/t{i}")), format!("pw-{i}\n")).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("serve")
        .env("DROVER_DATABASE_URL", cluster.url("drover_bench"))
        .env("DROVER_ADMIN_TOKEN", ADMIN)
        .env("DROVER_RESOLVER_TOKEN", RESOLVER)
        .env("DROVER_SECRETS_DIR", &secrets)
        .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("DROVER_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("drover serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Command::new("curl")
        .args(["-sf", &format!("{base}/readyz")])
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        assert!(Instant::now() < deadline, "daemon not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster
        .psql(
            "drover_bench",
            &format!(
                "INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
                 SELECT 't' || i, 'Tenant ' || i, 'db_t' || i, 'db' || (i % 8), 'u_t' || i, 'file:tenants/t' || i, 'active' \
                 FROM generate_series(0, {}) i",
                tenants - 1
            ),
        )
        .unwrap();
    let script = work.join("resolve.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(os.time())\nwrk.headers['Authorization'] = 'Bearer {RESOLVER}'\n\
             request = function() return wrk.format('GET', '/v1/resolve/t' .. math.random(0, {})) end\n",
            tenants - 1
        ),
    )
    .unwrap();
    let warm = work.join("warm.lua");
    std::fs::write(
        &warm,
        format!(
            "wrk.headers['Authorization'] = 'Bearer {RESOLVER}'\ncounter = 0\n\
             request = function() counter = counter + 1; return wrk.format('GET', '/v1/resolve/t' .. (counter % {tenants})) end\n"
        ),
    )
    .unwrap();
    let health = work.join("health.lua");
    // The same client-side work as the resolve script (random number, string building,
    // Authorization header): on a 2-core box wrk's own CPU competes with the daemon, so
    // the ratio must compare the daemon's cost per request, not the load generator's.
    std::fs::write(
        &health,
        format!(
            "math.randomseed(os.time())\nwrk.headers['Authorization'] = 'Bearer {RESOLVER}'\n\
             request = function() return wrk.format('GET', '/healthz?t' .. math.random(0, {})) end\n",
            tenants - 1
        ),
    )
    .unwrap();

    let warmed = wrk(&base, warm.to_str().unwrap(), 8, 3);
    // This box's throughput drifts by ±10 % from one 10 s run to the next, so resolve and
    // healthz runs are interleaved and the median ratio is reported.
    let rounds = env_or("BENCH_ROUNDS", 3);
    // BENCH_PERF=FILE records a CPU profile of the daemon during the first resolve run.
    let mut perf = std::env::var("BENCH_PERF").ok().map(|out| {
        Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "999",
                "-g",
                "-o",
                &out,
                "-p",
                &daemon.id().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf is installed")
    });
    let per_req = |cpu: f64, w: &Wrk| cpu * 1e6 / (w.rps * secs as f64);
    println!("drover resolve benchmark: {tenants} tenants, {conns} connections, {secs} s per run (wrk -t2)");
    println!("  warm-up          {:>10.0} req/s", warmed.rps);
    let mut ratios = Vec::new();
    let mut rss = 0.0_f64;
    for round in 1..=rounds {
        let cpu0 = cpu_secs(daemon.id());
        let resolve = wrk(&base, script.to_str().unwrap(), conns, secs);
        let cpu1 = cpu_secs(daemon.id());
        if let Some(p) = perf.take() {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let _ = p.wait_with_output();
        }
        rss = rss.max(rss_mb(daemon.id()));
        let healthz = wrk(&base, health.to_str().unwrap(), conns, secs);
        let cpu2 = cpu_secs(daemon.id());
        let ratio = 100.0 * resolve.rps / healthz.rps;
        ratios.push(ratio);
        println!(
            "  round {round}: /v1/resolve {:>7.0} req/s (p50 {:>8}, p99 {:>8}, non-2xx {}, {:.1} us CPU/req)   \
             /healthz {:>7.0} req/s (p50 {:>8}, p99 {:>8}, {:.1} us CPU/req)   ratio {ratio:.1} %",
            resolve.rps, resolve.p50, resolve.p99, resolve.non_2xx, per_req(cpu1 - cpu0, &resolve),
            healthz.rps, healthz.p50, healthz.p99, per_req(cpu2 - cpu1, &healthz),
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  resolve/healthz  {:>10.1} %   median of {rounds} rounds (target >= 70 %)",
        ratios[ratios.len() / 2]
    );
    println!("  daemon RSS       {rss:>10.1} MB  (target < 64 MB, {tenants} tenants cached)");
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&work);
}
