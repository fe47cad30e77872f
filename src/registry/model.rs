//! Registry types: validated newtypes for everything that reaches SQL, the tenant row,
//! request bodies and the status state machine.
//!
//! ```text
//!                 activate                 suspend
//!  provisioning ───────────► active ◄──────────────► suspended
//!       │                      │        resume            │
//!       │ delete               │ delete                   │ delete
//!       └──────────────────────┴──────────► deleting ◄────┘
//!                                              │ (same tx, or after the DB is dropped)
//!                                              ▼
//!                                           deleted   (terminal; slug and db_name reusable)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::RegistryError;

/// Slugs that would collide with routes, system databases or well-known names.
/// Kept in step with the `tenants_slug_not_reserved` constraint in the control schema.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "default",
    "drover",
    "healthz",
    "internal",
    "metrics",
    "new",
    "null",
    "postgres",
    "public",
    "readyz",
    "root",
    "system",
    "template0",
    "template1",
    "v1",
    "www",
];

fn invalid(field: &'static str, message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid {
        field,
        message: message.into(),
    }
}

/// A tenant slug: `^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Slug(String);

impl Slug {
    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a slug typed by a person for lookup: case is folded, because slugs are
    /// unique regardless of case.
    pub fn for_lookup(s: &str) -> Result<Slug, RegistryError> {
        s.to_ascii_lowercase().parse()
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Slug {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let ok_inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
        let ok_edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let valid = !b.is_empty()
            && b.len() <= 63
            && b.iter().all(ok_inner)
            && ok_edge(&b[0])
            && ok_edge(&b[b.len() - 1]);
        if !valid {
            return Err(invalid(
                "slug",
                "must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
            ));
        }
        if RESERVED_SLUGS.contains(&s) {
            return Err(invalid("slug", format!("'{s}' is reserved")));
        }
        Ok(Slug(s.to_string()))
    }
}

/// A PostgreSQL database or role name drover will quote as an identifier:
/// `^[A-Za-z_][A-Za-z0-9_-]*$`, at most 63 bytes (longer names would be truncated by
/// PostgreSQL, so they are refused rather than silently shortened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbIdent(String);

impl DbIdent {
    /// Validates `s` for the named field.
    pub fn parse(field: &'static str, s: &str) -> Result<DbIdent, RegistryError> {
        let b = s.as_bytes();
        let valid = !b.is_empty()
            && b.len() <= 63
            && (b[0].is_ascii_alphabetic() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
        if valid {
            Ok(DbIdent(s.to_string()))
        } else {
            Err(invalid(
                field,
                "must be 1-63 bytes of letters, digits, '_' and '-', starting with a letter or '_'",
            ))
        }
    }

    /// The identifier text (unquoted).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_host(s: &str) -> Result<(), RegistryError> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:/_-[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "db_host",
            "must be a host name, an IP address or a Unix socket directory (e.g. /cloudsql/project:region:instance)",
        ))
    }
}

fn validate_port(p: i32) -> Result<(), RegistryError> {
    if (1..=65535).contains(&p) {
        Ok(())
    } else {
        Err(invalid("db_port", "must be between 1 and 65535"))
    }
}

fn validate_text(field: &'static str, s: &str, max: usize) -> Result<(), RegistryError> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        Err(invalid(
            field,
            format!("must be 1-{max} printable characters"),
        ))
    } else {
        Ok(())
    }
}

fn validate_secret_ref(s: &str) -> Result<(), RegistryError> {
    s.parse::<crate::secrets::SecretRef>()
        .map(|_| ())
        .map_err(|e| invalid("db_secret_ref", e.to_string()))
}

fn validate_email(s: &str) -> Result<(), RegistryError> {
    let ok = s.len() <= 254
        && !s.contains(char::is_whitespace)
        && s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "contact_email",
            "must be an e-mail address like ops@acme.example",
        ))
    }
}

