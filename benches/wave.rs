//! Wave benchmark: drover side by side with the least work a correct tool does (`psql`)
//! and with the stock refinery CLI, in one run, on identical sets of databases.
//!
//! Three migrations of `N` (200) tenant databases, `max_concurrency` 8:
//! 1. first: V1 on fresh databases (the history table is created);
//! 2. steady state: the next small migration, V2;
//! 3. no-op: everything already at V2.
//!
//! Each is run by
//! - drover: one wave (`max_concurrency` 8) through the HTTP API of a `drover serve`;
//! - the psql floor: P streams, one `psql` each with `\c` per database, best of P = 2, 4, 8.
//!   Per database: read the version (`SELECT max(version) FROM refinery_schema_history`; on
//!   fresh databases `to_regclass`), then the migration and its history row in one
//!   transaction (the first run creates the history table in it); the no-op is `\c` and
//!   the version read;
//! - the refinery CLI loop: `refinery migrate` per database through `xargs -P8`, same files
//!   (installed into `target/tools` with `cargo install` when missing; skipped, saying so,
//!   when that fails).
//!
//! drover takes each migrated tenant's schema fingerprint after its run (`drift_after_migration`,
//! on by default); the first and steady-state waves are run again on a second set of
//! databases by a daemon with it off, so the cost of the fingerprint shows beside the rest.
//!
//! Then a no-op wave over 1,000 up-to-date tenants: tenants/s, the per-tenant time of the
//! first and last tenth of the wave, and the daemon's peak RSS (VmHWM).
//!
//! Run: `cargo bench --bench wave` (PostgreSQL server binaries needed; ~12 GB of temporary
//! disk for 1,600 databases). `BENCH_TENANTS` and `BENCH_NOOP_TENANTS` shrink it.

mod support;
use support::daemon::{
    cpu_secs, create_databases, machine_cpu_secs, peak_rss_mb, per_tenant, serve,
};
use support::env_or;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover::devcluster::{Cluster, ClusterOptions};
use serde_json::{json, Value};

const V1: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n\
                  CREATE INDEX items_name_idx ON items (name);\n\
                  INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;\n";
/// refinery's history table, exactly as refinery creates it.
const HISTORY: &str = "CREATE TABLE refinery_schema_history(version int4 PRIMARY KEY, \
                       name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255));\n";
const CONCURRENCY: usize = 8;

fn v2() -> String {
    V1.replace("items", "orders")
}

/// The three migrations, in order.
#[derive(Clone, Copy, PartialEq)]
enum Step {
    First,
    Steady,
    Noop,
}

const STEPS: [(Step, &str); 3] = [
    (Step::First, "first migration (creates the history table)"),
    (Step::Steady, "steady state (the next small migration)"),
    (Step::Noop, "no-op (everything up to date)"),
];

/// What one `psql` stream sends to one database for `step`.
fn floor_sql(step: Step) -> String {
    let row = |v: i32, name: &str| {
        format!("INSERT INTO refinery_schema_history VALUES ({v}, '{name}', '2025-01-01T00:00:00Z', '0');\n")
    };
    match step {
        Step::First => format!(
            "SELECT to_regclass('refinery_schema_history');\nBEGIN;\n{HISTORY}{V1}{}COMMIT;\n",
            row(1, "items")
        ),
        Step::Steady => format!(
            "SELECT max(version) FROM refinery_schema_history;\nBEGIN;\n{}{}COMMIT;\n",
            v2(),
            row(2, "orders")
        ),
        Step::Noop => "SELECT max(version) FROM refinery_schema_history;\n".into(),
    }
}

