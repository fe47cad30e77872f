//! The tenant definition document (`apiVersion: drover.dev/v1`, `kind: Tenant`), its
//! mapping to and from the registry's types, and its validation with every problem named
//! by its path in the document.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::registry::{
    validate_db_options, validate_labels, Declared, NewTenant, RegistryError, Tenant, TenantLimits,
    TenantStatus,
};

/// The only `apiVersion` this version understands.
pub const API_VERSION: &str = "drover.dev/v1";
/// The only `kind`.
pub const KIND: &str = "Tenant";

/// The schema of `apiVersion`: [`API_VERSION`] (a test keeps them equal).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum ApiVersion {
    #[schema(rename = "drover.dev/v1")]
    V1,
}

/// The schema of `kind`: [`KIND`].
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum Kind {
    Tenant,
}

/// One tenant, as a person declares it. Unknown fields are refused at every level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = TenantDefinition)]
pub struct Definition {
    /// Must be [`API_VERSION`].
    #[schema(value_type = ApiVersion)]
    pub api_version: String,
    /// Must be [`KIND`].
    #[schema(value_type = Kind)]
    pub kind: String,
    /// Name, display name, labels.
    pub metadata: Metadata,
    /// Everything else.
    pub spec: Spec,
    /// What drover observed (written by `drover export`, ignored when applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Observed>,
}

/// The top-level `status` of an exported definition: the tenant's server, its
/// provisioning outcome and its portal URL. Read-only: apply and `PUT` ignore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ObservedStatus)]
pub struct Observed {
    /// The provisioning server the tenant was placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// When provisioning finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last provisioning failure (cleared on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_error: Option<crate::registry::ProvisioningError>,
    /// The tenant's portal URL, explicit or from the daemon's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_url: Option<String>,
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = DefinitionMetadata)]
pub struct Metadata {
    /// The tenant's slug, in lower case.
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Shown to people.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub display_name: String,
    /// Free key/values used to select tenants; scalar values are read as text.
    #[serde(
        default,
        deserialize_with = "text_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
}

/// `spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = DefinitionSpec)]
pub struct Spec {
    /// Where the tenant's database is.
    pub database: Database,
    /// Migrated first by waves.
    #[serde(default)]
    pub canary: bool,
    /// `provisioning`, `active` (default) or `suspended`.
    #[serde(default = "active")]
    pub status: TenantStatus,
    /// Why the tenant is suspended: required with `status: suspended`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub suspended_reason: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub billing_plan: Option<String>,
    /// An e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 254, pattern = "^[^@\\s]+@\\S*\\.\\S*$")]
    pub contact_email: Option<String>,
    /// The application version the tenant runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub app_version: Option<String>,
    /// Free flag for the application.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance_flag: bool,
    /// The tenant's portal; absent: from the daemon's `portal_url_template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048, pattern = "^https?://\\S+$")]
    pub portal_url: Option<String>,
    /// When the tenant's trial ends (RFC 3339); absent: not on a trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The tenant's limits; absent: left as they are (set with `PUT …/limits`), `{}`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// `spec.limits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = DefinitionLimits)]
pub struct Limits {
    /// Largest database size, MB (positive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub max_db_size_mb: Option<i32>,
    /// Most application users (positive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub max_users: Option<i32>,
    /// Attachment storage, GB (0 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2147483647)]
    pub max_attachments_gb: Option<i32>,
    /// Free text, at most 1 KB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub notes: Option<String>,
}

impl Limits {
    fn from_registry(l: &TenantLimits) -> Limits {
        Limits {
            max_db_size_mb: l.max_db_size_mb,
            max_users: l.max_users,
            max_attachments_gb: l.max_attachments_gb,
            notes: l.notes.clone(),
        }
    }

    /// The registry's limits.
    pub fn to_registry(&self) -> TenantLimits {
        TenantLimits {
            max_db_size_mb: self.max_db_size_mb,
            max_users: self.max_users,
            max_attachments_gb: self.max_attachments_gb,
            notes: self.notes.clone(),
            updated_at: None,
        }
    }
}

/// `spec.database`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = DefinitionDatabase)]
pub struct Database {
    /// Host name, IP address or Unix socket directory.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z0-9._:/\\[\\]-]+$"
    )]
    pub host: String,
    /// Default 5432.
    #[serde(default = "default_port")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: i32,
    /// The database name.
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")]
    pub name: String,
    /// The role applications connect as.
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")]
    pub user: String,
    /// Where the password is (`file:…`, `env:…`, `vault:…`), never the password itself.
    #[schema(schema_with = crate::secrets::secret_ref_schema)]
    pub secret_ref: String,
    /// libpq options added to the DSN (`sslmode`, ...); scalar values are read as text.
    #[serde(
        default,
        deserialize_with = "text_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub options: BTreeMap<String, String>,
}