/// The most labels a tenant may carry.
pub(super) const MAX_LABELS: usize = 64;
/// The longest label key, in bytes (all of them ASCII) and the longest value, in characters.
pub(super) const MAX_LABEL_KEY: usize = 63;
pub(super) const MAX_LABEL_VALUE: usize = 255;
/// What a label key may contain besides ASCII letters and digits.
pub(super) const LABEL_KEY_PUNCTUATION: &str = "._/-";

/// Label keys look like Kubernetes label keys; values are short printable strings.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), RegistryError> {
    if labels.len() > MAX_LABELS {
        return Err(invalid("labels", format!("at most {MAX_LABELS} labels")));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_LABEL_KEY
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || LABEL_KEY_PUNCTUATION.contains(c));
        if !key_ok {
            return Err(invalid(
                "labels",
                format!("label key {k:?} must be 1-63 characters of letters, digits, '.', '_', '/', '-'"),
            ));
        }
        if v.chars().count() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
            return Err(invalid(
                "labels",
                format!("label {k:?}: value must be at most 255 printable characters"),
            ));
        }
    }
    Ok(())
}

/// What a libpq option in `db_options` may hold.
#[derive(Debug, Clone, Copy)]
pub(super) enum OptionValue {
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A whole number of seconds (`u32`).
    Seconds,
    /// 1-255 bytes of printable text (a path or a name).
    Text,
}

impl OptionValue {
    fn accepts(self, v: &str) -> bool {
        match self {
            OptionValue::OneOf(words) => words.contains(&v),
            OptionValue::Seconds => v.parse::<u32>().is_ok(),
            OptionValue::Text => {
                !v.is_empty() && v.len() <= 255 && !v.chars().any(char::is_control)
            }
        }
    }
}

/// libpq connection options a tenant may carry into its DSN, and their allowed values.
/// Both the validation and the OpenAPI schema ([`super::schema::db_options`]) read this list.
pub(super) const DB_OPTIONS: &[(&str, OptionValue)] = &[
    (
        "sslmode",
        OptionValue::OneOf(&[
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ]),
    ),
    ("sslrootcert", OptionValue::Text),
    ("sslcert", OptionValue::Text),
    ("sslkey", OptionValue::Text),
    ("connect_timeout", OptionValue::Seconds),
    ("application_name", OptionValue::Text),
    (
        "target_session_attrs",
        OptionValue::OneOf(&[
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ]),
    ),
    (
        "channel_binding",
        OptionValue::OneOf(&["disable", "prefer", "require"]),
    ),
];

/// Checks `db_options` against the allow-list (unknown keys would silently do nothing in
/// some clients and break others).
pub fn validate_db_options(options: &BTreeMap<String, String>) -> Result<(), RegistryError> {
    for (k, v) in options {
        let Some((_, allowed)) = DB_OPTIONS.iter().find(|(key, _)| key == k) else {
            let keys: Vec<&str> = DB_OPTIONS.iter().map(|(key, _)| *key).collect();
            return Err(invalid(
                "db_options",
                format!("unsupported option {k:?}; allowed: {}", keys.join(", ")),
            ));
        };
        if !allowed.accepts(v) {
            return Err(invalid("db_options", format!("invalid value for {k}")));
        }
    }
    Ok(())
}

/// Lifecycle state of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Registered; database not ready yet.
    Provisioning,
    /// Serving.
    Active,
    /// Refused by resolution (423) until resumed.
    Suspended,
    /// Being deleted.
    Deleting,
    /// Gone; kept for history.
    Deleted,
}

impl TenantStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Provisioning => "provisioning",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleting => "deleting",
            TenantStatus::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantStatus {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "provisioning" => TenantStatus::Provisioning,
            "active" => TenantStatus::Active,
            "suspended" => TenantStatus::Suspended,
            "deleting" => TenantStatus::Deleting,
            "deleted" => TenantStatus::Deleted,
            _ => {
                return Err(invalid(
                    "status",
                    "must be one of provisioning, active, suspended, deleting, deleted",
                ))
            }
        })
    }
}

