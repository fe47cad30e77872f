//! `azure-kv:VAULT/NAME[#json-key]`: the latest version of secret NAME in Azure Key Vault
//! `https://VAULT.vault.azure.net`, through Microsoft's `azure_security_keyvault_secrets`
//! client and `azure_identity` credentials (workload identity on AKS, managed identity
//! elsewhere; see `backend.rs`).
//!
//! This file is the scheme: its syntax (Key Vault's own rules: a vault name of 3–24
//! letters, digits and single hyphens starting with a letter; a secret name of 1–127
//! letters, digits and hyphens), its scope rule (a vault listed in `azure_vaults` and a
//! name starting with one of `azure_kv_allowed_prefixes`) and its settings, always built.
//! The backend is behind the `azure` cargo feature; without it a reference still parses
//! and is scope-checked, and reading one is refused naming the missing feature.

#[cfg(feature = "azure")]
mod backend;

use std::path::PathBuf;
use std::sync::Arc;

use super::cloud::split_key;
use super::scheme::Scheme;
use super::{Purpose, RefScope, ScopeError, SecretBackend, SecretError, SecretRef, SecretSettings};

#[cfg(feature = "azure")]
pub use backend::AzureKvBackend;

/// The `azure-kv:` scheme.
pub const SCHEME: Scheme = Scheme {
    name: "azure-kv",
    locator_pattern: "[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]/[A-Za-z0-9-]{1,127}(#[A-Za-z0-9._-]+)?",
    valid_locator,
    expected: "azure-kv: reference must be azure-kv:VAULT/NAME[#json-key] (vault: 3-24 letters, digits and hyphens; name: 1-127 letters, digits and hyphens)",
    in_scope,
    writable: true,
    cacheable: true,
    backend,
    unconfigured: UNCONFIGURED,
};

#[cfg(feature = "azure")]
const UNCONFIGURED: &str = "azure-kv (set DROVER_AZURE_VAULTS)";
#[cfg(not(feature = "azure"))]
const UNCONFIGURED: &str = "azure-kv (drover was built without the azure feature)";

/// What an `azure-kv:` reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureLocation<'a> {
    pub vault: &'a str,
    pub name: &'a str,
    pub key: Option<&'a str>,
}

impl<'a> AzureLocation<'a> {
    /// Splits a locator; `None` unless it follows Key Vault's naming rules.
    pub fn parse(locator: &'a str) -> Option<Self> {
        let (path, key) = split_key(locator);
        if key.is_some_and(|k| k.is_empty() || !k.chars().all(super::reference::is_name_char)) {
            return None;
        }
        let (vault, name) = path.split_once('/')?;
        let vault_ok = (3..=24).contains(&vault.len())
            && vault.starts_with(|c: char| c.is_ascii_alphabetic())
            && vault.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !vault.contains("--")
            && vault.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let name_ok = (1..=127).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        (vault_ok && name_ok).then_some(AzureLocation { vault, name, key })
    }
}

fn valid_locator(locator: &str) -> bool {
    AzureLocation::parse(locator).is_some()
}

/// A vault listed in `azure_vaults` and a name starting with one of
/// `azure_kv_allowed_prefixes`: drover's identity may read more of a vault than tenants'
/// passwords.
fn in_scope(scope: &RefScope, _: Purpose, r: &SecretRef) -> Result<(), ScopeError> {
    let rule = scope.azure_kv();
    let Some(loc) = AzureLocation::parse(r.locator()) else {
        return Err(ScopeError::AzureName {
            allowed: rule.prefixes_text(),
        });
    };
    if !rule.lists(loc.vault) {
        return Err(ScopeError::AzureVault {
            listed: rule.places_text(),
        });
    }
    // Key Vault compares secret names without case; so does the prefix rule.
    let lower = loc.name.to_ascii_lowercase();
    let lowered = super::cloud::CloudScope {
        places: Vec::new(),
        prefixes: rule
            .prefixes
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect(),
    };
    if !lowered.admits(&lower) {
        return Err(ScopeError::AzureName {
            allowed: rule.prefixes_text(),
        });
    }
    Ok(())
}

/// How to reach Key Vault. Present when `azure_vaults` lists a vault.
#[derive(Debug, Clone, Default)]
pub struct AzureKvConfig {
    /// `azure_kv_endpoint`: a URL replacing `https://VAULT.vault.azure.net` for every vault
    /// (a private endpoint under another name; the tests' protocol fake).
    pub endpoint: Option<String>,
    /// `azure_kv_ca_file`: PEM certificates trusted besides the public roots for Key
    /// Vault's TLS (a TLS-inspecting proxy, a private CA, the tests' fake).
    pub ca_file: Option<PathBuf>,
}

impl AzureKvConfig {
    /// The vault's base URL.
    pub fn vault_url(&self, vault: &str) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://{}.vault.azure.net", vault.to_ascii_lowercase()),
        }
    }
}

#[cfg(feature = "azure")]
fn backend(settings: &SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError> {
    match &settings.azure {
        Some(c) => Ok(Some(Arc::new(AzureKvBackend::new(c.clone())?))),
        None => Ok(None),
    }
}

/// Built without the `azure` feature: no backend, so a read is refused with
/// [`UNCONFIGURED`], which names the feature.
#[cfg(not(feature = "azure"))]
fn backend(_: &SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::cloud::CloudScope;

    fn r(s: &str) -> SecretRef {
        s.parse().unwrap()
    }

    #[test]
    fn a_locator_follows_key_vaults_naming_rules() {
        let loc = AzureLocation::parse("prod-kv/tenants-acme#password").unwrap();

        assert_eq!(
            (loc.vault, loc.name, loc.key),
            ("prod-kv", "tenants-acme", Some("password"))
        );
        for bad in [
            "kv/tenants-acme",
            "1vault/x",
            "vault-/x",
            "va--ult/x",
            "vault/tenants_acme",
            "vault/a.b",
            "vault/",
            "vault/x/y",
            "vault/x#",
        ] {
            assert!(AzureLocation::parse(bad).is_none(), "{bad}");
            assert!(
                format!("azure-kv:{bad}").parse::<SecretRef>().is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            AzureKvConfig::default().vault_url("Prod-KV"),
            "https://prod-kv.vault.azure.net"
        );
    }

    #[test]
    fn a_reference_must_be_in_a_listed_vault_and_named_with_an_allowed_prefix() {
        let scope = RefScope::default().with_azure_kv(CloudScope {
            places: vec!["prod-kv".into()],
            prefixes: vec!["tenants-".into()],
        });

        let ok = scope.check(&r("azure-kv:prod-kv/Tenants-acme#pw"));
        let vault = scope.check(&r("azure-kv:other-kv/tenants-acme"));
        let name = scope.check(&r("azure-kv:prod-kv/drover-admin"));

        assert_eq!(ok, Ok(()));
        assert!(vault.unwrap_err().to_string().contains("azure_vaults"));
        assert!(name
            .unwrap_err()
            .to_string()
            .contains("azure_kv_allowed_prefixes"));
    }
}
