//! `drover quickstart`: the product working in under a minute, on a throwaway PostgreSQL.
//!
//! ```text
//!  start a throwaway cluster (./.drover/quickstart)  ─ or use DROVER_DATABASE_URL
//!   → control DB; the daemon in-process (control migrations, HTTP, wave worker,
//!     provisioning through the cluster's superuser)
//!   → provision 24 tenants through the API (role, database, password in a file: secret,
//!     migrated to all but the newest tenant migration; 2 canaries)
//!   → "a new migration landed": the newest file appears → a wave, canaries first, live bars
//!   → resolve one DSN, show the psql line → serve until Ctrl-C (or exit with --exit)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::client::ApiClient;
use crate::app::Application;
use crate::config::Config;
use crate::devcluster::{Cluster, ClusterOptions};

/// Options of `drover quickstart`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuickstartArgs {
    /// Where the throwaway cluster and secrets live.
    #[arg(long, default_value = ".drover/quickstart")]
    pub dir: PathBuf,
    /// Number of demo tenants.
    #[arg(long, default_value_t = 24)]
    pub tenants: usize,
    /// Keep the cluster's data directory when drover exits.
    #[arg(long)]
    pub keep: bool,
    /// Exit after the tour instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Address to serve on; when it is taken, any free port is used instead.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