/// The statuses a new tenant may start in (`NewTenant.status`; default provisioning).
pub(super) const NEW_TENANT_STATUSES: &[TenantStatus] =
    &[TenantStatus::Provisioning, TenantStatus::Active];
/// The statuses `PATCH` may set: only provisioning → active; the other changes have
/// endpoints of their own because they carry a reason or side effects.
pub(super) const PATCH_STATUSES: &[TenantStatus] = &[TenantStatus::Active];

/// An operator action that changes status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// provisioning → active (`status_changed`).
    Activate,
    /// active → suspended (`suspended`).
    Suspend,
    /// suspended → active (`resumed`).
    Resume,
    /// provisioning | active | suspended → deleting (`deleting`).
    StartDelete,
    /// deleting → deleted (`deleted`).
    FinishDelete,
}

impl Transition {
    /// The verb shown in errors.
    pub fn verb(self) -> &'static str {
        match self {
            Transition::Activate => "activate",
            Transition::Suspend => "suspend",
            Transition::Resume => "resume",
            Transition::StartDelete | Transition::FinishDelete => "delete",
        }
    }

    /// The event written for this transition.
    pub fn event_type(self) -> &'static str {
        match self {
            Transition::Activate => "status_changed",
            Transition::Suspend => "suspended",
            Transition::Resume => "resumed",
            Transition::StartDelete => "deleting",
            Transition::FinishDelete => "deleted",
        }
    }

    /// The state reached from `from`, or `None` when the transition is not allowed.
    pub fn apply(self, from: TenantStatus) -> Option<TenantStatus> {
        use TenantStatus::*;
        match (self, from) {
            (Transition::Activate, Provisioning) => Some(Active),
            (Transition::Suspend, Active) => Some(Suspended),
            (Transition::Resume, Suspended) => Some(Active),
            (Transition::StartDelete, Provisioning | Active | Suspended) => Some(Deleting),
            (Transition::FinishDelete, Deleting) => Some(Deleted),
            _ => None,
        }
    }
}

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

/// Body of `POST /v1/tenants`. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: String,
    /// Empty: the slug (filled by [`NewTenant::fill_display_name`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub display_name: String,
    /// Empty with `provision: true`: from the `provision_db_name` template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")]
    pub db_name: String,
    /// Empty with `provision: true`: the provisioning server's host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z0-9._:/\\[\\]-]+$"
    )]
    pub db_host: String,
    /// Absent: the provisioning server's port with `provision: true`, else 5432.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 65535)]
    pub db_port: Option<i32>,
    /// Empty with `provision: true`: from the `provision_db_user` template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")]
    pub db_user: String,
    /// Empty with `provision: true`: from the `provision_secret_ref` template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(schema_with = crate::secrets::secret_ref_schema)]
    pub db_secret_ref: String,
    /// With `provision: true`: the `[[provision_servers]]` entry to use instead of placing
    /// the tenant by labels and load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::schema::db_options)]
    pub db_options: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(schema_with = super::schema::labels)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub canary: bool,
    /// Initial status: `provisioning` (default) or `active`.
    #[serde(default)]
    #[schema(schema_with = super::schema::new_tenant_status)]
    pub status: Option<TenantStatus>,
    /// Create the role and database too (needs `DROVER_PROVISION_URL`).
    #[serde(default)]
    pub provision: bool,
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub billing_plan: Option<String>,
    #[serde(default)]
    #[schema(max_length = 254, pattern = "^[^@\\s]+@\\S*\\.\\S*$")]
    pub contact_email: Option<String>,
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub app_version: Option<String>,
    #[serde(default)]
    pub maintenance_flag: bool,
}

/// The port of a tenant registered without one.
pub const DEFAULT_PORT: i32 = 5432;

impl NewTenant {
    /// The port to store.
    pub fn port(&self) -> i32 {
        self.db_port.unwrap_or(DEFAULT_PORT)
    }

    /// An empty display name becomes the slug (SPEC §20).
    pub fn fill_display_name(&mut self) {
        if self.display_name.is_empty() {
            self.display_name = self.slug.to_ascii_lowercase();
        }
    }