fn active() -> TenantStatus {
    TenantStatus::Active
}

fn default_port() -> i32 {
    5432
}

/// A map whose values may be written as strings, integers or booleans (`connect_timeout:
/// 10`, `tier: 1`); they are stored as text. Floats and nulls are refused: `1.10` would
/// silently become `1.1`.
fn text_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Text(#[serde(deserialize_with = "text")] String);
    let map = BTreeMap::<String, Text>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string (quote numbers with a fraction, and empty values)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// One validation problem of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's path in the document, e.g. `spec.database.port`.
    pub field: String,
    /// Path segments of the node to point at (a label key may contain dots, so the
    /// dotted `field` cannot be split back).
    pub locate: Vec<String>,
    /// What is wrong.
    pub message: String,
}

impl FieldProblem {
    fn new(locate: &[&str], message: impl Into<String>) -> FieldProblem {
        FieldProblem {
            field: locate.join("."),
            locate: locate.iter().map(|s| s.to_string()).collect(),
            message: message.into(),
        }
    }
}

/// The document path of a registry (API) field.
fn path_of(api_field: &str) -> &'static [&'static str] {
    match api_field {
        "slug" => &["metadata", "name"],
        "display_name" => &["metadata", "displayName"],
        "labels" => &["metadata", "labels"],
        "db_name" => &["spec", "database", "name"],
        "db_host" => &["spec", "database", "host"],
        "db_port" => &["spec", "database", "port"],
        "db_user" => &["spec", "database", "user"],
        "db_secret_ref" => &["spec", "database", "secretRef"],
        "db_options" => &["spec", "database", "options"],
        "canary" => &["spec", "canary"],
        "status" => &["spec", "status"],
        "suspended_reason" => &["spec", "suspendedReason"],
        "billing_plan" => &["spec", "billingPlan"],
        "contact_email" => &["spec", "contactEmail"],
        "app_version" => &["spec", "appVersion"],
        "maintenance_flag" => &["spec", "maintenanceFlag"],
        "portal_url" => &["spec", "portalUrl"],
        "trial_ends_at" => &["spec", "trialEndsAt"],
        "max_db_size_mb" => &["spec", "limits", "maxDbSizeMb"],
        "max_users" => &["spec", "limits", "maxUsers"],
        "max_attachments_gb" => &["spec", "limits", "maxAttachmentsGb"],
        "notes" => &["spec", "limits", "notes"],
        _ => &[],
    }
}

impl Definition {
    /// The tenant's slug.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The registry's tenant as a definition: every field a person sets, the secret as
    /// its reference. `Definition::from_tenant(t).declared()` changes nothing about `t`.
    pub fn from_tenant(t: &Tenant) -> Definition {
        Definition {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: Metadata {
                name: t.slug.clone(),
                display_name: t.display_name.clone(),
                labels: t.labels.clone(),
            },
            spec: Spec {
                database: Database {
                    host: t.db_host.clone(),
                    port: t.db_port,
                    name: t.db_name.clone(),
                    user: t.db_user.clone(),
                    secret_ref: t.db_secret_ref.clone(),
                    options: t.db_options.clone(),
                },
                canary: t.canary,
                status: t.status,
                suspended_reason: match t.status {
                    TenantStatus::Suspended => t.suspended_reason.clone(),
                    _ => None,
                },
                billing_plan: t.billing_plan.clone(),
                contact_email: t.contact_email.clone(),
                app_version: t.app_version.clone(),
                maintenance_flag: t.maintenance_flag,
                portal_url: t.portal_url.clone().filter(|_| t.portal_url_explicit),
                trial_ends_at: t.trial_ends_at,
                limits: t
                    .limits
                    .as_ref()
                    .filter(|l| !l.is_empty())
                    .map(Limits::from_registry),
            },
            status: (t.server.is_some()
                || t.provisioned_at.is_some()
                || t.provisioning_error.is_some()
                || t.portal_url.is_some())
            .then(|| Observed {
                server: t.server.clone(),
                provisioned_at: t.provisioned_at,
                provisioning_error: t.provisioning_error.clone(),
                portal_url: t.portal_url.clone(),
            }),
        }
    }