/// 32 random hex digits from the kernel's generator.
fn token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs the tour.
pub async fn run(args: QuickstartArgs) -> anyhow::Result<ExitCode> {
    let dir = std::env::current_dir()?.join(&args.dir);
    std::fs::create_dir_all(dir.join("secrets/tenants"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let (cluster, admin_url) = start_postgres(&dir, args.keep).await?;
    let admin = crate::db::connect(&admin_url, None).await?;
    let (host, port) = server_address(admin_url.expose_secret())?;
    create_control_db(&admin).await?;
    let (migrations, newest) = stage_migrations(&dir)?;
    let daemon = Daemon::start(&args, &dir, &admin_url, &migrations).await?;

    let api = ApiClient::with_token(&daemon.base, &daemon.admin_token)?;
    provision_demo_tenants(&api, args.tenants, &host, port).await?;
    let outcome = roll_out_newest(&api, &migrations, newest.as_deref()).await?;
    let sample = format!("tenant-{:02}", args.tenants.saturating_sub(1).min(7));
    show_resolution(&daemon, &sample).await?;
    show_metrics_and_next_steps(&daemon).await?;

    if !args.exit {
        println!("\nserving until Ctrl-C ...");
        crate::app::cancel_on_signal(daemon.shutdown.clone(), None);
    } else {
        daemon.shutdown.cancel();
    }
    daemon.handle.await??;
    drop(admin);
    clean_up(cluster, &dir, &migrations, args.keep).await;
    Ok(outcome)
}

/// The PostgreSQL server the tour uses and a superuser URL for it: the one of
/// `DROVER_DATABASE_URL`, else a throwaway cluster started under `dir`.
async fn start_postgres(dir: &Path, keep: bool) -> anyhow::Result<(Option<Cluster>, SecretString)> {
    let external = std::env::var("DROVER_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if let Some(url) = external {
        println!("using the PostgreSQL server of DROVER_DATABASE_URL");
        return Ok((None, SecretString::from(url)));
    }
    println!(
        "starting a throwaway PostgreSQL cluster in {} ...",
        dir.display()
    );
    let parent = dir.to_path_buf();
    let cluster = tokio::task::spawn_blocking(move || throwaway_cluster(&parent, keep)).await??;
    let url = cluster.superuser_url("postgres");
    Ok((Some(cluster), url))
}

/// The tour's own cluster under `dir`: its superuser has a fresh random password and no
/// connection is trusted, socket or TCP (other accounts on the machine reach loopback
/// too). With `keep`, the password stays in the kept data directory's `drover.pgpass`.
pub fn throwaway_cluster(dir: &Path, keep: bool) -> anyhow::Result<Cluster> {
    Ok(Cluster::start(ClusterOptions {
        parent_dir: Some(dir.to_path_buf()),
        keep,
        stop_with_process: true,
        superuser_password: Some(SecretString::from(token()?)),
        ..Default::default()
    })?)
}

/// The host and port tenants are registered with: the admin URL's (a TCP host), else the
/// loopback address.
fn server_address(admin_url: &str) -> anyhow::Result<(String, u16)> {
    let target = crate::tls::PgTarget::parse(admin_url)?;
    let host = match target.config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    Ok((host, port))
}

/// `qs_control`, unless a kept cluster of an earlier run has it already.
async fn create_control_db(admin: &tokio_postgres::Client) -> anyhow::Result<()> {
    let has_control: bool = admin
        .query_one(
            "SELECT count(*) > 0 AS present FROM pg_database WHERE datname = 'qs_control'",
            &[],
        )
        .await?
        .try_get("present")?;
    if !has_control {
        admin.batch_execute("CREATE DATABASE qs_control").await?;
    }
    Ok(())
}

/// The daemon running in this process, and what the tour needs to talk to it.
struct Daemon {
    base: String,
    admin_token: String,
    resolver_token: String,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    /// Configures the daemon as an operator would through `DROVER_*` variables (fresh
    /// tokens, the staged migrations, provisioning on the tour's server) and starts it.
    async fn start(
        args: &QuickstartArgs,
        dir: &Path,
        admin_url: &SecretString,
        migrations: &Path,
    ) -> anyhow::Result<Daemon> {
        // Exposed only into the configuration, which keeps both as secrets again.
        let admin_url = admin_url.expose_secret();
        let control_url = replace_dbname(admin_url, "qs_control");
        let (admin_token, resolver_token) = (token()?, token()?);
        let listen = if std::net::TcpListener::bind(args.listen).is_ok() {
            args.listen
        } else {
            std::net::SocketAddr::new(args.listen.ip(), 0)
        };
        let env: Vec<(String, String)> = vec![
            ("DROVER_DATABASE_URL".into(), control_url),
            ("DROVER_LISTEN".into(), listen.to_string()),
            ("DROVER_ADMIN_TOKEN".into(), admin_token.clone()),
            ("DROVER_RESOLVER_TOKEN".into(), resolver_token.clone()),
            (
                "DROVER_SECRETS_DIR".into(),
                dir.join("secrets").display().to_string(),
            ),
            (
                "DROVER_MIGRATIONS_DIR".into(),
                migrations.display().to_string(),
            ),
            ("DROVER_PROVISION_URL".into(), admin_url.to_string()),
            ("DROVER_LOG".into(), "warn".into()),
        ];
        let config = Config::load_with(None, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })?;
        let app = Application::build(config).await?;
        let base = format!("http://{}", app.local_addr());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        println!("drover is serving on {base}");
        Ok(Daemon {
            base,
            admin_token,
            resolver_token,
            shutdown,
            handle,
        })
    }
}

/// "A new migration landed": the held-back newest file appears, and a wave rolls it out
/// with live bars. Returns the wave's exit code.
async fn roll_out_newest(
    api: &ApiClient,
    migrations: &Path,
    newest: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    if let Some(file) = newest {
        std::fs::copy(file, migrations.join(file.file_name().unwrap_or_default()))?;
        println!(
            "\na new tenant migration landed: {}",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    let wave: Value = api
        .call(
            Method::POST,
            "/v1/waves",
            Some(&json!({"batch_size": 8, "max_concurrency": 4, "soak_seconds": 2})),
        )
        .await?;
    let id = wave["id"].as_str().unwrap_or_default().to_string();
    println!(
        "wave {id}: canaries first, a 2 s soak, then batches of 8 to V{}",
        wave["target_version"]
    );
    super::waves::watch_wave(api, &id).await
}

/// Resolves `sample` with the resolver token, as an application server would.
async fn show_resolution(daemon: &Daemon, sample: &str) -> anyhow::Result<()> {
    let (base, resolver_token) = (&daemon.base, &daemon.resolver_token);
    let resolved: Value = ApiClient::with_token(base, resolver_token)?
        .call(
            Method::GET,
            &format!("/v1/resolve/{sample}"),
            None::<&Value>,
        )
        .await?;
    let dsn = resolved["dsn"].as_str().unwrap_or_default();
    println!("\nresolve a tenant the way an application server does:");
    println!("  curl -s -H 'Authorization: Bearer {resolver_token}' {base}/v1/resolve/{sample}");
    println!("  → {}", serde_json::to_string(&resolved)?);
    println!("  psql '{dsn}' -c '\\dt'");
    Ok(())
}

/// A few metric lines, the other endpoints, and what to try next with the admin token.
async fn show_metrics_and_next_steps(daemon: &Daemon) -> anyhow::Result<()> {
    let (base, admin_token) = (&daemon.base, &daemon.admin_token);
    println!("\nmetrics for Prometheus: {base}/metrics, e.g.");
    let metrics = metrics_after_the_wave(base).await?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("drover_tenants_by_schema_version")
            || l.starts_with("drover_waves{state=\"completed\"}")
            || l.starts_with("drover_provisioning_total")
    }) {
        println!("  {line}");
    }
    println!(
        "health: {base}/healthz  readiness: {base}/readyz  fleet: {base}/v1/fleet (admin token)"
    );
    println!("web console: {base}/ui/ (log in with the admin token below)");
    println!("try next:");
    println!("  export DROVER_SERVER={base} DROVER_ADMIN_TOKEN={admin_token}");
    println!("  cargo run --release -- tenants list");
    println!("  cargo run --release -- fleet");
    println!("  cargo run --release -- waves list");
    println!("  cargo run --release -- tokens create dashboards --role viewer   # least privilege: a named read-only token");
    Ok(())
}

/// Stops the throwaway cluster; without `--keep`, removes the secrets and the staged files.
async fn clean_up(cluster: Option<Cluster>, dir: &Path, migrations: &Path, keep: bool) {
    if let Some(mut c) = cluster {
        let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        if keep {
            println!(
                "kept the cluster's data in {} (the superuser's password is in its drover.pgpass)",
                dir.display()
            );
        }
    }
    if !keep {
        let _ = std::fs::remove_dir_all(dir.join("secrets"));
        let _ = std::fs::remove_dir_all(migrations);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Copies the tenant migrations (`DROVER_MIGRATIONS_DIR`, default `./tenant-migrations`)
/// into `dir/migrations`, all but the newest: the tenants are provisioned at the version
/// before it, and the newest is what the tour's wave rolls out. Returns the directory and
/// the held-back file.
fn stage_migrations(dir: &std::path::Path) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let source = std::env::var("DROVER_MIGRATIONS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("./tenant-migrations"));
    let set = crate::migrate::MigrationSet::load(&source).with_context(|| {
        format!(
            "loading the tenant migrations from {} (run quickstart from the repository, or set DROVER_MIGRATIONS_DIR)",
            source.display()
        )
    })?;
    let staged = dir.join("migrations");
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged)?;
    let newest = set.latest();
    let mut held_back = None;
    for f in set.files() {
        let from = source.join(f.file_name());
        if Some(f.version) == newest {
            held_back = Some(from);
        } else {
            std::fs::copy(&from, staged.join(f.file_name()))?;
        }
    }
    Ok((staged, held_back))
}

/// Creates the demo tenants with `provision: true` and draws a bar until all are active.
async fn provision_demo_tenants(
    api: &ApiClient,
    count: usize,
    host: &str,
    port: u16,
) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(count as u64).with_style(
        indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("provisioning");
    let mut jobs = futures_util::stream::FuturesUnordered::new();
    for i in 0..count {
        let slug = format!("tenant-{i:02}");
        let db = format!("qs_tenant_{i:02}");
        let body = json!({
            "slug": slug, "display_name": format!("Demo tenant {i}"), "db_name": db,
            "db_host": host, "db_port": port, "db_user": db,
            "db_secret_ref": format!("file:tenants/{slug}"), "provision": true,
            "canary": i < 2, "labels": {"plan": if i % 3 == 0 { "pro" } else { "free" }},
        });
        jobs.push(async move {
            // A kept cluster from an earlier run may hold the tenant already.
            let existing: Result<Value, _> = api
                .call(Method::GET, &format!("/v1/tenants/{slug}"), None::<&Value>)
                .await;
            let done: anyhow::Result<Value> = match existing {
                Ok(t) if t["status"] != "provisioning" => Ok(t),
                Ok(_) => {
                    let path = format!("/v1/tenants/{slug}/provision?wait=true");
                    api.call_waiting(Method::POST, &path, None::<&Value>).await
                }
                Err(_) => {
                    api.call_waiting(Method::POST, "/v1/tenants?wait=true", Some(&body))
                        .await
                }
            };
            done.with_context(|| format!("provisioning {slug}"))
        });
    }
    while let Some(done) = futures_util::StreamExt::next(&mut jobs).await {
        done?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "provisioned {count} tenants through the API: a role, a database and a generated password \
         (in a file: secret) each, migrated; tenant-00 and tenant-01 are canaries"
    );
    Ok(())
}

/// The same connection string pointing at another database.
fn replace_dbname(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let cut = base[scheme_end..]
        .rfind('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..cut])
}

/// `/metrics` once its fleet gauges (a snapshot refreshed every few seconds) count the
/// finished wave, or as it is after twice the refresh period.
async fn metrics_after_the_wave(base: &str) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + 2 * crate::http::metrics::FLEET_REFRESH;
    loop {
        let text = reqwest::get(format!("{base}/metrics"))
            .await?
            .text()
            .await?;
        let counted = text.lines().any(|l| {
            l.strip_prefix("drover_waves{state=\"completed\"} ")
                .is_some_and(|n| n != "0")
        });
        if counted || tokio::time::Instant::now() >= deadline {
            return Ok(text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_and_the_rest_kept() {
        assert_eq!(
            replace_dbname("postgres://u@h:5/postgres?sslmode=require", "x"),
            "postgres://u@h:5/x?sslmode=require"
        );
        assert_eq!(
            replace_dbname("postgres://u@h:5", "x"),
            "postgres://u@h:5/x"
        );
    }
}
