//! The cloud secret stores' keys (`gcp_*`, `azure_*`): where `gcp-sm:` and `azure-kv:`
//! tenant references may point ([`CloudScope`]) and how to reach the stores. Listing a
//! project (`gcp_projects`) or a vault (`azure_vaults`) is what turns a backend on.

use std::path::PathBuf;

use super::build::Builder;
use crate::secrets::cloud::parse_names;
use crate::secrets::{AzureKvConfig, CloudScope, GcpSmConfig};

/// What the cloud keys configure.
pub(super) struct CloudSecrets {
    pub gcp_scope: CloudScope,
    pub azure_scope: CloudScope,
    pub gcp: Option<GcpSmConfig>,
    pub azure: Option<AzureKvConfig>,
}

impl Builder {
    pub(super) fn cloud_secrets(&mut self) -> CloudSecrets {
        let gcp_scope = CloudScope {
            places: self.names("gcp_projects", "project id"),
            prefixes: self.parsed("gcp_sm_allowed_prefixes", |v| {
                parse_names(v, "secret name prefix", false)
            }),
        };
        let gcp_endpoint = self.endpoint("gcp_sm_endpoint");
        let azure_scope = CloudScope {
            places: self.names("azure_vaults", "vault name"),
            prefixes: self.parsed("azure_kv_allowed_prefixes", |v| {
                parse_names(v, "secret name prefix", false)
            }),
        };
        let azure_endpoint = self.endpoint("azure_kv_endpoint");
        let ca_file = self
            .take("azure_kv_ca_file")
            .map(|r| PathBuf::from(r.value));
        CloudSecrets {
            gcp: (!gcp_scope.places.is_empty()).then_some(GcpSmConfig {
                endpoint: gcp_endpoint,
            }),
            azure: (!azure_scope.places.is_empty()).then_some(AzureKvConfig {
                endpoint: azure_endpoint,
                ca_file,
            }),
            gcp_scope,
            azure_scope,
        }
    }

    /// A comma-separated list of names; unset or empty: none.
    fn names(&mut self, key: &str, what: &str) -> Vec<String> {
        self.optional(key, |v| parse_names(v, what, true))
            .unwrap_or_default()
    }

    /// An http(s) URL without credentials, query or fragment.
    fn endpoint(&mut self, key: &str) -> Option<String> {
        self.optional(key, |v| {
            let url = url::Url::parse(v).map_err(|_| "expected an http(s) URL".to_string())?;
            let plain = matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none()
                && url.fragment().is_none();
            if plain {
                Ok(v.trim_end_matches('/').to_string())
            } else {
                Err("expected an http(s) URL without credentials, query or fragment, e.g. https://secretmanager.example.internal".into())
            }
        })
    }
}
