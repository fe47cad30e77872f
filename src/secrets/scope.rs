//! Which secrets a reference may point at, by what it is for (see
//! docs/design.md#secret-references-and-their-scopes).
//!
//! A syntactically valid reference can still name something that is not the tenant's: the
//! daemon's own variables (`env:DROVER_ADMIN_TOKEN`, `env:DROVER_DATABASE_URL`), the host's
//! (`env:AWS_SECRET_ACCESS_KEY`, `env:PATH`), any Vault path the daemon's token can read, or
//! drover's own files in the secrets directory (token files, the control-DB URL, webhook
//! keys). [`RefScope`] holds the settings: the `env:` prefix, the allowed Vault paths, the
//! `file:` directory of each [`Purpose`] (`file_secret_prefix` for tenants,
//! `webhook_secret_prefix` for webhook keys) and drover's own token files. Each scheme's
//! rule reading them sits with the scheme (`in_scope` in `env.rs`, `file.rs`,
//! `vault/mod.rs`); [`RefScope::check`] and [`RefScope::check_webhook`] apply the
//! reference's. The registry and the webhook store apply them when a reference is written,
//! the resolver and the webhook deliverer again when one is read, so a reference planted
//! directly in the control DB is refused too.
//!
//! The prefixes only mean something if drover's own files stay out of them:
//! [`own_files_inside`] is the start-up check that compares canonical paths, and
//! [`check_env_prefix`] refuses an `env:` prefix that would reach a well-known family of
//! variables. drover's own configuration (`DROVER_ADMIN_TOKEN_REF` and friends) is not a
//! tenant's and is not checked by [`RefScope::check`].

use std::path::{Path, PathBuf};

use super::cloud::CloudScope;
use super::{AwsSmScope, SecretRef};

/// The default `env_secret_prefix`.
pub const DEFAULT_ENV_PREFIX: &str = "TENANT_";

/// The default `vault_allowed_prefixes`.
pub const DEFAULT_VAULT_PREFIXES: &str = "secret/tenants";

/// The default `file_secret_prefix`: where provisioning writes tenants' passwords.
pub const DEFAULT_FILE_PREFIX: &str = "tenants/";

/// The default `webhook_secret_prefix`.
pub const DEFAULT_WEBHOOK_PREFIX: &str = "webhooks/";

/// What a reference is for; each purpose has its own `file:` directory, so a tenant's
/// reference can never name a webhook's key or one of drover's own files, and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A tenant's `db_secret_ref`.
    Tenant,
    /// A webhook's HMAC key (`secret_ref`).
    Webhook,
}

/// Families of variables an `env_secret_prefix` must not reach: libpq's, the cloud SDKs',
/// Vault's and OpenBao's, drover's own, and the process's basics. A prefix is refused when
/// it is the start of one of these (`P` reaches `PGPASSWORD` and `PATH`) or starts with one
/// (`AWS_TENANT_` is still AWS's namespace).
pub const ENV_FAMILIES: &[&str] = &[
    "PG",
    "AWS_",
    "DROVER_",
    "VAULT_",
    "BAO_",
    "GOOGLE_",
    "GCP_",
    "AZURE_",
    "ARM_",
    "KUBERNETES_",
    "HOME",
    "PATH",
    "USER",
    "SHELL",
    "LD_",
    "SSH_",
    "DATABASE_",
];

/// Where `vault:` references may point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultScope {
    /// Any path (`vault_allowed_prefixes = "*"`): the operator's explicit opt-in.
    Any,
    /// Only paths equal to, or below, one of these (no trailing `/`).
    Under(Vec<String>),
}

