//! Preflight (see README.md#cli, `drover doctor`): what drover needs from its surroundings,
//! checked the same way for `drover doctor` and the `checks` of `/readyz`. Each check names
//! what it looked at, whether it passed, and, when not, what to do. Failures are data here, not
//! errors: a doctor reports every problem at once rather than stopping at the first.
//!
//! Checks: the control DB runs PostgreSQL 13 or newer and has `gen_random_uuid()`
//! (failures), `pg_trgm` for indexed tenant search (a warning); each provisioning server
//! answers within [`SERVER_TIMEOUT`] with a role that has CREATEDB and CREATEROLE; the
//! secrets directory is writable when provisioning stores passwords as `file:` secrets.
//!
//! What it reads: the provisioning settings (servers, default CA bundle, secret template)
//! and the secret settings (the secrets directory), never the whole configuration.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

use crate::provision::{ProvisionSettings, Server};
use crate::secrets::SecretSettings;

/// How long one provisioning server may take to answer: `/readyz` must stay well inside a
/// probe's timeout even with a dead server.
pub const SERVER_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long `/readyz` reuses the last results (probes come every few seconds).
pub const CACHE_FOR: Duration = Duration::from_secs(30);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PreflightOutcome)]
pub enum Outcome {
    /// As needed.
    Ok,
    /// Works, but worse than it could (e.g. unindexed search).
    Warning,
    /// Something drover needs is missing.
    Failed,
}

/// One check.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PreflightCheck)]
pub struct Check {
    /// What was checked, e.g. `control_db.version`, `provision_server.eu-1`.
    pub name: String,
    /// Whether it passed.
    pub outcome: Outcome,
    /// What was found.
    pub message: String,
    /// What to do (absent when it passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, message: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            outcome: Outcome::Ok,
            message: message.into(),
            fix: None,
        }
    }

    fn problem(
        name: impl Into<String>,
        outcome: Outcome,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            outcome,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check (the provisioning servers concurrently).
pub async fn run(
    provision: &ProvisionSettings,
    secrets: &SecretSettings,
    pool: &Pool,
) -> Vec<Check> {
    let default_ca = provision.ca_file.as_deref();
    let servers = provision.servers.iter().map(|s| server(s, default_ca));
    let (mut checks, servers) =
        tokio::join!(control_db(pool), futures_util::future::join_all(servers));
    checks.extend(servers);
    checks.extend(secrets_dir(provision, secrets));
    checks
}

async fn control_db(pool: &Pool) -> Vec<Check> {
    const FIX_UNREACHABLE: &str =
        "check DROVER_DATABASE_URL and that the control database accepts connections";
    let client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            let message = format!("cannot connect: {}", crate::db::DbError::from(e));
            return vec![Check::problem(
                "control_db",
                Outcome::Failed,
                message,
                FIX_UNREACHABLE,
            )];
        }
    };
    let mut checks = Vec::new();
    checks.push(
        match client
            .query_one("SELECT current_setting('server_version_num')::int AS num, current_setting('server_version') AS version", &[])
            .await
        {
            Ok(row) if row.get::<_, i32>("num") >= 130000 => Check::ok(
                "control_db.version",
                format!("PostgreSQL {}", row.get::<_, String>("version")),
            ),
            Ok(row) => Check::problem(
                "control_db.version",
                Outcome::Failed,
                format!("PostgreSQL {} is older than 13", row.get::<_, String>("version")),
                "upgrade the control database to PostgreSQL 13 or newer",
            ),
            Err(e) => Check::problem("control_db.version", Outcome::Failed, crate::db::describe(&e), FIX_UNREACHABLE),
        },
    );
    checks.push(
        match client.query_one("SELECT gen_random_uuid()", &[]).await {
            Ok(_) => Check::ok("control_db.gen_random_uuid", "available"),
            Err(e) => Check::problem(
                "control_db.gen_random_uuid",
                Outcome::Failed,
                crate::db::describe(&e),
                "gen_random_uuid() is built into PostgreSQL 13+; upgrade the server (or CREATE EXTENSION pgcrypto on an older one)",
            ),
        },
    );
    checks.push(
        match client
            .query_opt("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'", &[])
            .await
        {
            Ok(Some(row)) => Check::ok(
                "control_db.pg_trgm",
                format!("pg_trgm {}: tenant search is indexed", row.get::<_, String>("extversion")),
            ),
            Ok(None) => Check::problem(
                "control_db.pg_trgm",
                Outcome::Warning,
                "pg_trgm is not installed: tenant search (q=) scans every tenant",
                "as the database owner or a superuser: CREATE EXTENSION pg_trgm; then create the indexes of control migration V14 (postgresql-contrib must be installed on the server)",
            ),
            Err(e) => Check::problem("control_db.pg_trgm", Outcome::Warning, crate::db::describe(&e), FIX_UNREACHABLE),
        },
    );
    checks
}

