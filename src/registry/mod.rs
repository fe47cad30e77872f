//! The tenant registry: it owns `control_plane.tenants` and `tenant_limits`, and writes
//! `tenant_events`. Every SQL text naming the tenant table lives under `src/registry/`,
//! split by responsibility:
//!
//! - here: the column lists and the one definition of a live tenant (`live_tenant!`), as
//!   macros the statements below share, and the [`Registry`] handle;
//! - `row`: a tenant row read by name, the insert and update every write goes through,
//!   and [`record_event`]; `tenant_db`: [`TenantDb`], the `db_*` columns as the one value
//!   everything connecting to a tenant database reads;
//! - `read`: get, list, a tenant's events, the fleet report (`fleet`) and health
//!   (`health`); `write`: create, PATCH, suspend, resume, delete;
//! - `put`: the declarative `PUT`; `lifecycle`: provisioning's steps; `limits`: the
//!   per-tenant limits row; `naming`: reserved slugs and the lifecycle settings;
//!   [`trials`]: the leader's sweep of trial ends and expired aliases; `rename`: a new
//!   slug, the old one kept as an alias (`tenant_aliases`, owned here too);
//! - [`queries`]: the statements and fragments other modules run inside their own
//!   transactions (the wave claim and outcome, wave selection, the lint gate, analysis
//!   canaries, resolution, the events feed's slug filter) and [`fleet_gauges`] for
//!   `/metrics`. `tenant_events` is read by the events feed (`crate::events`), which owns
//!   the merged feed over it and `wave_events`.
//!
//! Each write runs in one control-DB transaction that also inserts the tenant event
//! describing it, so a change without its event (or an event without its change) cannot
//! be committed. Rows are locked with `SELECT … FOR UPDATE` before a status change, so two
//! concurrent operators serialize instead of both "winning". Validation happens in Rust
//! first (clear, field-named errors); the schema's constraints repeat the rules.
//!
//! One loop: [`trials::run`], the leader's `lifecycle-sweep` task (the application spawns
//! it); everything else is driven by callers (HTTP handlers, the CLI's `check`).

mod error;
mod health;
mod model;
mod naming;
mod schema;
mod tenant_db;

pub use error::RegistryError;
pub use fleet::{
    gauges as fleet_gauges, FleetGauges, FleetReport, Issue, ProvisioningFailure, VersionCount,
};
pub use health::{Finding, HealthReport};
pub use model::{
    validate_db_options, validate_labels, Actor, DbIdent, Event, ListFilter, NewTenant, Page,
    ProvisioningError, Slug, Tenant, TenantLimits, TenantPatch, TenantStatus, Transition,
    DEFAULT_PORT, RESERVED_SLUGS,
};
pub use naming::{parse_reserved_slugs, LifecycleSettings, PortalTemplate, DEFAULT_RESERVED_SLUGS};
pub use put::{declared_transition, Declared, Refused};
pub use tenant_db::TenantDb;

use deadpool_postgres::Pool;

/// All columns of `control_plane.tenants`, read by name in [`row`]'s `tenant_from_row`.
macro_rules! tenant_cols {
    () => {
        "id, slug, display_name, db_name, db_host, db_port, db_user, db_secret_ref, db_options, \
         schema_version, app_version, status, labels, canary, billing_plan, contact_email, \
         suspended_reason, maintenance_flag, created_at, updated_at, deleted_at, server, \
         provisioned_at, provisioning_error, portal_url, trial_ends_at, \
         (SELECT to_jsonb(l) - 'tenant_id' FROM control_plane.tenant_limits l \
          WHERE l.tenant_id = tenants.id) AS limits"
    };
}

/// What a live tenant is, as a condition on `control_plane.tenants`: not soft-deleted, and
/// active or suspended (a provisioning tenant has no schema yet; deleting and deleted ones
/// are leaving). The fleet report, the fleet metrics and wave selection count these.
macro_rules! live_tenant {
    () => {
        "deleted_at IS NULL AND status IN ('active', 'suspended')"
    };
}

/// The tenant table under `alias`, as a `FROM` item, for a statement that joins it to a
/// table of the caller's (the wave claim's `UPDATE … FROM`).
macro_rules! tenant_table {
    ($alias:literal) => {
        concat!("control_plane.tenants ", $alias)
    };
}
pub(crate) use tenant_table;

/// The tenant's state as a worker needs it, from the tenant table under `alias`: `status`
/// (NULL once deleted), the `db_*` columns, `schema_version` and `has_issue`. Read by
/// `waves::claim::TenantNow::from_row`.
macro_rules! tenant_now_cols {
    ($alias:literal) => {
        concat!(
            "CASE WHEN ",
            $alias,
            ".deleted_at IS NULL THEN ",
            $alias,
            ".status END AS status, ",
            $alias,
            ".db_host, ",
            $alias,
            ".db_port, ",
            $alias,
            ".db_name, ",
            $alias,
            ".db_user, ",
            $alias,
            ".db_secret_ref, ",
            $alias,
            ".db_options, ",
            $alias,
            ".schema_version, ",
            $alias,
            ".migration_issue IS NOT NULL AS has_issue"
        )
    };
}
pub(crate) use tenant_now_cols;

// Declared after the macros so their statements can use them.
mod fleet;
mod lifecycle;
pub use lifecycle::{DueRetry, Reached, RetrySchedule};
mod limits;
mod put;
pub mod queries;
mod read;
mod rename;
mod row;
pub mod trials;
mod write;

pub use row::{record_event, record_event_id, record_events, string_map};
// For the submodules: every write goes through these.
use row::{insert_row, store_row, tenant_from_row};
use write::change;

/// Handle on the registry; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Registry {
    pool: Pool,
    /// Which secret references a tenant may be given (checked on every write).
    scope: std::sync::Arc<crate::secrets::RefScope>,
    /// Reserved names, portal URLs, rename aliases, trials.
    lifecycle: std::sync::Arc<LifecycleSettings>,
}

impl Registry {
    /// A registry over the control-plane pool.
    pub fn new(pool: Pool) -> Self {
        Self::with_scope(pool, crate::secrets::RefScope::default())
    }

    /// A registry that refuses secret references outside `scope`.
    pub fn with_scope(pool: Pool, scope: crate::secrets::RefScope) -> Self {
        Registry {
            pool,
            scope: std::sync::Arc::new(scope),
            lifecycle: std::sync::Arc::new(LifecycleSettings::default()),
        }
    }

    /// The same registry applying `settings` (reserved slugs, portal URLs, renames, trials).
    pub fn with_lifecycle(mut self, settings: LifecycleSettings) -> Self {
        self.lifecycle = std::sync::Arc::new(settings);
        self
    }

    /// The lifecycle rules this registry applies.
    pub fn lifecycle(&self) -> &LifecycleSettings {
        &self.lifecycle
    }

    /// The secret reference rules this registry enforces.
    pub fn scope(&self) -> &crate::secrets::RefScope {
        &self.scope
    }
}