fn psql(cluster: &Cluster, script: &Path) -> Command {
    let mut cmd = Command::new(cluster.bindir().join("psql"));
    cmd.args(["-X", "-q", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", "postgres", "-d", "postgres", "-f"])
        .arg(script)
        // The reset's `DROP TABLE IF EXISTS` would print a notice per table and database.
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .stdout(Stdio::null());
    cmd
}

/// One script per stream: `\c` to each of its databases, then `sql`.
fn psql_streams(
    cluster: &Cluster,
    dir: &Path,
    prefix: &str,
    n: usize,
    p: usize,
    sql: &str,
) -> Duration {
    let scripts: Vec<PathBuf> = (0..p)
        .map(|s| {
            let mut text = String::from("\\set ON_ERROR_STOP 1\n");
            for i in (s..n).step_by(p) {
                text.push_str(&format!("\\c {prefix}{i}\n{sql}"));
            }
            let path = dir.join(format!("stream{s}.sql"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let started = Instant::now();
    let children: Vec<_> = scripts
        .iter()
        .map(|path| psql(cluster, path).spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "psql failed");
    }
    started.elapsed()
}

/// The floor of each step: best of P = 2, 4, 8, each P on freshly emptied databases.
fn psql_floor(cluster: &Cluster, prefix: &str, n: usize) -> Vec<(Step, usize, Duration)> {
    let dir = std::env::temp_dir().join(format!("drover-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut best: Vec<(Step, usize, Duration)> = Vec::new();
    for p in [2, 4, 8] {
        let reset = "DROP TABLE IF EXISTS items, orders, refinery_schema_history;\n";
        psql_streams(cluster, &dir, prefix, n, 4, reset);
        for (step, _) in STEPS {
            let took = psql_streams(cluster, &dir, prefix, n, p, &floor_sql(step));
            println!(
                "  psql floor, P={p}, {:<8} {:>6.2} s",
                name(step),
                took.as_secs_f64()
            );
            match best.iter_mut().find(|b| b.0 == step) {
                Some(b) if b.2 <= took => {}
                Some(b) => *b = (step, p, took),
                None => best.push((step, p, took)),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    best
}

fn name(step: Step) -> &'static str {
    match step {
        Step::First => "first",
        Step::Steady => "steady",
        Step::Noop => "no-op",
    }
}

/// The stock refinery CLI, installed into `target/tools` when missing; None (with the
/// reason printed) when it cannot be.
fn refinery_cli() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools");
    let bin = root.join("bin/refinery");
    if bin.exists() {
        return Some(bin);
    }
    println!("installing the refinery CLI into {} ...", root.display());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "--root"])
        .arg(&root)
        .args([
            "refinery_cli",
            "--no-default-features",
            "--features",
            "postgresql",
        ])
        .status();
    match status {
        Ok(s) if s.success() && bin.exists() => Some(bin),
        other => {
            println!(
                "  the refinery CLI could not be installed ({other:?}); its column is skipped"
            );
            None
        }
    }
}

/// `refinery migrate` per database through `xargs -P8`, with the files of `migrations`.
fn refinery_loop(
    bin: &Path,
    cluster: &Cluster,
    prefix: &str,
    n: usize,
    migrations: &Path,
) -> Duration {
    let url = format!("postgres://postgres@127.0.0.1:{}/{prefix}", cluster.port());
    let started = Instant::now();
    let mut xargs = Command::new("xargs")
        .args(["-P", &CONCURRENCY.to_string(), "-I", "{}", "env"])
        .arg(format!("DATABASE_URL={url}{{}}"))
        .arg(bin)
        .args(["migrate", "-e", "DATABASE_URL", "-p"])
        .arg(migrations)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = xargs.stdin.take().unwrap();
        for i in 0..n {
            writeln!(stdin, "{i}").unwrap();
        }
    }
    assert!(xargs.wait().unwrap().success(), "refinery migrate failed");
    started.elapsed()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

#[tokio::main]
async fn main() {
    let n = env_or("BENCH_TENANTS", 200);
    let noop = env_or("BENCH_NOOP_TENANTS", 1000).max(n);
    let refinery = refinery_cli();
    let cluster = Cluster::start(ClusterOptions {
        stop_with_process: true,
        settings: vec![("max_connections".into(), "300".into())],
        ..Default::default()
    })
    .expect("PostgreSQL starts");
    let admin = cluster.url("postgres");
    print!("creating {} databases... ", 3 * n + noop + 2);
    let t = Instant::now();
    create_databases(&admin, "floor", n).await;
    if refinery.is_some() {
        create_databases(&admin, "ref", n).await;
    }
    create_databases(&admin, "t", noop).await;
    create_databases(&admin, "u", n).await;
    for db in ["drover_bench", "drover_bench_nodrift"] {
        cluster
            .psql("postgres", &format!("CREATE DATABASE {db}"))
            .unwrap();
    }
    println!("{:.1?}", t.elapsed());

    let work = std::env::temp_dir().join(format!("drover-wave-bench-{}", std::process::id()));
    let (first_dir, next_dir) = (work.join("refinery-v1"), work.join("refinery-v2"));
    for d in [
        &work.join("migrations"),
        &work.join("secrets/tenants"),
        &first_dir,
        &next_dir,
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    for d in [&work.join("migrations"), &first_dir, &next_dir] {
        std::fs::write(d.join("V1__items.sql"), V1).unwrap();
    }
    for d in [&work.join("migrations"), &next_dir] {
        std::fs::write(d.join("V2__orders.sql"), v2()).unwrap();
    }
    std::fs::write(work.join("secrets/tenants/pw"), "trust-auth\n").unwrap();

    println!("psql floor on databases floor0..floor{}:", n - 1);
    let floor = psql_floor(&cluster, "floor", n);

    let mut refinery_times: Vec<Option<Duration>> = vec![None; 3];
    if let Some(bin) = &refinery {
        for (i, (step, _)) in STEPS.iter().enumerate() {
            let dir = if *step == Step::First {
                &first_dir
            } else {
                &next_dir
            };
            let took = refinery_loop(bin, &cluster, "ref", n, dir);
            println!(
                "  refinery CLI loop, {:<8} {:>6.2} s",
                name(*step),
                took.as_secs_f64()
            );
            refinery_times[i] = Some(took);
        }
    }

    let (daemon, api) = serve(
        &cluster.url("drover_bench"),
        &work,
        &[("DROVER_WORKER_SLOTS", "16")],
    )
    .await;
    let (control, conn) =
        tokio_postgres::connect(&cluster.url("drover_bench"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    register(&api, &cluster, "t", noop, n).await;
    let mut drover_times = Vec::new();
    let (mut cpu, mut machine) = (Vec::new(), Vec::new());
    for (step, _) in STEPS {
        let target = if step == Step::First { 1 } else { 2 };
        let (cpu0, sys0) = (cpu_secs(daemon.id()), machine_cpu_secs());
        let (took, w) = api.wave(plan(json!({"timed": "yes"}), target)).await;
        cpu.push(cpu_secs(daemon.id()) - cpu0);
        machine.push(machine_cpu_secs() - sys0);
        assert_eq!(w["state"], "completed", "{w}");
        assert_eq!(w["counts"]["succeeded"], n as i64, "{w}");
        let t = per_tenant(&control, &w).await;
        println!(
            "  drover wave, {:<8} {:>6.2} s   per tenant: median {:.0} ms, p90 {:.0} ms; first tenth {:.0} ms ({:.0}/s), last tenth {:.0} ms ({:.0}/s)",
            name(step), took.as_secs_f64(), t.median_ms, t.p90_ms, t.first_tenth_ms, t.first_tenth_rate,
            t.last_tenth_ms, t.last_tenth_rate
        );
        println!(
            "    created → first claim {:.0} ms, last record → completed {:.0} ms, slots busy {:.0} %",
            t.start_lag * 1000.0, t.tail * 1000.0, t.busy * 100.0
        );
        drover_times.push(took);
    }
    if noop > n {
        let (_, rest) = api.wave(plan(json!({"timed": "no"}), 2)).await;
        assert_eq!(rest["state"], "completed", "{rest}");
    }
    let (cpu2, sys2) = (cpu_secs(daemon.id()), machine_cpu_secs());
    let (noop_time, nw) = api
        .wave(json!({"batch_size": 10000, "max_concurrency": 16, "soak_seconds": 0, "canary": {"count": 0}}))
        .await;
    let (cpu3, sys3) = (cpu_secs(daemon.id()), machine_cpu_secs());
    assert_eq!(nw["state"], "completed", "{nw}");
    assert_eq!(nw["counts"]["succeeded"], noop as i64);
    let big = per_tenant(&control, &nw).await;
    let rss = peak_rss_mb(daemon.id());
    drop(daemon);

    // The same first and steady-state waves on fresh databases, without the fingerprint.
    let (daemon, api) = serve(
        &cluster.url("drover_bench_nodrift"),
        &work,
        &[
            ("DROVER_WORKER_SLOTS", "16"),
            ("DROVER_DRIFT_AFTER_MIGRATION", "false"),
        ],
    )
    .await;
    register(&api, &cluster, "u", n, n).await;
    let mut bare = Vec::new();
    for target in [1, 2] {
        let (took, w) = api.wave(plan(json!({"timed": "yes"}), target)).await;
        assert_eq!(w["state"], "completed", "{w}");
        println!(
            "  drover wave without the fingerprint, V{target}: {:.2} s",
            took.as_secs_f64()
        );
        bare.push(took);
    }
    drop(daemon);

    println!();
    println!("drover wave benchmark: {n} tenant databases, max_concurrency {CONCURRENCY}; each migration is CREATE TABLE + CREATE INDEX + INSERT 100 rows");
    println!(
        "  {:<46} {:>9} {:>9} {:>12} {:>14} {:>16}",
        "migration", "floor", "drover", "refinery CLI", "drover/floor", "refinery/drover"
    );
    for (i, (step, label)) in STEPS.iter().enumerate() {
        let (_, p, f) = floor.iter().find(|b| b.0 == *step).unwrap();
        let d = drover_times[i].as_secs_f64();
        let (r, rd) = match refinery_times[i] {
            Some(r) => (
                format!("{:.2} s", r.as_secs_f64()),
                format!(
                    "{:.2} {}",
                    r.as_secs_f64() / d,
                    verdict(r.as_secs_f64() / d >= 1.3)
                ),
            ),
            None => ("skipped".into(), "-".into()),
        };
        let df = d / f.as_secs_f64();
        println!(
            "  {:<46} {:>9} {:>9} {:>12} {:>14} {:>16}",
            label,
            format!("{:.2} s P={p}", f.as_secs_f64()),
            format!("{d:.2} s"),
            r,
            format!("{df:.2} {}", verdict(df <= 1.15)),
            rd
        );
    }
    for (i, label) in [
        "first, without the fingerprint",
        "steady, without the fingerprint",
    ]
    .iter()
    .enumerate()
    {
        let step = [Step::First, Step::Steady][i];
        let f = floor.iter().find(|b| b.0 == step).unwrap().2.as_secs_f64();
        let d = bare[i].as_secs_f64();
        let r = refinery_times[i].map_or("-".into(), |r| {
            format!(
                "{:.2} {}",
                r.as_secs_f64() / d,
                verdict(r.as_secs_f64() / d >= 1.3)
            )
        });
        println!(
            "  {:<46} {:>9} {:>9} {:>12} {:>14} {:>16}",
            label,
            "",
            format!("{d:.2} s"),
            "",
            format!("{:.2} {}", d / f, verdict(d / f <= 1.15)),
            r
        );
    }
    println!("  targets: drover <= 1.15 x the floor, refinery CLI >= 1.3 x drover");
    println!(
        "  drover CPU per wave (first, steady, no-op): {:.2} s, {:.2} s, {:.2} s; whole machine {:.2} s, {:.2} s, {:.2} s",
        cpu[0], cpu[1], cpu[2], machine[0], machine[1], machine[2]
    );
    let rate = noop as f64 / noop_time.as_secs_f64();
    println!(
        "  no-op wave over {noop} up-to-date tenants (max_concurrency 16): {:.2} s = {rate:.0} tenants/s {} (target >= 250)",
        noop_time.as_secs_f64(),
        verdict(rate >= 250.0)
    );
    println!(
        "    per tenant: first tenth {:.1} ms at {:.0}/s, last tenth {:.1} ms at {:.0}/s (median {:.1} ms, p90 {:.1} ms); drover CPU {:.2} s, machine {:.2} s",
        big.first_tenth_ms, big.first_tenth_rate, big.last_tenth_ms, big.last_tenth_rate, big.median_ms, big.p90_ms,
        cpu3 - cpu2, sys3 - sys2
    );
    println!(
        "    created → first claim {:.0} ms, last record → completed {:.0} ms, slots busy {:.0} %",
        big.start_lag * 1000.0,
        big.tail * 1000.0,
        big.busy * 100.0
    );
    println!(
        "  daemon peak RSS (VmHWM) {rss:.1} MB {} (target < 100 MB)",
        verdict(rss < 100.0)
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// A wave over the tenants labelled `timed`, `max_concurrency` [`CONCURRENCY`].
fn plan(labels: Value, target: i32) -> Value {
    json!({"selector": {"labels": labels}, "target_version": target, "batch_size": 10000,
           "max_concurrency": CONCURRENCY, "soak_seconds": 0, "canary": {"count": 0}})
}

/// Registers databases `{prefix}0..{prefix}{count}`, the first `timed` labelled `timed=yes`.
async fn register(
    api: &support::daemon::Api,
    cluster: &Cluster,
    prefix: &str,
    count: usize,
    timed: usize,
) {
    for i in 0..count {
        let label = if i < timed { "yes" } else { "no" };
        api.post(
            "/v1/tenants",
            json!({"slug": format!("{prefix}{i}"), "display_name": format!("Tenant {i}"), "db_name": format!("{prefix}{i}"),
                   "db_host": "127.0.0.1", "db_port": cluster.port(), "db_user": "postgres",
                   "db_secret_ref": "file:tenants/pw", "status": "active", "labels": {"timed": label}}),
        )
        .await;
    }
}