/// A reference outside the allowed scope; the message names the rule and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// `env:` name without the prefix.
    #[error("env: references may only name variables starting with {prefix} (env_secret_prefix, DROVER_ENV_SECRET_PREFIX)")]
    Env { prefix: String },
    /// `vault:` path outside every allowed prefix.
    #[error("vault: references must be under {allowed} (vault_allowed_prefixes, DROVER_VAULT_ALLOWED_PREFIXES)")]
    Vault { allowed: String },
    /// `file:` naming one of drover's own token files.
    #[error("file: references must not name drover's own token files (admin_token_ref, resolver_token_ref)")]
    OwnFile,
    /// A tenant's `file:` reference outside its directory.
    #[error("file: tenant references must be under {prefix} (file_secret_prefix, DROVER_FILE_SECRET_PREFIX)")]
    File { prefix: String },
    /// A webhook key's `file:` reference outside its directory.
    #[error("file: webhook key references must be under {prefix} (webhook_secret_prefix, DROVER_WEBHOOK_SECRET_PREFIX)")]
    WebhookFile { prefix: String },
    /// `aws-sm:` secret name outside every allowed prefix.
    #[error("aws-sm: references must be under {allowed} (aws_sm_allowed_prefixes, DROVER_AWS_SM_ALLOWED_PREFIXES)")]
    AwsSm { allowed: String },
    /// A `gcp-sm:` reference in a project `gcp_projects` does not list.
    #[error("gcp-sm: references must name a project listed in gcp_projects (DROVER_GCP_PROJECTS; listed: {listed})")]
    GcpProject { listed: String },
    /// A `gcp-sm:` secret whose name has none of the allowed prefixes.
    #[error("gcp-sm: secret names must start with {allowed} (gcp_sm_allowed_prefixes, DROVER_GCP_SM_ALLOWED_PREFIXES)")]
    GcpName { allowed: String },
    /// An `azure-kv:` reference to a vault `azure_vaults` does not list.
    #[error("azure-kv: references must name a vault listed in azure_vaults (DROVER_AZURE_VAULTS; listed: {listed})")]
    AzureVault { listed: String },
    /// An `azure-kv:` secret whose name has none of the allowed prefixes.
    #[error("azure-kv: secret names must start with {allowed} (azure_kv_allowed_prefixes, DROVER_AZURE_KV_ALLOWED_PREFIXES)")]
    AzureName { allowed: String },
}

impl ScopeError {
    /// Never: a person must change the reference or the configuration.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The rules a tenant's secret reference must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefScope {
    env_prefix: String,
    vault: VaultScope,
    /// Locators of `file:` references drover's own configuration reads (token files).
    own_files: Vec<String>,
    /// `file_secret_prefix`, ending in `/`.
    tenant_files: String,
    /// `webhook_secret_prefix`, ending in `/`.
    webhook_files: String,
    /// `aws_sm_allowed_prefixes`.
    aws_sm: AwsSmScope,
    /// `gcp_projects` and `gcp_sm_allowed_prefixes`.
    gcp_sm: CloudScope,
    /// `azure_vaults` and `azure_kv_allowed_prefixes`.
    azure_kv: CloudScope,
}

impl Default for RefScope {
    fn default() -> Self {
        RefScope {
            env_prefix: DEFAULT_ENV_PREFIX.into(),
            vault: parse_vault_prefixes(DEFAULT_VAULT_PREFIXES)
                .unwrap_or_else(|_| unreachable!("the default prefixes parse")),
            own_files: Vec::new(),
            tenant_files: DEFAULT_FILE_PREFIX.into(),
            webhook_files: DEFAULT_WEBHOOK_PREFIX.into(),
            aws_sm: AwsSmScope::default(),
            gcp_sm: CloudScope::default(),
            azure_kv: CloudScope::default(),
        }
    }
}

/// Checks an `env_secret_prefix`: non-empty, a valid start of a variable name, and never one
/// that reaches a family of [`ENV_FAMILIES`] (drover's own `DROVER_*` among them).
pub fn check_env_prefix(prefix: &str) -> Result<(), String> {
    let valid = prefix
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err("expected the start of a variable name, e.g. TENANT_".into());
    }
    if let Some(family) = ENV_FAMILIES
        .iter()
        .find(|f| f.starts_with(prefix) || prefix.starts_with(*f))
    {
        return Err(format!(
            "must not match the {family}* variables (libpq, cloud credentials, Vault, drover's own DROVER_*, HOME, PATH …); use a prefix of its own, e.g. TENANT_"
        ));
    }
    Ok(())
}

