//! Statements run on the admin connection (`DROVER_PROVISION_URL`): creating, checking and
//! dropping a tenant's login role and database.
//!
//! Names come from the registry, already validated as [`DbIdent`]s (letters, digits, `_`,
//! `-`, at most 63 bytes), and are still quoted with `escape_identifier`: DDL cannot take
//! parameters, so quoting is what keeps a name a name. Passwords never travel: the role gets
//! a SCRAM-SHA-256 verifier computed here, so neither the server log (`log_statement`) nor
//! `pg_stat_activity` ever holds the password itself.
//!
//! Ownership: every role and database drover creates carries the comment
//! `drover tenant <uuid>`. A retry reuses what carries its own tenant's marker and refuses
//! anything else, so drover never adopts, re-passwords or drops somebody else's role or
//! database.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Client;
use uuid::Uuid;

use super::ProvisionError;
use crate::registry::DbIdent;

/// The comment that marks a role or database as drover's, for one tenant.
pub fn marker(tenant: Uuid) -> String {
    format!("drover tenant {tenant}")
}

/// What the cluster holds under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing by that name.
    Absent,
    /// Created by drover for this tenant.
    Ours,
    /// Somebody else's (no marker, or another tenant's).
    Foreign,
}

fn sql_err(step: &'static str) -> impl Fn(tokio_postgres::Error) -> ProvisionError {
    move |e| ProvisionError::from_pg(step, &e)
}

/// Whether the role exists and whose it is.
pub async fn role_state(
    admin: &Client,
    role: &DbIdent,
    tenant: Uuid,
) -> Result<Found, ProvisionError> {
    const SQL: &str =
        "SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1";
    let row = admin
        .query_opt(SQL, &[&role.as_str()])
        .await
        .map_err(sql_err("role"))?;
    Ok(match row {
        None => Found::Absent,
        Some(r) => {
            let comment: Option<String> = r.try_get("comment").map_err(sql_err("role"))?;
            if comment == Some(marker(tenant)) {
                Found::Ours
            } else {
                Found::Foreign
            }
        }
    })
}

/// Creates the login role (marked as ours, in one transaction so a crash cannot leave an
/// unmarked role behind), or resets the password of the role an earlier attempt created.
/// The admin role is granted membership so it may create the database `OWNER` the role
/// and drop it later (PostgreSQL requires that of a non-superuser).
pub async fn ensure_role(
    admin: &mut Client,
    role: &DbIdent,
    password: &SecretString,
    tenant: Uuid,
) -> Result<bool, ProvisionError> {
    let name = escape_identifier(role.as_str());
    let verifier = postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
    let verifier = escape_literal(&verifier);
    match role_state(admin, role, tenant).await? {
        Found::Foreign => Err(ProvisionError::Foreign {
            what: "role",
            name: role.as_str().to_string(),
        }),
        Found::Ours => {
            admin
                .batch_execute(&format!("ALTER ROLE {name} WITH LOGIN PASSWORD {verifier}"))
                .await
                .map_err(sql_err("role"))?;
            // An earlier attempt may have stopped between CREATE ROLE and the grant.
            grant_to_admin(admin, role).await?;
            Ok(false)
        }
        Found::Absent => {
            let tx = admin.transaction().await.map_err(sql_err("role"))?;
            tx.batch_execute(&format!(
                "CREATE ROLE {name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {verifier}; \
                 COMMENT ON ROLE {name} IS {}",
                escape_literal(&marker(tenant))
            ))
            .await
            .map_err(sql_err("role"))?;
            tx.commit().await.map_err(sql_err("role"))?;
            grant_to_admin(admin, role).await?;
            Ok(true)
        }
    }
}

async fn grant_to_admin(admin: &Client, role: &DbIdent) -> Result<(), ProvisionError> {
    const SUPERUSER: &str = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user";
    let superuser: bool = admin
        .query_one(SUPERUSER, &[])
        .await
        .and_then(|row| row.try_get("rolsuper"))
        .map_err(sql_err("role"))?;
    if !superuser {
        admin
            .batch_execute(&format!(
                "GRANT {} TO CURRENT_USER",
                escape_identifier(role.as_str())
            ))
            .await
            .map_err(sql_err("role"))?;
    }
    Ok(())
}

