//! `gcp-sm:projects/PROJECT/secrets/NAME[/versions/VERSION][#json-key]`: Google Secret
//! Manager through Google's own Rust client (`google-cloud-secretmanager-v1`) and
//! Application Default Credentials (`google-cloud-auth`: `GOOGLE_APPLICATION_CREDENTIALS`,
//! the metadata server, workload identity federation).
//!
//! This file is the scheme: its syntax, its scope rule (a project listed in `gcp_projects`
//! and a secret name starting with one of `gcp_sm_allowed_prefixes`) and its settings,
//! always built. The backend (`backend.rs`) is behind the `gcp` cargo feature; without it a
//! `gcp-sm:` reference still parses and is scope-checked, and reading one is refused
//! naming the missing feature.
//!
//! The version defaults to `latest`; a reference naming a version reads that version and
//! cannot be written (a new value is always a new version).

#[cfg(feature = "gcp")]
mod backend;
#[cfg(feature = "gcp")]
mod crc32c;

use std::sync::Arc;

use super::cloud::split_key;
use super::scheme::Scheme;
use super::{Purpose, RefScope, ScopeError, SecretBackend, SecretError, SecretRef, SecretSettings};

#[cfg(feature = "gcp")]
pub use backend::GcpSmBackend;

/// The `gcp-sm:` scheme.
pub const SCHEME: Scheme = Scheme {
    name: "gcp-sm",
    locator_pattern: "projects/[a-z0-9-]+/secrets/[A-Za-z0-9_-]+(/versions/([0-9]+|latest))?(#[A-Za-z0-9._-]+)?",
    valid_locator,
    expected: "gcp-sm: reference must be gcp-sm:projects/PROJECT/secrets/NAME, optionally /versions/N or /versions/latest and #json-key",
    in_scope,
    writable: true,
    cacheable: true,
    backend,
    unconfigured: UNCONFIGURED,
};

#[cfg(feature = "gcp")]
const UNCONFIGURED: &str = "gcp-sm (set DROVER_GCP_PROJECTS)";
#[cfg(not(feature = "gcp"))]
const UNCONFIGURED: &str = "gcp-sm (drover was built without the gcp feature)";

/// What a `gcp-sm:` reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpLocation<'a> {
    pub project: &'a str,
    pub secret: &'a str,
    /// `latest` or a version number.
    pub version: &'a str,
    /// Whether the reference named the version (then it cannot be written).
    pub pinned: bool,
    pub key: Option<&'a str>,
}

impl<'a> GcpLocation<'a> {
    /// Splits a locator; `None` unless it is well formed.
    pub fn parse(locator: &'a str) -> Option<Self> {
        let (path, key) = split_key(locator);
        if key.is_some_and(|k| k.is_empty() || !k.chars().all(super::reference::is_name_char)) {
            return None;
        }
        let rest = path.strip_prefix("projects/")?;
        let (project, rest) = rest.split_once("/secrets/")?;
        let (secret, version, pinned) = match rest.split_once("/versions/") {
            Some((secret, version)) => (secret, version, true),
            None => (rest, "latest", false),
        };
        let project_ok = !project.is_empty()
            && project
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        // Secret ids: letters, digits, '-' and '_', at most 255 (Secret Manager's rule).
        let secret_ok = !secret.is_empty()
            && secret.len() <= 255
            && secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        let version_ok = version == "latest"
            || (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit()));
        (project_ok && secret_ok && version_ok).then_some(GcpLocation {
            project,
            secret,
            version,
            pinned,
            key,
        })
    }

    /// `projects/P/secrets/N`.
    pub fn secret_name(&self) -> String {
        format!("projects/{}/secrets/{}", self.project, self.secret)
    }

    /// `projects/P/secrets/N/versions/V`.
    pub fn version_name(&self) -> String {
        format!("{}/versions/{}", self.secret_name(), self.version)
    }
}

fn valid_locator(locator: &str) -> bool {
    GcpLocation::parse(locator).is_some()
}