    /// Checks every field; the first problem is reported with its field name. Returns the
    /// slug folded to lower case: slugs are case-insensitive and stored in lower case.
    pub fn validate(&self) -> Result<Slug, RegistryError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Slug::for_lookup(&self.slug),
        }
    }

    /// Every field problem, in field order (empty when the body is valid). Tenant
    /// definitions report all of them at once; the API answers with the first.
    pub fn problems(&self) -> Vec<RegistryError> {
        let mut out = Vec::new();
        let mut check = |r: Result<(), RegistryError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        check(Slug::for_lookup(&self.slug).map(drop));
        check(validate_text("display_name", &self.display_name, 200));
        check(DbIdent::parse("db_name", &self.db_name).map(drop));
        check(validate_host(&self.db_host));
        check(validate_port(self.port()));
        check(DbIdent::parse("db_user", &self.db_user).map(drop));
        check(validate_secret_ref(&self.db_secret_ref));
        check(validate_db_options(&self.db_options));
        check(validate_labels(&self.labels));
        if let Some(p) = &self.billing_plan {
            check(validate_text("billing_plan", p, 100));
        }
        if let Some(e) = &self.contact_email {
            check(validate_email(e));
        }
        if let Some(v) = &self.app_version {
            check(validate_text("app_version", v, 100));
        }
        if self
            .status
            .is_some_and(|s| !NEW_TENANT_STATUSES.contains(&s))
        {
            check(Err(invalid(
                "status",
                "a new tenant starts as provisioning or active",
            )));
        }
        out
    }
}

/// A suspension reason: 1-500 printable characters once trimmed (resolution's 423 shows it).
pub fn validate_reason(field: &'static str, reason: &str) -> Result<(), RegistryError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        Err(invalid(field, "must be 1-500 printable characters"))
    } else {
        Ok(())
    }
}

/// `Some(None)` for an explicit JSON null, `None` when the field is absent.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PATCH /v1/tenants/{slug}`: absent fields stay as they are; `null` clears an
/// optional field. Status changes other than provisioning → active have endpoints of
/// their own (suspend, resume, DELETE) because they carry a reason or side effects.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")]
    pub db_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z0-9._:/\\[\\]-]+$"
    )]
    pub db_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 65535)]
    pub db_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")]
    pub db_user: Option<String>,
    /// `null` leaves the reference as it is, like an absent field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::nullable_secret_ref)]
    pub db_secret_ref: Option<String>,
    /// Replaces the whole map; `null` leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::nullable_db_options)]
    pub db_options: Option<BTreeMap<String, String>>,
    /// Replaces the whole map; `null` leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::nullable_labels)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<bool>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub billing_plan: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(max_length = 254, pattern = "^[^@\\s]+@\\S*\\.\\S*$")]
    pub contact_email: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub app_version: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_flag: Option<bool>,
    /// Only `active`, from `provisioning`; suspend, resume and DELETE change the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::patch_status)]
    pub status: Option<TenantStatus>,
}

impl TenantPatch {
    /// Validates the fields present.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if let Some(v) = &self.display_name {
            validate_text("display_name", v, 200)?;
        }
        if let Some(v) = &self.db_name {
            DbIdent::parse("db_name", v)?;
        }
        if let Some(v) = &self.db_host {
            validate_host(v)?;
        }
        if let Some(v) = self.db_port {
            validate_port(v)?;
        }
        if let Some(v) = &self.db_user {
            DbIdent::parse("db_user", v)?;
        }
        if let Some(v) = &self.db_secret_ref {
            validate_secret_ref(v)?;
        }
        if let Some(v) = &self.db_options {
            validate_db_options(v)?;
        }
        if let Some(v) = &self.labels {
            validate_labels(v)?;
        }
        if let Some(Some(v)) = &self.billing_plan {
            validate_text("billing_plan", v, 100)?;
        }
        if let Some(Some(v)) = &self.contact_email {
            validate_email(v)?;
        }
        if let Some(Some(v)) = &self.app_version {
            validate_text("app_version", v, 100)?;
        }
        match self.status {
            Some(s) if !PATCH_STATUSES.contains(&s) => Err(invalid(
                "status",
                "PATCH can only set status active (from provisioning); use /suspend, /resume or DELETE",
            )),
            _ => Ok(()),
        }
    }
}