/// `tenants`, `tenants/` or `/secrets/tenants/` → `tenants/`: relative path segments
/// (letters, digits, `.`, `_`, `-`; no `.` or `..`), ending in `/`, so `tenants/` never
/// admits `tenantsx/…`. Empty is refused: the whole secrets directory holds drover's own
/// files too.
pub fn parse_file_prefix(s: &str) -> Result<String, String> {
    let p = s.trim().trim_matches('/');
    if p.is_empty() {
        return Err("expected a directory under the secrets directory, e.g. tenants/ (the whole directory holds drover's own files too)".into());
    }
    if !is_plain_path(p) {
        return Err(format!(
            "{s:?} is not a relative directory (letters, digits, '.', '_', '-' and '/'), e.g. tenants/"
        ));
    }
    Ok(format!("{p}/"))
}

/// A relative path of plain segments: letters, digits, `.`, `_`, `-`, never empty, `.` or
/// `..` (so a prefix can neither climb out nor hide an empty segment). The one rule both
/// the file and the Vault prefixes follow.
fn is_plain_path(p: &str) -> bool {
    !p.is_empty()
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

/// `secret/tenants, kv/apps/x` → the prefixes; `*` → any path.
pub fn parse_vault_prefixes(s: &str) -> Result<VaultScope, String> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if items == ["*"] {
        return Ok(VaultScope::Any);
    }
    if items.is_empty() {
        return Err("expected comma-separated mount/path prefixes, or * for any path".into());
    }
    let mut out = Vec::new();
    for item in items {
        let p = item.trim_matches('/');
        if !is_plain_path(p) {
            return Err(format!(
                "{item:?} is not a mount/path prefix (letters, digits, '.', '_', '-' and '/'); use * for any path"
            ));
        }
        out.push(p.to_string());
    }
    Ok(VaultScope::Under(out))
}

impl RefScope {
    /// A scope from the configured values, with the default `file:` directories.
    pub fn new(env_prefix: String, vault: VaultScope, own_files: Vec<String>) -> Self {
        RefScope {
            env_prefix,
            vault,
            own_files,
            ..RefScope::default()
        }
    }

    /// The same scope with these `file:` directories (as [`parse_file_prefix`] returns
    /// them) for tenants and for webhook keys.
    pub fn with_file_prefixes(mut self, tenants: String, webhooks: String) -> Self {
        self.tenant_files = tenants;
        self.webhook_files = webhooks;
        self
    }

    /// The same scope with these `aws-sm:` prefixes.
    pub fn with_aws_sm(mut self, aws_sm: AwsSmScope) -> Self {
        self.aws_sm = aws_sm;
        self
    }

    /// Where `aws-sm:` references may point.
    pub fn aws_sm(&self) -> &AwsSmScope {
        &self.aws_sm
    }

    /// The same scope with these `gcp-sm:` projects and name prefixes.
    pub fn with_gcp_sm(mut self, scope: CloudScope) -> Self {
        self.gcp_sm = scope;
        self
    }

    /// The same scope with these `azure-kv:` vaults and name prefixes.
    pub fn with_azure_kv(mut self, scope: CloudScope) -> Self {
        self.azure_kv = scope;
        self
    }

    /// Where `gcp-sm:` references may point.
    pub fn gcp_sm(&self) -> &CloudScope {
        &self.gcp_sm
    }

    /// Where `azure-kv:` references may point.
    pub fn azure_kv(&self) -> &CloudScope {
        &self.azure_kv
    }

    /// The directory `file:` references for `purpose` must be under, ending in `/`.
    pub fn file_prefix(&self, purpose: Purpose) -> &str {
        match purpose {
            Purpose::Tenant => &self.tenant_files,
            Purpose::Webhook => &self.webhook_files,
        }
    }

    /// Whether a `file:` locator lies under `purpose`'s directory (a file in it, not the
    /// directory itself); the error names the setting.
    pub fn check_file(&self, purpose: Purpose, locator: &str) -> Result<(), ScopeError> {
        let prefix = self.file_prefix(purpose);
        if locator.len() > prefix.len() && locator.starts_with(prefix) {
            return Ok(());
        }
        let prefix = prefix.to_string();
        Err(match purpose {
            Purpose::Tenant => ScopeError::File { prefix },
            Purpose::Webhook => ScopeError::WebhookFile { prefix },
        })
    }

