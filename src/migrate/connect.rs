//! Where a tenant database is, the limits of one run, and the connection every runner opens
//! (the migration, its dry-run twin and the lock-retry probe), with its session settings in
//! the startup packet.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Client;

use super::error::MigrateError;
use crate::tls::{PgTarget, SslMode};

/// Where a tenant database is and how to log in.
pub struct TenantConnection {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: SecretString,
    /// libpq options from the registry (`sslmode`, `sslrootcert`, `connect_timeout`,
    /// `application_name` are honoured).
    pub options: std::collections::BTreeMap<String, String>,
    /// CA bundle for `verify-*` when `sslrootcert` is not set (`DROVER_CA_FILE`).
    pub default_ca: Option<std::path::PathBuf>,
}

/// Limits for one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// `lock_timeout` for the migration statements.
    pub lock_timeout: Duration,
    /// `statement_timeout` for the migration statements.
    pub statement_timeout: Duration,
    /// How long to poll for the tenant's advisory lock.
    pub lock_wait: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
}

/// Connects with the limits' timeouts, `extra_options` (more `-c name=value` settings for
/// the startup packet) and `app_name` unless the tenant's options name one.
pub(crate) async fn connect_with(
    conn: &TenantConnection,
    limits: &RunLimits,
    extra_options: &str,
    app_name: &str,
) -> Result<Client, MigrateError> {
    let opt = |k: &str| conn.options.get(k).map(String::as_str);
    let connect_timeout = opt("connect_timeout")
        .and_then(|v| v.parse().ok())
        .map_or(limits.connect_timeout, Duration::from_secs);
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&conn.host)
        .port(conn.port)
        .dbname(&conn.dbname)
        .user(&conn.user)
        .password(conn.password.expose_secret())
        .application_name(opt("application_name").unwrap_or(app_name))
        // Session settings travel in the startup packet: no extra round trip. Notices
        // (refinery's `CREATE TABLE IF NOT EXISTS … skipping`, one per tenant) are noise
        // to a runner: the server need not even send them.
        .options(format!(
            "-c lock_timeout={} -c statement_timeout={} -c client_min_messages=warning {extra_options}",
            limits.lock_timeout.as_millis(),
            limits.statement_timeout.as_millis()
        ))
        .connect_timeout(connect_timeout);
    let mode: SslMode = opt("sslmode")
        .and_then(|m| m.parse().ok())
        .unwrap_or(SslMode::Prefer);
    let target = PgTarget::from_config(cfg, mode, opt("sslrootcert").map(Into::into));
    target
        .connect(conn.default_ca.as_deref())
        .await
        .map_err(|e| {
            // Refused logins (bad password, no such database) and certificate rejections
            // will not fix themselves; a refused or reset connection may.
            match e {
                crate::tls::TlsError::Connect(pg) if pg.as_db_error().is_some() => {
                    MigrateError::from_pg(0, &pg)
                }
                e if e.is_retryable() => MigrateError::Connect(e.to_string()),
                e => MigrateError::Refused(e.to_string()),
            }
        })
}
