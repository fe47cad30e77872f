//! The tenant as stored and read back: the row, its provisioning error and limits, the
//! events recorded about it, and the page a listing returns.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fields::invalid;
use super::TenantStatus;
use crate::registry::RegistryError;

/// A tenant as stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: String,
    pub display_name: String,
    pub db_name: String,
    pub db_host: String,
    #[schema(minimum = 1, maximum = 65535)]
    pub db_port: i32,
    pub db_user: String,
    /// A reference (`file:…`), never the password.
    pub db_secret_ref: String,
    /// libpq options added to the resolved DSN (e.g. `sslmode`).
    pub db_options: BTreeMap<String, String>,
    #[schema(required)]
    pub schema_version: Option<i32>,
    #[schema(required)]
    pub app_version: Option<String>,
    pub status: TenantStatus,
    pub labels: BTreeMap<String, String>,
    pub canary: bool,
    #[schema(required)]
    pub billing_plan: Option<String>,
    #[schema(required)]
    pub contact_email: Option<String>,
    #[schema(required)]
    pub suspended_reason: Option<String>,
    pub maintenance_flag: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(required)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The provisioning server (`[[provision_servers]]` name) the tenant was placed on.
    #[serde(default)]
    #[schema(required)]
    pub server: Option<String>,
    /// When its provisioning job finished (NULL for tenants registered without one).
    #[serde(default)]
    #[schema(required)]
    pub provisioned_at: Option<DateTime<Utc>>,
    /// The last provisioning failure; cleared when provisioning succeeds.
    #[serde(default)]
    #[schema(required)]
    pub provisioning_error: Option<ProvisioningError>,
    /// The tenant's portal: set explicitly, else `portal_url_template` filled with the
    /// slug; null without either.
    #[serde(default)]
    #[schema(required)]
    pub portal_url: Option<String>,
    /// Whether `portal_url` was set explicitly; false: it follows the template (and the
    /// slug, through a rename).
    #[serde(default)]
    pub portal_url_explicit: bool,
    /// When the tenant's trial ends (it is then suspended, reason `trial_expired`); null:
    /// not on a trial.
    #[serde(default)]
    #[schema(required)]
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// `tenant_limits`, when any were set.
    #[serde(default)]
    #[schema(required)]
    pub limits: Option<TenantLimits>,
}

/// The last failed provisioning attempt, as stored on the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProvisioningError {
    /// The step that failed (`connect`, `role`, `database`, `migrate`, ...).
    pub step: String,
    /// What went wrong (never a password or a connection string).
    pub message: String,
    /// Whether running the job again unchanged may succeed (drover then retries by itself).
    pub retryable: bool,
    /// When the attempt failed.
    pub at: DateTime<Utc>,
}

/// A tenant's limits (`control_plane.tenant_limits`); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub max_db_size_mb: Option<i32>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub max_users: Option<i32>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub max_attachments_gb: Option<i32>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub notes: Option<String>,
    /// Set by the registry; ignored in requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Longest `notes` on limits, in bytes.
pub const LIMIT_NOTES_MAX_BYTES: usize = 1024;

impl TenantLimits {
    /// Checks every field: sizes and counts positive (attachments may be 0: none allowed),
    /// notes at most 1 KB of printable text.
    pub fn problems(&self) -> Vec<RegistryError> {
        let mut out = Vec::new();
        let positive = |field: &'static str, v: Option<i32>, min: i32, out: &mut Vec<_>| {
            if let Some(n) = v {
                if n < min {
                    out.push(invalid(field, format!("must be at least {min}")));
                }
            }
        };
        positive("max_db_size_mb", self.max_db_size_mb, 1, &mut out);
        positive("max_users", self.max_users, 1, &mut out);
        positive("max_attachments_gb", self.max_attachments_gb, 0, &mut out);
        if let Some(n) = &self.notes {
            if n.len() > LIMIT_NOTES_MAX_BYTES {
                out.push(invalid(
                    "notes",
                    format!("must be at most {LIMIT_NOTES_MAX_BYTES} bytes"),
                ));
            } else if n.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                out.push(invalid(
                    "notes",
                    "must be printable text (newlines and tabs are fine)",
                ));
            }
        }
        out
    }

    /// The first problem, if any.
    pub fn validate(&self) -> Result<(), RegistryError> {
        match self.problems().into_iter().next() {
            Some(p) => Err(p),
            None => Ok(()),
        }
    }

    /// Whether no limit is set (the row is then removed).
    pub fn is_empty(&self) -> bool {
        self.max_db_size_mb.is_none()
            && self.max_users.is_none()
            && self.max_attachments_gb.is_none()
            && self.notes.is_none()
    }

    /// The same limits without the timestamp (what a comparison or a declaration holds).
    pub fn values(&self) -> TenantLimits {
        TenantLimits {
            updated_at: None,
            ..self.clone()
        }
    }
}

/// One page of results and the cursor for the next, if any.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A tenant event.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    pub event_type: String,
    pub actor: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}