    /// The `env:` prefix.
    pub fn env_prefix(&self) -> &str {
        &self.env_prefix
    }

    /// The allowed Vault paths as configured (`*` for any).
    pub fn vault_prefixes(&self) -> String {
        match &self.vault {
            VaultScope::Any => "*".into(),
            VaultScope::Under(p) => p.join(","),
        }
    }

    /// The allowed Vault paths.
    pub fn vault(&self) -> &VaultScope {
        &self.vault
    }

    /// Locators of `file:` references drover's own configuration reads (token files).
    pub fn own_files(&self) -> &[String] {
        &self.own_files
    }

    /// Whether `r` may be a tenant's reference: its scheme's rule
    /// ([`Scheme::in_scope`](super::Scheme)).
    pub fn check(&self, r: &SecretRef) -> Result<(), ScopeError> {
        (r.scheme().in_scope)(self, Purpose::Tenant, r)
    }

    /// Whether `r` may be a webhook's key: its scheme's rule for [`Purpose::Webhook`].
    pub fn check_webhook(&self, r: &SecretRef) -> Result<(), ScopeError> {
        (r.scheme().in_scope)(self, Purpose::Webhook, r)
    }
}

/// One file drover itself reads, by the key that names it: `(key, path)`.
pub type OwnPath<'a> = (&'a str, PathBuf);

