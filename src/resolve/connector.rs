//! Turning a tenant row into a connection for drover's own work on the tenant database:
//! wave targets, canary analysis queries and provisioning's first migration.
//!
//! [`TenantDb`] is the one shape of "where a tenant database is and which secret logs into
//! it", read from any row that carries the registry's `db_*` columns (by name).
//! [`Connector`] adds the password (through the resolver's secret cache, so a wave over
//! 1,000 tenants sharing one secret reads it once) and the default CA bundle
//! (`DROVER_CA_FILE`), and hands out a [`TenantConnection`] for `crate::migrate`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Row;

use super::Resolver;
use crate::migrate::TenantConnection;
use crate::registry::{string_map, Tenant};
use crate::secrets::SecretError;

/// Where a tenant database is and which secret reference logs into it. Holds a
/// reference, never the password, so it may be logged and cloned freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDb {
    pub host: String,
    pub port: i32,
    pub dbname: String,
    pub user: String,
    /// A reference (`file:…`, `vault:…`, `env:…`), never the password.
    pub secret_ref: String,
    /// libpq options (`sslmode`, `sslrootcert`, …).
    pub options: BTreeMap<String, String>,
}

impl TenantDb {
    /// Reads the columns `db_host`, `db_port`, `db_name`, `db_user`, `db_secret_ref` and
    /// `db_options` of `row`, by name: any of the registry's tenant queries that selects
    /// them can build one.
    pub fn from_row(row: &Row) -> Result<TenantDb, tokio_postgres::Error> {
        Ok(TenantDb {
            host: row.try_get("db_host")?,
            port: row.try_get("db_port")?,
            dbname: row.try_get("db_name")?,
            user: row.try_get("db_user")?,
            secret_ref: row.try_get("db_secret_ref")?,
            options: string_map(row.try_get("db_options")?),
        })
    }
}

impl From<&Tenant> for TenantDb {
    fn from(t: &Tenant) -> TenantDb {
        TenantDb {
            host: t.db_host.clone(),
            port: t.db_port,
            dbname: t.db_name.clone(),
            user: t.db_user.clone(),
            secret_ref: t.db_secret_ref.clone(),
            options: t.db_options.clone(),
        }
    }
}

/// Connections to tenant databases, for every part of drover that works on one. Cheap to
/// clone (one reference count).
#[derive(Clone)]
pub struct Connector {
    resolver: Arc<Resolver>,
    default_ca: Option<PathBuf>,
}

impl Connector {
    /// A connector reading passwords through `resolver`'s secret cache; `default_ca` is
    /// the CA bundle for `verify-*` when a tenant names no `sslrootcert`.
    pub fn new(resolver: Arc<Resolver>, default_ca: Option<PathBuf>) -> Connector {
        Connector {
            resolver,
            default_ca,
        }
    }

    /// How to reach `db`: its parameters and the password behind its secret reference.
    pub async fn connection(&self, db: &TenantDb) -> Result<TenantConnection, SecretError> {
        let password = self.resolver.password(&db.secret_ref).await?;
        Ok(self.with_password(db, SecretString::from(password.expose_secret().to_string())))
    }

    /// How to reach `db` with a password already in hand (provisioning has just read or
    /// written it, and the secret cache may still hold the previous one).
    pub fn with_password(&self, db: &TenantDb, password: SecretString) -> TenantConnection {
        TenantConnection {
            host: db.host.clone(),
            port: u16::try_from(db.port).unwrap_or(5432),
            dbname: db.dbname.clone(),
            user: db.user.clone(),
            password,
            options: db.options.clone(),
            default_ca: self.default_ca.clone(),
        }
    }
}
