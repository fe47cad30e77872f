//! Request bodies and query parameters: `POST` and `PATCH` bodies with their validation,
//! and the listing filter.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::fields::{
    invalid, validate_db_options, validate_email, validate_host, validate_labels, validate_port,
    validate_portal_url, validate_secret_ref, validate_text, DbIdent, Slug,
};
use super::status::{NEW_TENANT_STATUSES, PATCH_STATUSES};
use super::TenantStatus;
use crate::registry::RegistryError;

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
    #[schema(schema_with = crate::registry::schema::db_options)]
    pub db_options: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(schema_with = crate::registry::schema::labels)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub canary: bool,
    /// Initial status: `provisioning` (default) or `active`.
    #[serde(default)]
    #[schema(schema_with = crate::registry::schema::new_tenant_status)]
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
    /// The tenant's portal; absent: from `portal_url_template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048, pattern = "^https?://\\S+$")]
    pub portal_url: Option<String>,
    /// A trial tenant: suspended (reason `trial_expired`) once this has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The port of a tenant registered without one.
pub const DEFAULT_PORT: i32 = 5432;

impl NewTenant {
    /// The port to store.
    pub fn port(&self) -> i32 {
        self.db_port.unwrap_or(DEFAULT_PORT)
    }

    /// An empty display name becomes the slug (README.md#provisioning).
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
        if let Some(v) = &self.portal_url {
            check(validate_portal_url("portal_url", v));
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
    #[schema(schema_with = crate::registry::schema::nullable_secret_ref)]
    pub db_secret_ref: Option<String>,
    /// Replaces the whole map; `null` leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::registry::schema::nullable_db_options)]
    pub db_options: Option<BTreeMap<String, String>>,
    /// Replaces the whole map; `null` leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::registry::schema::nullable_labels)]
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
    /// `null`: back to `portal_url_template`.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(max_length = 2048, pattern = "^https?://\\S+$")]
    pub portal_url: Option<Option<String>>,
    /// `null` converts a trial (and lifts a `trial_expired` suspension, as does a later
    /// end).
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub trial_ends_at: Option<Option<chrono::DateTime<chrono::Utc>>>,
    /// Only `active`, from `provisioning`; suspend, resume and DELETE change the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::registry::schema::patch_status)]
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
        if let Some(Some(v)) = &self.portal_url {
            validate_portal_url("portal_url", v)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let p: TenantPatch = serde_json::from_str(r#"{"billing_plan": null}"#).unwrap();
        assert_eq!(p.billing_plan, Some(None));
        assert_eq!(p.contact_email, None);
    }
}