    /// The registry's view of this definition.
    pub fn declared(&self) -> Declared {
        let (m, s, db) = (&self.metadata, &self.spec, &self.spec.database);
        Declared {
            tenant: NewTenant {
                slug: m.name.clone(),
                display_name: m.display_name.clone(),
                db_name: db.name.clone(),
                db_host: db.host.clone(),
                db_port: Some(db.port),
                db_user: db.user.clone(),
                db_secret_ref: db.secret_ref.clone(),
                db_options: db.options.clone(),
                labels: m.labels.clone(),
                canary: s.canary,
                status: None,
                provision: false,
                server: None,
                billing_plan: s.billing_plan.clone(),
                contact_email: s.contact_email.clone(),
                app_version: s.app_version.clone(),
                maintenance_flag: s.maintenance_flag,
                portal_url: s.portal_url.clone(),
                trial_ends_at: s.trial_ends_at,
            },
            status: s.status,
            suspended_reason: s.suspended_reason.clone(),
            limits: s.limits.as_ref().map(Limits::to_registry),
        }
    }

    /// The body of `POST /v1/tenants` that creates this tenant by provisioning its role and
    /// database (the daemon then takes it from `provisioning` to `active`).
    pub fn provision_request(&self) -> NewTenant {
        NewTenant {
            provision: true,
            ..self.declared().tenant
        }
    }

    /// Every problem, each named by its path in the document: the document's own rules
    /// (`apiVersion`, `kind`) and the registry's, exactly as `PUT /v1/tenants/{slug}`
    /// applies them.
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if self.api_version != API_VERSION {
            out.push(FieldProblem::new(
                &["apiVersion"],
                format!("must be {API_VERSION}"),
            ));
        }
        if self.kind != KIND {
            out.push(FieldProblem::new(&["kind"], format!("must be {KIND}")));
        }
        for problem in self.declared().problems() {
            let RegistryError::Invalid { field, message } = problem else {
                continue;
            };
            match field {
                "labels" => out.extend(per_key(
                    &["metadata", "labels"],
                    &self.metadata.labels,
                    validate_labels,
                    message,
                )),
                "db_options" => out.extend(per_key(
                    &["spec", "database", "options"],
                    &self.spec.database.options,
                    validate_db_options,
                    message,
                )),
                // A missing reason has no node of its own; point at the status.
                "suspended_reason" if self.spec.suspended_reason.is_none() => {
                    out.push(FieldProblem {
                        field: "spec.suspendedReason".into(),
                        locate: vec!["spec".into(), "status".into()],
                        message,
                    })
                }
                other => out.push(FieldProblem::new(path_of(other), message)),
            }
        }
        out
    }

    /// Leaf fields by short path (`displayName`, `labels.region`, `database.port`,
    /// `status`, ...) with their values as text: what a plan compares and shows.
    pub fn fields(&self) -> BTreeMap<String, String> {
        let (m, s, db) = (&self.metadata, &self.spec, &self.spec.database);
        let mut f = BTreeMap::new();
        f.insert("displayName".to_string(), m.display_name.clone());
        for (k, v) in &m.labels {
            f.insert(format!("labels.{k}"), v.clone());
        }
        f.insert("database.host".into(), db.host.clone());
        f.insert("database.port".into(), db.port.to_string());
        f.insert("database.name".into(), db.name.clone());
        f.insert("database.user".into(), db.user.clone());
        f.insert("database.secretRef".into(), db.secret_ref.clone());
        for (k, v) in &db.options {
            f.insert(format!("database.options.{k}"), v.clone());
        }
        f.insert("canary".into(), s.canary.to_string());
        f.insert("status".into(), s.status.to_string());
        let optional = [
            ("suspendedReason", &s.suspended_reason),
            ("billingPlan", &s.billing_plan),
            ("contactEmail", &s.contact_email),
            ("appVersion", &s.app_version),
            ("portalUrl", &s.portal_url),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                f.insert(k.into(), v.clone());
            }
        }
        f.insert("maintenanceFlag".into(), s.maintenance_flag.to_string());
        if let Some(end) = s.trial_ends_at {
            f.insert("trialEndsAt".into(), end.to_rfc3339());
        }
        if let Some(l) = &s.limits {
            let limits = [
                ("limits.maxDbSizeMb", l.max_db_size_mb),
                ("limits.maxUsers", l.max_users),
                ("limits.maxAttachmentsGb", l.max_attachments_gb),
            ];
            for (k, v) in limits {
                if let Some(v) = v {
                    f.insert(k.into(), v.to_string());
                }
            }
            if let Some(n) = &l.notes {
                f.insert("limits.notes".into(), n.clone());
            }
        }
        f
    }

    /// Trims what the registry stores trimmed, so a file and the row it produced compare
    /// equal.
    pub fn normalize(&mut self) {
        if let Some(r) = &mut self.spec.suspended_reason {
            *r = r.trim().to_string();
        }
    }
}

