//! Registry types: validated newtypes for everything that reaches SQL, the tenant row,
//! request bodies and the status state machine.
//!
//! Split by responsibility: `fields` (validated values and their rules), `status` (the
//! state machine, drawn there), `tenant` (the stored tenant, limits, events, pages) and
//! `request` (request bodies and the listing filter). Everything is re-exported here.

mod fields;
mod request;
mod status;
mod tenant;

pub use fields::{
    validate_db_options, validate_labels, validate_portal_url, validate_reason, Actor, DbIdent,
    Slug, RESERVED_SLUGS,
};
pub(super) use fields::{
    OptionValue, DB_OPTIONS, LABEL_KEY_PUNCTUATION, MAX_LABELS, MAX_LABEL_KEY, MAX_LABEL_VALUE,
};
pub use request::{ListFilter, NewTenant, TenantPatch, DEFAULT_PORT};
pub use status::{TenantStatus, Transition};
pub(super) use status::{NEW_TENANT_STATUSES, PATCH_STATUSES};
pub use tenant::{Event, Page, ProvisioningError, Tenant, TenantLimits};
