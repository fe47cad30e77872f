//! The PostgreSQL side of the tests: one throwaway cluster per test binary (or the server
//! named by `DROVER_TEST_DATABASE_URL`), a fresh database per test, tenant databases, and
//! what a test reads back from them (migration history, side effects, a schema dump).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use drover::devcluster::{Cluster, ClusterOptions};

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

/// A name no other database of this run has: `{prefix}_{pid}_{n}`.
fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a fresh, uniquely named database and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    let name = unique_name(prefix);
    let admin = connect(&admin_db()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e:?}"));
    db_url(&name)
}

/// A fresh control database with drover's control-plane migrations already applied: a
/// copy of a template this test binary migrates once. Every daemon still runs the
/// migrations at start (and finds them applied, as after a restart); a test about applying
/// them to an empty database takes `fresh_database` instead. Copying saves each test the
/// ~1.5 s that replaying every control migration costs, which across the suite was about a
/// quarter of its run time.
pub async fn fresh_control_database() -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let template = TEMPLATE
        .get_or_init(|| async {
            let name = unique_name("control_template");
            let admin = connect(&admin_db()).await;
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap_or_else(|e| panic!("create database {name}: {e:?}"));
            let url = secrecy::SecretString::from(db_url(&name));
            drover::db::migrate_control(&url, None)
                .await
                .unwrap_or_else(|e| panic!("migrate the control template {name}: {e}"));
            name
        })
        .await;
    let name = unique_name("control");
    let admin = connect(&admin_db()).await;
    // CREATE DATABASE waits (up to 5 s) for the migration's own session to leave the template.
    admin
        .batch_execute(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .await
        .unwrap_or_else(|e| panic!("create database {name} from {template}: {e:?}"));
    db_url(&name)
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

/// A tenant database registered with the daemon.
pub struct TenantDb {
    pub slug: String,
    pub url: String,
}

/// A tenant database owned by a login role that must authenticate with `password`
/// (the harness' pg_hba requires SCRAM for members of `drover_password_auth`).
/// Returns the database (and role) name.
pub async fn password_tenant_db(prefix: &str, password: &str) -> String {
    let name = unique_name(prefix);
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

/// Gives login role `role` a new password (a rotation on the database side).
pub async fn set_role_password(role: &str, password: &str) {
    connect(&admin_db())
        .await
        .batch_execute(&format!(
            "ALTER ROLE \"{role}\" PASSWORD '{}'",
            password.replace('\'', "''")
        ))
        .await
        .unwrap_or_else(|e| panic!("alter role {role}: {e:?}"));
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

/// The versions in `refinery_schema_history`, or empty when the table is absent.
pub async fn history(url: &str) -> Vec<i32> {
    let c = connect(url).await;
    let exists: bool = c
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL AS present",
            &[],
        )
        .await
        .unwrap()
        .get("present");
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
    .map(|r| r.get("version"))
    .collect()
}

/// Versions recorded in `side_effects`, in insertion order (duplicates would show twice).
pub async fn side_effects(url: &str) -> Vec<i32> {
    let c = connect(url).await;
    c.query("SELECT version FROM side_effects ORDER BY version", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get("version")).collect())
        .unwrap_or_default()
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
