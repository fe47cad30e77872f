//! Which secrets a tenant's reference may point at (SPEC §17).
//!
//! A syntactically valid reference can still name something that is not the tenant's: the
//! daemon's own variables (`env:DROVER_ADMIN_TOKEN`, `env:DROVER_DATABASE_URL`), the host's
//! (`env:AWS_SECRET_ACCESS_KEY`, `env:PATH`), any Vault path the daemon's token can read, or
//! drover's own token file in the secrets directory. [`RefScope`] holds the settings (the
//! `env:` prefix, the allowed Vault paths, drover's own token files); each scheme's rule
//! reading them sits with the scheme (`in_scope` in `env.rs`, `file.rs`, `vault/mod.rs`) and
//! [`RefScope::check`] applies the reference's. The
//! registry applies it when a reference is written and the resolver again when one is read,
//! so a reference planted directly in the control DB is refused too. drover's own
//! configuration (`DROVER_ADMIN_TOKEN_REF` and friends) is not tenant data and is not
//! checked here.

use super::SecretRef;

/// The default `env_secret_prefix`.
pub const DEFAULT_ENV_PREFIX: &str = "TENANT_";

/// The default `vault_allowed_prefixes`.
pub const DEFAULT_VAULT_PREFIXES: &str = "secret/tenants";

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
}

impl Default for RefScope {
    fn default() -> Self {
        RefScope {
            env_prefix: DEFAULT_ENV_PREFIX.into(),
            vault: parse_vault_prefixes(DEFAULT_VAULT_PREFIXES)
                .unwrap_or_else(|_| unreachable!("the default prefixes parse")),
            own_files: Vec::new(),
        }
    }
}

/// Checks an `env_secret_prefix`: non-empty, a valid start of a variable name, and never one
/// that `DROVER_` variables could match.
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
    if "DROVER_".starts_with(prefix) || prefix.starts_with("DROVER_") {
        return Err("must not match drover's own DROVER_* variables".into());
    }
    Ok(())
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
        let ok = !p.is_empty()
            && p.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            });
        if !ok {
            return Err(format!(
                "{item:?} is not a mount/path prefix (letters, digits, '.', '_', '-' and '/'); use * for any path"
            ));
        }
        out.push(p.to_string());
    }
    Ok(VaultScope::Under(out))
}

impl RefScope {
    /// A scope from the configured values.
    pub fn new(env_prefix: String, vault: VaultScope, own_files: Vec<String>) -> Self {
        RefScope {
            env_prefix,
            vault,
            own_files,
        }
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
        (r.scheme().in_scope)(self, r)
    }
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
        assert!(check_env_prefix("TENANT_").is_ok());
        assert!(parse_vault_prefixes("secret/../x").is_err());
        assert!(parse_vault_prefixes("").is_err());
        assert_eq!(
            parse_vault_prefixes("secret/tenants/, kv/apps").unwrap(),
            VaultScope::Under(vec!["secret/tenants".into(), "kv/apps".into()])
        );
    }

    #[test]
    fn the_scope_reports_the_settings_it_was_built_with() {
        let scope = RefScope::new(
            "APP_".into(),
            parse_vault_prefixes("secret/tenants, kv/apps").unwrap(),
            vec!["admin-token".into(), "resolver-token".into()],
        );
        assert_eq!(scope.env_prefix(), "APP_");
        assert_eq!(scope.vault_prefixes(), "secret/tenants,kv/apps");
        assert_eq!(scope.own_files(), ["admin-token", "resolver-token"]);
        let any = RefScope::new("APP_".into(), VaultScope::Any, vec![]);
        assert_eq!(any.vault_prefixes(), "*");
        assert_eq!(any.vault(), &VaultScope::Any);
        assert!(any.own_files().is_empty());
    }

    #[test]
    fn a_reference_out_of_scope_is_never_retried() {
        for err in [
            ScopeError::Env {
                prefix: "TENANT_".into(),
            },
            ScopeError::Vault {
                allowed: "secret/tenants/".into(),
            },
            ScopeError::OwnFile,
        ] {
            assert!(!err.is_retryable(), "{err}");
        }
    }
}
