//! What the cloud secret stores' schemes share (`gcp-sm:`, `azure-kv:`): the optional
//! `#json-key` that picks one field of a JSON secret, the scope shape "a listed place
//! (project, vault) and a name prefix", the marker drover puts on what it creates, and the
//! rustls set-up the cloud SDKs need.
//!
//! Why a JSON key: a cloud secret often holds a whole connection document
//! (`{"username": …, "password": …}`); `#password` takes the one field drover needs. The
//! field must be a JSON string: a number or object under the key is refused rather than
//! guessed at. Errors name the reference and the key, never the value.

use secrecy::{ExposeSecret, SecretString};

use super::{SecretError, SecretRef};

/// The label (Google) or tag (Azure) drover sets on a secret it created, and checks before
/// deleting one: deprovisioning never deletes a secret someone else made.
pub const CREATED_MARKER: (&str, &str) = ("drover-created", "true");

/// The default name prefix of both cloud schemes (`gcp_sm_allowed_prefixes`,
/// `azure_kv_allowed_prefixes`).
pub const DEFAULT_CLOUD_PREFIXES: &str = "tenants-";

/// Where a cloud scheme's references may point: a listed place (a Google project, an Azure
/// vault) and a secret name starting with one of the prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudScope {
    /// Projects or vaults; empty means none (every reference of the scheme is refused).
    pub places: Vec<String>,
    /// Name prefixes; never empty.
    pub prefixes: Vec<String>,
}

impl Default for CloudScope {
    fn default() -> Self {
        CloudScope {
            places: Vec::new(),
            prefixes: vec![DEFAULT_CLOUD_PREFIXES.into()],
        }
    }
}

impl CloudScope {
    /// Whether `place` is listed (compared without case: vault names and project ids are
    /// case-insensitive in the clouds' DNS and consoles alike).
    pub fn lists(&self, place: &str) -> bool {
        self.places.iter().any(|p| p.eq_ignore_ascii_case(place))
    }

    /// Whether `name` starts with one of the prefixes (and is longer than it).
    pub fn admits(&self, name: &str) -> bool {
        self.prefixes
            .iter()
            .any(|p| name.len() > p.len() && name.starts_with(p.as_str()))
    }

    /// The places as configured, comma-separated.
    pub fn places_text(&self) -> String {
        if self.places.is_empty() {
            "none listed".into()
        } else {
            self.places.join(", ")
        }
    }

    /// The prefixes, comma-separated.
    pub fn prefixes_text(&self) -> String {
        self.prefixes.join(", ")
    }
}

/// A comma-separated list of plain names (letters, digits, `-`, `_`; `what` names one in
/// the error). Empty is allowed when `may_be_empty`.
pub fn parse_names(s: &str, what: &str, may_be_empty: bool) -> Result<Vec<String>, String> {
    let items: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if items.is_empty() && !may_be_empty {
        return Err(format!("expected comma-separated {what}s"));
    }
    if let Some(bad) = items.iter().find(|p| {
        !p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    }) {
        return Err(format!(
            "{bad:?} is not a {what} (letters, digits, '-' and '_')"
        ));
    }
    Ok(items)
}

/// Splits `locator#key` into the part before `#` and the key, if any.
pub fn split_key(locator: &str) -> (&str, Option<&str>) {
    match locator.split_once('#') {
        Some((path, key)) => (path, Some(key)),
        None => (locator, None),
    }
}

/// The value drover uses: the whole secret, or the string field `key` of a JSON object.
pub fn pick(
    reference: &SecretRef,
    value: SecretString,
    key: Option<&str>,
) -> Result<SecretString, SecretError> {
    let Some(key) = key else {
        return Ok(value);
    };
    let not_there = || SecretError::NotFound {
        reference: reference.to_string(),
        why: format!("the secret is not a JSON object with a string field {key:?}"),
    };
    let doc: serde_json::Value =
        serde_json::from_str(value.expose_secret()).map_err(|_| not_there())?;
    match doc.get(key) {
        Some(serde_json::Value::String(s)) => Ok(SecretString::from(s.clone())),
        _ => Err(not_there()),
    }
}

/// Makes ring rustls's process-wide provider, once. The cloud SDKs build their HTTP clients
/// on rustls without a provider of their own (their default, aws-lc-rs, is left out so
/// drover keeps one TLS stack) and ask rustls for the process default; drover's other TLS
/// users name ring explicitly, so this changes nothing for them. A second call (or one
/// after another part of the process installed ring) is a no-op.
#[cfg(any(feature = "gcp", feature = "azure"))]
pub fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> SecretRef {
        "env:TENANT_X".parse().unwrap()
    }

    #[test]
    fn a_json_key_picks_one_string_field_and_refuses_anything_else() {
        let doc = SecretString::from(r#"{"username":"u","password":"p4ss","port":5432}"#);

        let got = pick(&r(), doc.clone(), Some("password")).unwrap();
        let number = pick(&r(), doc.clone(), Some("port")).unwrap_err();
        let missing = pick(&r(), doc.clone(), Some("nope")).unwrap_err();
        let not_json = pick(&r(), SecretString::from("p4ss"), Some("password")).unwrap_err();
        let whole = pick(&r(), SecretString::from("p4ss"), None).unwrap();

        assert_eq!(got.expose_secret(), "p4ss");
        assert_eq!(whole.expose_secret(), "p4ss");
        for e in [number, missing, not_json] {
            assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
            assert!(!e.to_string().contains("p4ss"), "{e}");
        }
    }

    #[test]
    fn a_cloud_scope_needs_a_listed_place_and_a_name_longer_than_its_prefix() {
        let scope = CloudScope {
            places: vec!["Prod-1".into()],
            prefixes: vec!["tenants-".into()],
        };

        assert!(scope.lists("prod-1"));
        assert!(!scope.lists("prod-2"));
        assert!(scope.admits("tenants-acme"));
        assert!(!scope.admits("tenants-"));
        assert!(!scope.admits("admin-db"));
        assert_eq!(
            parse_names(" a-1, b_2 ,", "project", false).unwrap(),
            ["a-1", "b_2"]
        );
        assert!(parse_names("", "project", false).is_err());
        assert!(parse_names("", "project", true).unwrap().is_empty());
        assert!(parse_names("a/b", "project", true).is_err());
    }
}