/// A project listed in `gcp_projects` and a secret named with one of
/// `gcp_sm_allowed_prefixes`: the daemon's service account may read far more than tenants'
/// passwords (its own, other applications').
fn in_scope(scope: &RefScope, _: Purpose, r: &SecretRef) -> Result<(), ScopeError> {
    let Some(loc) = GcpLocation::parse(r.locator()) else {
        return Err(ScopeError::GcpName {
            allowed: scope.gcp_sm().prefixes_text(),
        });
    };
    let rule = scope.gcp_sm();
    if !rule.lists(loc.project) {
        return Err(ScopeError::GcpProject {
            listed: rule.places_text(),
        });
    }
    if !rule.admits(loc.secret) {
        return Err(ScopeError::GcpName {
            allowed: rule.prefixes_text(),
        });
    }
    Ok(())
}

/// How to reach Secret Manager. Present when `gcp_projects` lists a project.
#[derive(Debug, Clone, Default)]
pub struct GcpSmConfig {
    /// `gcp_sm_endpoint`: another endpoint than `https://secretmanager.googleapis.com`
    /// (a private or regional endpoint; the tests' protocol fake).
    pub endpoint: Option<String>,
}

#[cfg(feature = "gcp")]
fn backend(settings: &SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError> {
    Ok(settings
        .gcp
        .clone()
        .map(|c| Arc::new(GcpSmBackend::new(c)) as Arc<dyn SecretBackend>))
}

/// Built without the `gcp` feature: no backend, so a read is refused with
/// [`UNCONFIGURED`], which names the feature.
#[cfg(not(feature = "gcp"))]
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

    #[cfg(not(feature = "gcp"))]
    #[tokio::test]
    async fn without_the_gcp_feature_a_reference_is_refused_naming_it() {
        let store = crate::secrets::SecretStore::from_settings(&SecretSettings {
            gcp: Some(GcpSmConfig::default()),
            ..SecretSettings::default()
        })
        .unwrap();

        let err = store
            .read(&r("gcp-sm:projects/p/secrets/tenants-a"))
            .await
            .unwrap_err();

        assert!(
            err.to_string()
                .contains("drover was built without the gcp feature"),
            "{err}"
        );
    }

    #[test]
    fn a_locator_names_project_secret_version_and_key() {
        let loc =
            GcpLocation::parse("projects/prod-1/secrets/tenants-acme/versions/7#password").unwrap();
        let latest = GcpLocation::parse("projects/prod-1/secrets/tenants-acme").unwrap();

        assert_eq!(
            (loc.project, loc.secret, loc.version, loc.pinned, loc.key),
            ("prod-1", "tenants-acme", "7", true, Some("password"))
        );
        assert_eq!(
            loc.version_name(),
            "projects/prod-1/secrets/tenants-acme/versions/7"
        );
        assert_eq!(
            (latest.version, latest.pinned, latest.key),
            ("latest", false, None)
        );
        for bad in [
            "projects/prod-1/secrets/",
            "projects/Prod/secrets/x",
            "projects/p/secrets/a.b",
            "projects/p/secrets/x/versions/first",
            "projects/p/secrets/x#",
            "projects/p/secrets/x/extra",
            "secrets/x",
        ] {
            assert!(GcpLocation::parse(bad).is_none(), "{bad}");
            assert!(
                format!("gcp-sm:{bad}").parse::<SecretRef>().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_reference_must_be_in_a_listed_project_and_named_with_an_allowed_prefix() {
        let scope = RefScope::default().with_gcp_sm(CloudScope {
            places: vec!["prod-1".into()],
            prefixes: vec!["tenants-".into()],
        });

        let ok = scope.check(&r("gcp-sm:projects/prod-1/secrets/tenants-acme#pw"));
        let project = scope.check(&r("gcp-sm:projects/other/secrets/tenants-acme"));
        let name = scope.check(&r("gcp-sm:projects/prod-1/secrets/drover-admin"));
        let unlisted = RefScope::default().check(&r("gcp-sm:projects/prod-1/secrets/tenants-a"));

        assert_eq!(ok, Ok(()));
        assert!(project.unwrap_err().to_string().contains("gcp_projects"));
        assert!(name
            .unwrap_err()
            .to_string()
            .contains("gcp_sm_allowed_prefixes"));
        assert!(unlisted.unwrap_err().to_string().contains("none listed"));
    }
}