async fn server(server: &Server, default_ca: Option<&std::path::Path>) -> Check {
    let name = format!("provision_server.{}", server.name);
    let Some(admin) = server.admin() else {
        return Check::ok(
            name,
            "external provisioner: drover sends it signed requests and logs in with what it reports",
        );
    };
    let mut target = admin.clone();
    target.config.connect_timeout(SERVER_TIMEOUT);
    let ca = server.ca_file.as_deref().or(default_ca);
    let attempt = async {
        let client = target.connect(ca).await.map_err(|e| e.to_string())?;
        client
            .query_one(
                "SELECT current_user::text AS role, rolcreatedb OR rolsuper AS createdb, \
                 rolcreaterole OR rolsuper AS createrole \
                 FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| crate::db::describe(&e))
    };
    let row =
        match tokio::time::timeout(SERVER_TIMEOUT, attempt).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => {
                return Check::problem(
                    name,
                    Outcome::Failed,
                    format!("cannot connect: {e}"),
                    "check the server's url, that it is running and that pg_hba.conf admits drover",
                )
            }
            Err(_) => return Check::problem(
                name,
                Outcome::Failed,
                format!("no answer within {SERVER_TIMEOUT:?}"),
                "check that the server is running and reachable from drover (host, port, firewall)",
            ),
        };
    let role: String = row.get("role");
    let missing: Vec<&str> = [("CREATEDB", "createdb"), ("CREATEROLE", "createrole")]
        .into_iter()
        .filter(|(_, col)| !row.get::<_, bool>(*col))
        .map(|(attr, _)| attr)
        .collect();
    if missing.is_empty() {
        Check::ok(
            name,
            format!("reachable as {role} with CREATEDB and CREATEROLE"),
        )
    } else {
        Check::problem(
            name,
            Outcome::Failed,
            format!("role {role} lacks {}", missing.join(" and ")),
            format!(
                "as a superuser on that server: ALTER ROLE {role} {}",
                missing.join(" ")
            ),
        )
    }
}

/// The secrets directory, when provisioning writes generated passwords there.
fn secrets_dir(provision: &ProvisionSettings, secrets: &SecretSettings) -> Option<Check> {
    const NAME: &str = "secrets_dir";
    let template = &provision.secret_ref;
    if provision.servers.is_empty() || !template.starts_with("file:") {
        return None;
    }
    let Some(dir) = &secrets.dir else {
        return Some(Check::problem(
            NAME,
            Outcome::Failed,
            format!("provision_secret_ref is {template:?} but no secrets directory is set"),
            "set DROVER_SECRETS_DIR (secrets_dir) to a directory drover may write, or use a vault: template",
        ));
    };
    let probe = dir.join(format!(".drover-preflight-{}", std::process::id()));
    let written = std::fs::write(&probe, b"");
    let _ = std::fs::remove_file(&probe);
    Some(match written {
        Ok(()) => Check::ok(NAME, format!("{} is writable", dir.display())),
        Err(e) => Check::problem(
            NAME,
            Outcome::Failed,
            format!("{} is not writable: {e}", dir.display()),
            "create the directory and make it writable by drover's user (mode 0700), or use a vault: template",
        ),
    })
}

/// The last results for `/readyz`, reused for [`CACHE_FOR`].
#[derive(Default)]
pub struct Cache(tokio::sync::Mutex<Option<(Instant, Vec<Check>)>>);

impl Cache {
    /// The checks, run again when the last results are older than [`CACHE_FOR`].
    pub async fn get(
        &self,
        provision: &ProvisionSettings,
        secrets: &SecretSettings,
        pool: &Pool,
    ) -> Vec<Check> {
        let mut slot = self.0.lock().await;
        if let Some((at, checks)) = &*slot {
            if at.elapsed() < CACHE_FOR {
                return checks.clone();
            }
        }
        let checks = run(provision, secrets, pool).await;
        *slot = Some((Instant::now(), checks.clone()));
        checks
    }
}