/// The first of drover's own files (token files, Vault token, TLS key, CA, …) that lies in
/// one of the `file:` directories references may name, as `(its key, the prefix's key)`:
/// a tenant or webhook reference could read it. Compared as canonical paths, so neither a
/// symlinked file nor a symlinked directory hides one; a path that does not exist (yet) is
/// compared as written, made absolute.
pub fn own_files_inside<'a>(
    secrets_dir: &Path,
    prefixes: &[(&'a str, &str)],
    own: &[OwnPath<'a>],
) -> Option<(&'a str, &'a str)> {
    let root = canonical(secrets_dir);
    let dirs: Vec<(&str, PathBuf)> = prefixes
        .iter()
        .map(|(key, p)| (*key, canonical(&root.join(p.trim_end_matches('/')))))
        .collect();
    own.iter().find_map(|(key, path)| {
        let file = canonical(path);
        dirs.iter()
            .find(|(_, dir)| file.starts_with(dir))
            .map(|(prefix_key, _)| (*key, *prefix_key))
    })
}

/// The canonical path when it exists; otherwise the path made absolute, as written.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> SecretRef {
        s.parse().unwrap()
    }

    #[test]
    fn env_references_need_the_prefix() {
        let scope = RefScope::default();

        assert!(scope.check(&r("env:TENANT_ACME_PASSWORD")).is_ok());
        for bad in [
            "env:DROVER_ADMIN_TOKEN",
            "env:DROVER_DATABASE_URL",
            "env:DROVER_VAULT_TOKEN",
            "env:PATH",
            "env:HOME",
            "env:AWS_SECRET_ACCESS_KEY",
            "env:tenant_lowercase",
        ] {
            let err = scope.check(&r(bad)).unwrap_err();
            assert!(err.to_string().contains("TENANT_"), "{bad}: {err}");
        }
    }

    #[test]
    fn vault_paths_must_be_below_an_allowed_prefix() {
        let scope = RefScope::default();

        assert!(scope
            .check(&r("vault:secret/tenants/acme#password"))
            .is_ok());
        for bad in [
            "vault:secret/tenants#password",
            "vault:secret/tenantsx/acme#password",
            "vault:secret/drover/admin#token",
            "vault:sys/tenants/acme#password",
        ] {
            assert!(
                matches!(scope.check(&r(bad)), Err(ScopeError::Vault { .. })),
                "{bad}"
            );
        }
        let any = RefScope::new("TENANT_".into(), parse_vault_prefixes("*").unwrap(), vec![]);
        assert!(any.check(&r("vault:sys/x/y#z")).is_ok());
    }

    #[test]
    fn drovers_own_token_files_are_refused() {
        let scope = RefScope::new(
            "TENANT_".into(),
            VaultScope::Any,
            vec!["admin-token".into()],
        );

        assert_eq!(
            scope.check(&r("file:admin-token")),
            Err(ScopeError::OwnFile)
        );
        assert!(scope.check(&r("file:tenants/acme")).is_ok());
    }

    #[test]
    fn prefixes_that_would_match_drover_variables_are_refused() {
        for bad in ["", "D", "DROVER_", "DROVER_X", "1A", "TEN-"] {
            assert!(check_env_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(check_env_prefix("_TENANT_").is_ok());
        assert!(check_env_prefix("T3NANT_").is_ok());
        assert!(check_env_prefix("TENANT_").is_ok());
        assert!(parse_vault_prefixes("secret/../x").is_err());
        assert!(parse_vault_prefixes("").is_err());
        assert_eq!(
            parse_vault_prefixes("secret/tenants/, kv/apps").unwrap(),
            VaultScope::Under(vec!["secret/tenants".into(), "kv/apps".into()])
        );
    }

    #[test]
    fn env_prefixes_reaching_a_well_known_family_are_refused_naming_it() {
        for (bad, family) in [
            ("P", "PG"),
            ("PG", "PG"),
            ("PGTENANT_", "PG"),
            ("AWS_", "AWS_"),
            ("AWS_TENANT_", "AWS_"),
            ("A", "AWS_"),
            ("VAULT_", "VAULT_"),
            ("BAO_", "BAO_"),
            ("GOOGLE_", "GOOGLE_"),
            ("AZURE_", "AZURE_"),
            ("H", "HOME"),
            ("HOME", "HOME"),
            ("DROVER_TENANT_", "DROVER_"),
        ] {
            let err = check_env_prefix(bad).unwrap_err();
            assert!(
                err.contains(&format!("the {family}* variables")),
                "{bad}: {err}"
            );
        }
        assert!(check_env_prefix("")
            .unwrap_err()
            .contains("start of a variable name"));
        for ok in ["TENANT_", "APP_DB_", "TENANTS", "X"] {
            assert_eq!(check_env_prefix(ok), Ok(()), "{ok}");
        }
        assert!(ENV_FAMILIES.iter().all(|f| !f.is_empty()));
    }

    #[test]
    fn file_prefixes_are_relative_directories_ending_in_a_slash() {
        for (input, want) in [
            ("tenants", "tenants/"),
            ("tenants/", "tenants/"),
            ("/tenants/", "tenants/"),
            (" db/tenants ", "db/tenants/"),
            ("a.b_c-d", "a.b_c-d/"),
        ] {
            assert_eq!(parse_file_prefix(input).as_deref(), Ok(want), "{input:?}");
        }
        assert!(parse_file_prefix("")
            .unwrap_err()
            .contains("drover's own files"));
        assert!(parse_file_prefix("/")
            .unwrap_err()
            .contains("drover's own files"));
        for bad in ["a//b", "./a", "a/..", "a/.", "a b", "a#b"] {
            let err = parse_file_prefix(bad).unwrap_err();
            assert!(err.contains("not a relative directory"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_tenants_file_reference_must_be_under_the_tenant_prefix() {
        let scope = RefScope::default();

        assert_eq!(scope.check(&r("file:tenants/acme")), Ok(()));
        assert_eq!(scope.check(&r("file:tenants/eu/acme")), Ok(()));
        for bad in [
            "file:database-url",
            "file:vault-token",
            "file:tenantsx/acme",
            "file:tenants",
            "file:webhooks/key",
            "file:x/tenants/acme",
        ] {
            assert_eq!(
                scope.check(&r(bad)),
                Err(ScopeError::File {
                    prefix: "tenants/".into()
                }),
                "{bad}"
            );
        }
        let err = scope
            .check(&r("file:database-url"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "file: tenant references must be under tenants/ (file_secret_prefix, DROVER_FILE_SECRET_PREFIX)"
        );
    }

    #[test]
    fn a_webhook_key_must_be_under_the_webhook_prefix() {
        let scope = RefScope::default();

        assert_eq!(scope.check_webhook(&r("file:webhooks/ops")), Ok(()));
        for bad in ["file:tenants/acme", "file:database-url", "file:webhooks"] {
            assert_eq!(
                scope.check_webhook(&r(bad)),
                Err(ScopeError::WebhookFile {
                    prefix: "webhooks/".into()
                }),
                "{bad}"
            );
        }
        assert_eq!(
            ScopeError::WebhookFile { prefix: "webhooks/".into() }.to_string(),
            "file: webhook key references must be under webhooks/ (webhook_secret_prefix, DROVER_WEBHOOK_SECRET_PREFIX)"
        );
        // The other schemes keep their rules whatever the purpose.
        assert_eq!(scope.check_webhook(&r("env:TENANT_HOOK")), Ok(()));
        assert!(matches!(
            scope.check_webhook(&r("env:DROVER_ADMIN_TOKEN")),
            Err(ScopeError::Env { .. })
        ));
        assert!(matches!(
            scope.check_webhook(&r("vault:secret/drover/x#y")),
            Err(ScopeError::Vault { .. })
        ));
    }

    #[test]
    fn configured_file_prefixes_replace_the_defaults_and_keep_the_rest() {
        let scope = RefScope::new("APP_".into(), VaultScope::Any, vec!["db/own".into()])
            .with_file_prefixes("db/".into(), "hooks/".into());

        assert_eq!(scope.file_prefix(Purpose::Tenant), "db/");
        assert_eq!(scope.file_prefix(Purpose::Webhook), "hooks/");
        assert_eq!(scope.check_file(Purpose::Tenant, "db/acme"), Ok(()));
        assert_eq!(scope.check_file(Purpose::Webhook, "hooks/ops"), Ok(()));
        assert_eq!(
            scope.check_file(Purpose::Tenant, "db/"),
            Err(ScopeError::File {
                prefix: "db/".into()
            })
        );
        assert_eq!(
            scope.check_file(Purpose::Webhook, "hooks/"),
            Err(ScopeError::WebhookFile {
                prefix: "hooks/".into()
            })
        );
        assert_eq!(
            scope.check_file(Purpose::Tenant, "hooks/ops"),
            Err(ScopeError::File {
                prefix: "db/".into()
            })
        );
        assert_eq!(
            scope.check_file(Purpose::Webhook, "db/acme"),
            Err(ScopeError::WebhookFile {
                prefix: "hooks/".into()
            })
        );
        assert_eq!(scope.check(&r("file:db/own")), Err(ScopeError::OwnFile));
        assert_eq!(scope.env_prefix(), "APP_");
        assert_eq!(scope.vault(), &VaultScope::Any);
        assert_eq!(scope.own_files(), ["db/own".to_string()]);
        let defaults = RefScope::default();
        assert_eq!(defaults.file_prefix(Purpose::Tenant), DEFAULT_FILE_PREFIX);
        assert_eq!(
            defaults.file_prefix(Purpose::Webhook),
            DEFAULT_WEBHOOK_PREFIX
        );
        assert_eq!(defaults.env_prefix(), DEFAULT_ENV_PREFIX);
        assert!(defaults.own_files().is_empty());
    }

    #[test]
    fn the_vault_prefixes_read_back_as_configured() {
        let two = RefScope::new(
            "TENANT_".into(),
            parse_vault_prefixes("secret/tenants, kv/apps").unwrap(),
            vec![],
        );
        let any = RefScope::new("TENANT_".into(), VaultScope::Any, vec![]);

        assert_eq!(two.vault_prefixes(), "secret/tenants,kv/apps");
        assert_eq!(any.vault_prefixes(), "*");
        assert_eq!(RefScope::default().vault_prefixes(), DEFAULT_VAULT_PREFIXES);
    }

    #[test]
    fn a_scope_error_is_never_worth_retrying() {
        for e in [
            ScopeError::OwnFile,
            ScopeError::File {
                prefix: "t/".into(),
            },
            ScopeError::Env { prefix: "T".into() },
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    /// A secrets directory with `tenants/`, `webhooks/` and files at its top, removed
    /// when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("drover-scope-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(d.join("secrets/tenants")).unwrap();
            std::fs::create_dir_all(d.join("secrets/webhooks")).unwrap();
            std::fs::write(d.join("secrets/admin-token"), "x").unwrap();
            std::fs::write(d.join("secrets/tenants/acme"), "x").unwrap();
            std::fs::write(d.join("outside"), "x").unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PREFIXES: &[(&str, &str)] = &[
        ("file_secret_prefix", "tenants/"),
        ("webhook_secret_prefix", "webhooks/"),
    ];

    #[test]
    fn own_files_outside_the_prefixes_pass() {
        let d = Dir::new("outside");
        let secrets = d.0.join("secrets");

        let found = own_files_inside(
            &secrets,
            PREFIXES,
            &[
                ("admin_token_ref", secrets.join("admin-token")),
                ("tls_key_file", d.0.join("outside")),
                ("ca_file", d.0.join("missing.pem")),
            ],
        );

        assert_eq!(found, None);
    }

    #[test]
    fn an_own_file_inside_a_prefix_is_named_with_the_prefix_key() {
        let d = Dir::new("inside");
        let secrets = d.0.join("secrets");
        std::fs::write(secrets.join("webhooks/vault-token"), "x").unwrap();

        let tenant = own_files_inside(
            &secrets,
            PREFIXES,
            &[
                ("admin_token_ref", secrets.join("admin-token")),
                ("tls_key_file", secrets.join("tenants/acme")),
            ],
        );
        let webhook = own_files_inside(
            &secrets,
            PREFIXES,
            &[("vault_token_file", secrets.join("webhooks/vault-token"))],
        );
        // Not there yet: compared as written.
        let missing = own_files_inside(
            &secrets,
            PREFIXES,
            &[("ca_file", secrets.join("tenants/ca.pem"))],
        );

        assert_eq!(tenant, Some(("tls_key_file", "file_secret_prefix")));
        assert_eq!(webhook, Some(("vault_token_file", "webhook_secret_prefix")));
        assert_eq!(missing, Some(("ca_file", "file_secret_prefix")));
    }

    #[test]
    fn symlinks_neither_hide_an_own_file_nor_make_one_up() {
        let d = Dir::new("links");
        let secrets = d.0.join("secrets");
        // A file elsewhere that is really a tenant secret ...
        std::os::unix::fs::symlink(secrets.join("tenants/acme"), d.0.join("key.pem")).unwrap();
        // ... a prefix directory that is really where the token lives ...
        let linked = d.0.join("linked");
        std::fs::create_dir_all(linked.join("secrets")).unwrap();
        std::fs::write(linked.join("token"), "x").unwrap();
        std::os::unix::fs::symlink(&linked, linked.join("secrets/tenants")).unwrap();
        // ... and a secrets directory reached through a symlink.
        std::os::unix::fs::symlink(&secrets, d.0.join("alias")).unwrap();

        let through_file =
            own_files_inside(&secrets, PREFIXES, &[("tls_key_file", d.0.join("key.pem"))]);
        let through_dir = own_files_inside(
            &linked.join("secrets"),
            PREFIXES,
            &[("admin_token_ref", linked.join("token"))],
        );
        let through_root = own_files_inside(
            &d.0.join("alias"),
            PREFIXES,
            &[
                ("admin_token_ref", secrets.join("admin-token")),
                ("ca_file", secrets.join("tenants/acme")),
            ],
        );

        assert_eq!(through_file, Some(("tls_key_file", "file_secret_prefix")));
        assert_eq!(through_dir, Some(("admin_token_ref", "file_secret_prefix")));
        assert_eq!(through_root, Some(("ca_file", "file_secret_prefix")));
    }

    #[test]
    fn a_relative_path_that_does_not_exist_is_made_absolute() {
        let cwd = std::env::current_dir().unwrap();

        let found = own_files_inside(
            &cwd,
            PREFIXES,
            &[(
                "vault_token_file",
                PathBuf::from("tenants/surely-not-here/token"),
            )],
        );

        assert_eq!(found, Some(("vault_token_file", "file_secret_prefix")));
    }
}
