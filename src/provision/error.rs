//! Why provisioning or deprovisioning a tenant failed: the step, the cause, and whether
//! running it again can help. Messages never contain a password or a connection string.

use crate::migrate::MigrateError;
use crate::registry::RegistryError;
use crate::secrets::SecretError;

/// A failed (de)provisioning step. The tenant keeps its status (`provisioning` or
/// `deleting`) and an `error` event names [`ProvisionError::step`].
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Neither `DROVER_PROVISION_URL` nor `[[provision_servers]]` is set.
    #[error("provisioning is not configured: set DROVER_PROVISION_URL (or [[provision_servers]] in the config file) to a role with CREATEDB and CREATEROLE")]
    NotConfigured,
    /// No provisioning server fits the tenant's labels and has room.
    #[error("no provisioning server takes a tenant with labels {{{labels}}}: servers (name [labels] tenants/max): {servers}")]
    NoServer {
        /// The tenant's labels, `k=v,…`.
        labels: String,
        /// Every server with its labels, load and capacity.
        servers: String,
    },
    /// The tenant names (or recorded) a server that is not configured.
    #[error("no provisioning server named {name:?} is configured (configured: {configured})")]
    UnknownServer {
        /// The name asked for.
        name: String,
        /// The configured names.
        configured: String,
    },
    /// The configuration cannot work (bad URL, no randomness source).
    #[error("provisioning: {0}")]
    Config(String),
    /// A request field cannot be provisioned.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as named in the API.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Another runner (this or another replica) is provisioning the tenant right now.
    #[error("the tenant is being provisioned or deprovisioned by another runner right now")]
    Busy,
    /// The admin connection could not be opened.
    #[error("cannot connect to provisioning server {server:?}: {message}")]
    Admin {
        /// The server's name.
        server: String,
        /// Why (never the URL).
        message: String,
    },
    /// A statement on the admin connection failed.
    #[error("{step}: {message}")]
    Sql {
        /// The step (`role`, `database`, `drop_database`, …).
        step: &'static str,
        /// SQLSTATE, message, detail and hint.
        message: String,
        /// Whether the SQLSTATE is a transient one.
        retryable: bool,
    },
    /// A role or database by that name exists and was not created by drover for this tenant.
    #[error("{what} {name:?} already exists and was not created by drover for this tenant; choose another name or remove it yourself")]
    Foreign {
        /// `role` or `database`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// `drop_database=true` found neither the database nor the role on the admin server.
    #[error("neither database {database:?} nor role {role:?} exists on provisioning server {server:?}; nothing to drop there (the tenant may live on another server): delete it without drop_database")]
    NothingToDrop {
        /// The provisioning server looked at.
        server: String,
        /// The database name.
        database: String,
        /// The role name.
        role: String,
    },
    /// The password could not be read, written or removed.
    #[error("secret: {0}")]
    Secret(SecretError),
    /// The tenant migration files could not be loaded.
    #[error("migrate: {0}")]
    Migrations(String),
    /// Migrating the new database failed.
    #[error("migrate: {0}")]
    Migrate(MigrateError),
    /// The tenant could not be found or changed in the registry.
    #[error(transparent)]
    Lookup(RegistryError),
    /// Recording the outcome in the control database failed.
    #[error("activate: {0}")]
    Registry(String),
    /// The external provisioner reported that it failed.
    #[error("external provisioner on server {server:?} failed: {message}")]
    Reported {
        /// The server's name.
        server: String,
        /// Its words.
        message: String,
        /// Whether it said trying again may help.
        retryable: bool,
    },
    /// The external provisioner did not call back before the request expired.
    #[error("external provisioner on server {server:?} did not call back within {timeout}")]
    NoCallback {
        /// The server's name.
        server: String,
        /// Its `timeout`, as configured.
        timeout: String,
    },
    /// A callback whose token is unknown, used, expired, superseded or another tenant's.
    #[error("the callback token is not valid for this tenant (unknown, already used, expired or replaced by a newer request)")]
    CallbackToken,
    /// The daemon shut down before the job finished.
    #[error("the daemon shut down before provisioning finished")]
    Cancelled,
}

impl ProvisionError {
    /// From a PostgreSQL error in `step`; `describe` reads past tokio-postgres' "db error".
    pub fn from_pg(step: &'static str, e: &tokio_postgres::Error) -> Self {
        ProvisionError::Sql {
            step,
            message: crate::db::describe(e),
            retryable: crate::db::is_retryable_pg(e),
        }
    }

    /// A registry validation error as a field error.
    pub fn invalid(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid { field, message } => ProvisionError::Invalid { field, message },
            other => ProvisionError::Lookup(other),
        }
    }

    /// The step that failed, as written in the `error` event.
    pub fn step(&self) -> &'static str {
        match self {
            ProvisionError::NotConfigured | ProvisionError::Config(_) => "config",
            ProvisionError::NoServer { .. } | ProvisionError::UnknownServer { .. } => "place",
            ProvisionError::Invalid { .. } | ProvisionError::Lookup(_) => "validate",
            ProvisionError::Busy => "lock",
            ProvisionError::Admin { .. } => "connect",
            ProvisionError::Sql { step, .. } => step,
            ProvisionError::Foreign { what: "role", .. } => "role",
            ProvisionError::Foreign { .. } | ProvisionError::NothingToDrop { .. } => "database",
            ProvisionError::Secret(_) => "secret",
            ProvisionError::Migrations(_) | ProvisionError::Migrate(_) => "migrate",
            ProvisionError::Registry(_) => "activate",
            ProvisionError::Reported { .. } | ProvisionError::NoCallback { .. } => "external",
            ProvisionError::CallbackToken => "callback",
            ProvisionError::Cancelled => "cancelled",
        }
    }

    /// Whether running the job again later, unchanged, may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProvisionError::Busy | ProvisionError::Admin { .. } | ProvisionError::Cancelled => true,
            ProvisionError::Registry(_) | ProvisionError::NoCallback { .. } => true,
            ProvisionError::Reported { retryable, .. } => *retryable,
            ProvisionError::Sql { retryable, .. } => *retryable,
            ProvisionError::Secret(e) => e.is_retryable(),
            ProvisionError::Migrate(e) => e.is_retryable(),
            ProvisionError::Lookup(e) => e.is_retryable(),
            ProvisionError::NotConfigured
            | ProvisionError::Config(_)
            | ProvisionError::Invalid { .. }
            | ProvisionError::Foreign { .. }
            | ProvisionError::NothingToDrop { .. }
            | ProvisionError::NoServer { .. }
            | ProvisionError::UnknownServer { .. }
            | ProvisionError::CallbackToken
            | ProvisionError::Migrations(_) => false,
        }
    }
}

impl From<RegistryError> for ProvisionError {
    fn from(e: RegistryError) -> Self {
        ProvisionError::invalid(e)
    }
}