/// Narrows a whole-map problem to the offending keys, so each is reported and pointed at;
/// a problem of the map as a whole (too many entries) stays on the map.
fn per_key(
    at: &[&str],
    map: &BTreeMap<String, String>,
    check: fn(&BTreeMap<String, String>) -> Result<(), RegistryError>,
    whole: String,
) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    for (k, v) in map {
        let one = BTreeMap::from([(k.clone(), v.clone())]);
        if let Err(RegistryError::Invalid { message, .. }) = check(&one) {
            let mut locate: Vec<String> = at.iter().map(|s| s.to_string()).collect();
            locate.push(k.clone());
            out.push(FieldProblem {
                field: format!("{}.{k}", at.join(".")),
                locate,
                message,
            });
        }
    }
    if out.is_empty() {
        out.push(FieldProblem::new(at, whole));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn acme() -> Definition {
        yaml_serde::from_str(
            r#"
apiVersion: drover.dev/v1
kind: Tenant
metadata: {name: acme, displayName: "Acme Corp", labels: {plan: pro, region: eu}}
spec: {database: {host: db1, port: 5432, name: t_acme, user: t_acme,
       secretRef: "file:tenants/acme"}, canary: false, status: active}
"#,
        )
        .unwrap()
    }

    #[test]
    fn the_flow_style_acme_example_parses_and_is_valid() {
        let d = acme();
        assert_eq!(d.name(), "acme");
        assert_eq!(d.metadata.labels["region"], "eu");
        assert_eq!(d.spec.status, TenantStatus::Active);
        assert!(d.problems().is_empty(), "{:?}", d.problems());
    }

    #[test]
    fn scalar_label_and_option_values_are_read_as_text_but_floats_are_refused() {
        let ok: Metadata =
            yaml_serde::from_str("{name: a, displayName: A, labels: {tier: 1, beta: true}}")
                .unwrap();
        assert_eq!(ok.labels["tier"], "1");
        assert_eq!(ok.labels["beta"], "true");
        let err = yaml_serde::from_str::<Metadata>("{name: a, displayName: A, labels: {v: 1.10}}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels.v") && err.contains("float"), "{err}");
    }

    #[test]
    fn problems_name_document_paths_and_label_keys() {
        let mut d = acme();
        d.api_version = "v2".into();
        d.spec.database.port = 0;
        d.metadata.labels.insert("bad key".into(), "x".into());
        d.spec.status = TenantStatus::Suspended;
        let problems = d.problems();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "apiVersion",
                "spec.database.port",
                "metadata.labels.bad key",
                "spec.suspendedReason"
            ]
        );
        assert_eq!(problems[2].locate, ["metadata", "labels", "bad key"]);
        assert_eq!(problems[3].locate, ["spec", "status"]);
    }

    #[test]
    fn a_tenant_survives_the_round_trip_through_a_definition() {
        let d = acme();
        let t = Tenant {
            id: uuid::Uuid::nil(),
            slug: "acme".into(),
            display_name: "Acme Corp".into(),
            db_name: "t_acme".into(),
            db_host: "db1".into(),
            db_port: 5432,
            db_user: "t_acme".into(),
            db_secret_ref: "file:tenants/acme".into(),
            db_options: BTreeMap::new(),
            schema_version: Some(3),
            app_version: None,
            status: TenantStatus::Active,
            labels: d.metadata.labels.clone(),
            canary: false,
            billing_plan: None,
            contact_email: None,
            suspended_reason: None,
            maintenance_flag: false,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            deleted_at: None,
            server: None,
            provisioned_at: None,
            provisioning_error: None,
            portal_url: None,
            portal_url_explicit: false,
            trial_ends_at: None,
            limits: None,
        };
        assert_eq!(Definition::from_tenant(&t), d);
    }

    #[test]
    fn export_output_parses_back_to_the_same_definition_even_with_tricky_values() {
        let mut d = acme();
        for (k, v) in [
            ("yes", "no"),
            ("num", "007"),
            ("empty", ""),
            ("colon", "a: b"),
            ("hash", "#x"),
            ("null", "null"),
            ("float", "1.10"),
            ("unicode", "Zürich ✓"),
        ] {
            d.metadata.labels.insert(k.into(), v.into());
        }
        d.spec
            .database
            .options
            .insert("connect_timeout".into(), "10".into());
        d.spec.status = TenantStatus::Suspended;
        d.spec.suspended_reason = Some("invoice overdue: \"Q3\"".into());
        d.spec.billing_plan = Some("true".into());
        d.spec.maintenance_flag = true;

        let text = yaml_serde::to_string(&d).unwrap();
        let back: Definition = yaml_serde::from_str(&text).unwrap();

        assert_eq!(back, d, "{text}");
        assert!(
            text.starts_with("apiVersion: drover.dev/v1\nkind: Tenant\n"),
            "{text}"
        );
    }
}
