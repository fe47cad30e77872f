//! Connections to the control-plane database: the shared pool, the embedded control
//! migrations, and turning PostgreSQL errors into words an operator can act on.
//!
//! Control migrations run on a dedicated connection under a session-level advisory lock,
//! so any number of replicas (or `drover migrate-control` runs) starting together apply
//! each migration exactly once: the first holds the lock and migrates, the rest wait,
//! then find nothing left to do.

use std::path::Path;
use std::time::Duration;

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};

pub use crate::tls::describe;
use crate::tls::{PgTarget, TlsError};

mod embedded {
    refinery::embed_migrations!("control-migrations");
}

/// Where refinery records control-plane migrations: beside the tables it created.
pub const CONTROL_HISTORY_TABLE: &str = "control_plane.refinery_schema_history";

/// Advisory-lock key serializing control migrations ("drover" in ASCII, then 1).
const CONTROL_MIGRATION_LOCK: i64 = 0x6472_6f76_6572_0001;

/// Failures talking to the control database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL could not be parsed. The URL itself is never shown: it may hold a password.
    #[error(
        "{0} is not a valid PostgreSQL connection URL (postgres://user@host:port/dbname): {1}"
    )]
    BadUrl(&'static str, String),
    /// TLS could not be set up (CA bundle unreadable, bad certificate).
    #[error("control database TLS: {0}")]
    Tls(#[source] TlsError),
    /// A connection or query failed.
    #[error("control database: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be taken from the pool in time.
    #[error("control database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The connection pool could not be built (a bug or a misconfiguration).
    #[error("control database: cannot build the connection pool: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    /// A stored value this version cannot read (written by hand, or by a newer version):
    /// the operation is refused and the row left alone.
    #[error("control database: {what} holds a value this version cannot read: {source}")]
    Corrupt {
        /// The table and column, or what the value is.
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A failure without a typed cause worth keeping (the system's random generator, or
    /// serializing one of drover's own types); no retry fixes it.
    #[error("control database: {0}")]
    Internal(String),
    /// A control migration failed.
    #[error("control migration failed: {0}")]
    Migration(String),
}

impl DbError {
    /// Whether retrying later may succeed (the database was unreachable or busy).
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Postgres(e) => is_retryable_pg(e),
            DbError::Pool(_) => true,
            DbError::BadUrl(..)
            | DbError::Tls(_)
            | DbError::PoolBuild(_)
            | DbError::Corrupt { .. }
            | DbError::Internal(_)
            | DbError::Migration(_) => false,
        }
    }
}

/// Retryable PostgreSQL failures: the connection dropped or the server asked us to retry.
pub fn is_retryable_pg(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => e.is_closed() || e.as_db_error().is_none(),
        Some(code) => {
            let c = code.code();
            // 08: connection exception, 40001/40P01: serialization/deadlock, 53300: too many
            // connections, 55P03: lock not available, 57P01..03: server shutting down.
            c.starts_with("08")
                || matches!(
                    c,
                    "40001" | "40P01" | "53300" | "55P03" | "57P01" | "57P02" | "57P03"
                )
        }
    }
}

impl From<TlsError> for DbError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Connect(pg) => DbError::Postgres(pg),
            other => DbError::Tls(other),
        }
    }
}

/// Parses a control-DB URL (with libpq `sslmode`/`sslrootcert`) without ever echoing it.
pub fn parse_url(url: &SecretString, name: &'static str) -> Result<PgTarget, DbError> {
    let mut target =
        PgTarget::parse(url.expose_secret()).map_err(|e| DbError::BadUrl(name, e.to_string()))?;
    if target.config.get_application_name().is_none() {
        target.config.application_name("drover");
    }
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(Duration::from_secs(5));
    }
    Ok(target)
}

/// The TCP addresses the control DB's URL names (host names resolved now; socket paths
/// and names that do not resolve are left out): webhooks are refused these.
pub async fn control_addresses(url: &SecretString) -> Vec<std::net::SocketAddr> {
    let Ok(target) = parse_url(url, "DROVER_DATABASE_URL") else {
        return Vec::new();
    };
    let config = &target.config;
    let ports = config.get_ports();
    let mut out = Vec::new();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        if let tokio_postgres::config::Host::Tcp(name) = host {
            if let Ok(found) = tokio::net::lookup_host((name.as_str(), port)).await {
                out.extend(found);
            }
        }
    }
    for ip in config.get_hostaddrs() {
        let port = ports.first().copied().unwrap_or(5432);
        out.push(std::net::SocketAddr::new(*ip, port));
    }
    out
}

/// The shared control-plane pool. Connections are opened lazily. `ca` is the default CA
/// bundle for `sslmode=verify-*` (`DROVER_CA_FILE`).
pub fn control_pool(url: &SecretString, size: usize, ca: Option<&Path>) -> Result<Pool, DbError> {
    let target = parse_url(url, "DROVER_DATABASE_URL")?;
    let mgr = target.manager(
        ca,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    )?;
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(DbError::PoolBuild)
}

/// Opens one dedicated connection (not pooled), driving it on a background task.
pub async fn connect(
    url: &SecretString,
    ca: Option<&Path>,
) -> Result<tokio_postgres::Client, DbError> {
    Ok(parse_url(url, "DROVER_DATABASE_URL")?.connect(ca).await?)
}

/// The highest control migration version embedded in this binary.
pub fn control_head_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// Applies pending control migrations under the advisory lock. Returns the versions this
/// call applied (empty when another runner got there first).
pub async fn migrate_control(url: &SecretString, ca: Option<&Path>) -> Result<Vec<i32>, DbError> {
    let mut client = connect(url, ca).await?;
    // A blocking wait is right here: control migrations are short and transactional, and
    // every waiter needs the result anyway.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&CONTROL_MIGRATION_LOCK])
        .await?;
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS control_plane")
        .await?;
    let mut runner = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true);
    runner.set_migration_table_name(CONTROL_HISTORY_TABLE);
    let result = runner.run_async(&mut client).await;
    // Closing the session would release the lock too; unlocking keeps it tidy.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&CONTROL_MIGRATION_LOCK])
        .await;
    let report = result.map_err(|e| DbError::Migration(refinery_cause(&e)))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.version())
        .collect())
}

fn refinery_cause(e: &refinery::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(pg) = inner.downcast_ref::<tokio_postgres::Error>() {
            s.push_str(": ");
            s.push_str(&describe(pg));
            break;
        }
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The control schema version recorded in the database (0 before the first migration).
pub async fn control_schema_version(client: &tokio_postgres::Client) -> Result<i32, DbError> {
    const SQL: &str =
        "SELECT coalesce(max(version), 0) AS version FROM control_plane.refinery_schema_history";
    const EXISTS: &str =
        "SELECT to_regclass('control_plane.refinery_schema_history') IS NOT NULL AS present";
    let exists: bool = client.query_one(EXISTS, &[]).await?.try_get("present")?;
    if !exists {
        return Ok(0);
    }
    Ok(client.query_one(SQL, &[]).await?.try_get("version")?)
}