/// Filters for listing tenants. All are optional and combine with AND.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Only tenants in this status.
    pub status: Option<TenantStatus>,
    /// Only tenants carrying all these labels: `key=value`, comma-separated
    /// (`plan=pro,region=eu`; repeatable in the CLI).
    #[param(pattern = "^(([^,]*=[^,]*)?,)*([^,]*=[^,]*)?$", example = "plan=pro")]
    pub label: Option<String>,
    /// Case-insensitive substring of the slug or display_name.
    pub q: Option<String>,
    /// Case-insensitive exact `contact_email`.
    pub email: Option<String>,
    /// Include soft-deleted tenants.
    #[serde(default)]
    #[param(default = false)]
    pub include_deleted: bool,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page (`<slug>:<id>`).
    #[param(pattern = "^[^:]*:.+$")]
    pub cursor: Option<String>,
    /// Only tenants on this schema version (the web console's filter; not an API
    /// parameter).
    #[serde(skip)]
    pub schema_version: Option<i32>,
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

/// Who made a change: recorded on every event. The name is the authenticated identity
/// (`root`, `token:<name>`, `drover`, `schedule:<name>`); what a client says about itself
/// (`X-Drover-Actor`) is only ever `on_behalf_of`, added to the event's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: String,
    on_behalf_of: Option<String>,
}

impl Actor {
    /// Accepts 1-100 printable characters.
    pub fn new(s: &str) -> Result<Actor, RegistryError> {
        validate_text("actor", s, 100)?;
        Ok(Actor {
            name: s.to_string(),
            on_behalf_of: None,
        })
    }

    /// The same actor, acting for someone it names (1-100 printable characters).
    pub fn on_behalf_of(mut self, who: &str) -> Result<Actor, RegistryError> {
        validate_text("X-Drover-Actor", who, 100)?;
        self.on_behalf_of = Some(who.to_string());
        Ok(self)
    }

    /// The actor text.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whom the client said it acts for, if anyone.
    pub fn behalf(&self) -> Option<&str> {
        self.on_behalf_of.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules_follow_the_spec() {
        for ok in ["a", "acme", "acme-corp", "a1", "0abc", &"a".repeat(63)] {
            assert!(ok.parse::<Slug>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Acme",
            "a_b",
            "a.b",
            &"a".repeat(64),
            "admin",
            "café",
        ] {
            assert!(bad.parse::<Slug>().is_err(), "{bad}");
        }
    }

    #[test]
    fn db_identifiers_over_63_bytes_are_refused_not_truncated() {
        assert!(DbIdent::parse("db_name", &"t".repeat(63)).is_ok());
        assert!(DbIdent::parse("db_name", &"t".repeat(64)).is_err());
        assert!(DbIdent::parse("db_name", "t\"; DROP DATABASE x; --").is_err());
    }

    #[test]
    fn transitions_allow_only_the_drawn_arrows() {
        use TenantStatus::*;
        assert_eq!(Transition::Resume.apply(Active), None);
        assert_eq!(Transition::Suspend.apply(Active), Some(Suspended));
        assert_eq!(Transition::Suspend.apply(Deleted), None);
        assert_eq!(Transition::StartDelete.apply(Deleted), None);
        assert_eq!(Transition::Activate.apply(Provisioning), Some(Active));
        assert_eq!(Transition::Activate.apply(Suspended), None);
    }

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let p: TenantPatch = serde_json::from_str(r#"{"billing_plan": null}"#).unwrap();
        assert_eq!(p.billing_plan, Some(None));
        assert_eq!(p.contact_email, None);
    }
}
