//! Where a tenant database is and which secret logs into it: the `db_*` columns of
//! `control_plane.tenants` as one value, for everything that connects to a tenant (the
//! resolver, the wave claim, provisioning's first migration). It lives with the registry
//! because the registry owns those columns; `crate::resolve::Connector` turns it into a
//! connection.

use std::collections::BTreeMap;

use tokio_postgres::Row;

use super::{string_map, Tenant};

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