/// Whether the database exists and whose it is. A database owned by our role but without
/// a comment is ours too: CREATE DATABASE cannot run in a transaction with its COMMENT, so
/// a crash between the two leaves exactly that.
pub async fn database_state(
    admin: &Client,
    db: &DbIdent,
    role: &DbIdent,
    tenant: Uuid,
) -> Result<Found, ProvisionError> {
    const SQL: &str = "SELECT shobj_description(d.oid, 'pg_database') AS comment, pg_get_userbyid(d.datdba) AS owner \
                       FROM pg_database d WHERE d.datname = $1";
    let row = admin
        .query_opt(SQL, &[&db.as_str()])
        .await
        .map_err(sql_err("database"))?;
    let Some(row) = row else {
        return Ok(Found::Absent);
    };
    let (comment, owner): (Option<String>, String) = (
        row.try_get("comment").map_err(sql_err("database"))?,
        row.try_get("owner").map_err(sql_err("database"))?,
    );
    let ours = match comment {
        Some(c) => c == marker(tenant),
        None => owner == role.as_str() && role_state(admin, role, tenant).await? == Found::Ours,
    };
    Ok(if ours { Found::Ours } else { Found::Foreign })
}

/// Creates the database owned by the role (or reuses the one an earlier attempt created),
/// marks it, and takes `CONNECT` away from `PUBLIC`: one tenant's role must not be able to
/// open another tenant's database.
pub async fn ensure_database(
    admin: &Client,
    db: &DbIdent,
    role: &DbIdent,
    tenant: Uuid,
) -> Result<bool, ProvisionError> {
    let name = escape_identifier(db.as_str());
    let created = match database_state(admin, db, role, tenant).await? {
        Found::Foreign => {
            return Err(ProvisionError::Foreign {
                what: "database",
                name: db.as_str().to_string(),
            })
        }
        Found::Ours => false,
        Found::Absent => {
            admin
                .batch_execute(&format!(
                    "CREATE DATABASE {name} OWNER {}",
                    escape_identifier(role.as_str())
                ))
                .await
                .map_err(sql_err("database"))?;
            true
        }
    };
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {name} IS {}; REVOKE ALL ON DATABASE {name} FROM PUBLIC",
            escape_literal(&marker(tenant))
        ))
        .await
        .map_err(sql_err("database"))?;
    Ok(created)
}

/// Drops the database (terminating its sessions) and then the role, each only when it is
/// ours; returns what was dropped. Refuses before dropping anything when either is foreign.
pub async fn drop_tenant(
    admin: &Client,
    db: &DbIdent,
    role: &DbIdent,
    tenant: Uuid,
) -> Result<(bool, bool), ProvisionError> {
    let db_state = database_state(admin, db, role, tenant).await?;
    let role_state = role_state(admin, role, tenant).await?;
    if db_state == Found::Foreign {
        return Err(ProvisionError::Foreign {
            what: "database",
            name: db.as_str().to_string(),
        });
    }
    if role_state == Found::Foreign {
        return Err(ProvisionError::Foreign {
            what: "role",
            name: role.as_str().to_string(),
        });
    }
    if db_state == Found::Ours {
        // FORCE terminates the database's sessions first (PostgreSQL 13+); without it one
        // idle application connection would block the drop.
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                escape_identifier(db.as_str())
            ))
            .await
            .map_err(sql_err("drop_database"))?;
    }
    if role_state == Found::Ours {
        admin
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {}",
                escape_identifier(role.as_str())
            ))
            .await
            .map_err(sql_err("drop_role"))?;
    }
    Ok((db_state == Found::Ours, role_state == Found::Ours))
}

/// Advisory-lock namespace on the admin connection (`hashtextextended(…)` of this prefix
/// and the tenant id), so two replicas never provision one tenant at once.
const LOCK_PREFIX: &str = "drover-provision:";

/// Fails with [`ProvisionError::Foreign`] when the database or the role exists and is not
/// drover's for this tenant; otherwise whether both are absent.
pub(super) async fn refuse_foreign(
    admin: &tokio_postgres::Client,
    db: &DbIdent,
    role: &DbIdent,
    tenant: Uuid,
) -> Result<bool, ProvisionError> {
    let db_state = database_state(admin, db, role, tenant).await?;
    if db_state == Found::Foreign {
        return Err(ProvisionError::Foreign {
            what: "database",
            name: db.as_str().to_string(),
        });
    }
    let role_state = role_state(admin, role, tenant).await?;
    if role_state == Found::Foreign {
        return Err(ProvisionError::Foreign {
            what: "role",
            name: role.as_str().to_string(),
        });
    }
    Ok(db_state == Found::Absent && role_state == Found::Absent)
}

/// One runner per tenant across replicas: a session lock on the admin connection, held
/// until the connection closes.
pub(super) async fn lock(
    admin: &tokio_postgres::Client,
    tenant: Uuid,
) -> Result<(), ProvisionError> {
    const SQL: &str = "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS got";
    let key = format!("{LOCK_PREFIX}{tenant}");
    let got: bool = admin
        .query_one(SQL, &[&key])
        .await
        .and_then(|row| row.try_get("got"))
        .map_err(|e| ProvisionError::from_pg("lock", &e))?;
    if got {
        Ok(())
    } else {
        Err(ProvisionError::Busy)
    }
}
