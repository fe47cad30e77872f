//! `GET /v1/servers` / `drover servers list`: each provisioning server with its live
//! tenants, capacity and whether its admin connection answers right now.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ProvisionError, Provisioner};

/// How long the reachability check waits for a server: a status page must not hang on
/// one dead server.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// One provisioning server as reported.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Server)]
pub struct ServerReport {
    /// Its name.
    pub name: String,
    /// What tenants connect to.
    pub host: String,
    /// What tenants connect to.
    pub port: i32,
    /// Matched against tenant labels on placement.
    pub labels: BTreeMap<String, String>,
    /// Capacity (`null`: no limit).
    #[schema(required)]
    pub max_tenants: Option<i64>,
    /// Live tenants placed here.
    pub tenants: i64,
    /// Whether the admin connection opened (and answered) within 2 s.
    pub reachable: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Provisioner {
    /// Every server with its load and a quick connection check (all checked at once).
    pub async fn report(&self) -> Result<Vec<ServerReport>, ProvisionError> {
        let loads = self.registry.server_loads().await?;
        let mut checks = tokio::task::JoinSet::new();
        for (i, server) in self.servers.iter().enumerate() {
            let mut target = server.admin.clone();
            target.config.connect_timeout(REACH_TIMEOUT);
            let ca = server.ca_file.clone().or_else(|| self.default_ca.clone());
            checks.spawn(async move {
                let attempt = async {
                    let client = target
                        .connect(ca.as_deref())
                        .await
                        .map_err(|e| e.to_string())?;
                    client
                        .simple_query("SELECT 1")
                        .await
                        .map(drop)
                        .map_err(|e| crate::db::describe(&e))
                };
                let outcome = tokio::time::timeout(REACH_TIMEOUT, attempt)
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {REACH_TIMEOUT:?}")));
                (i, outcome.err())
            });
        }
        let mut errors = vec![None; self.servers.len()];
        while let Some(done) = checks.join_next().await {
            if let Ok((i, error)) = done {
                errors[i] = Some(error);
            }
        }
        Ok(self
            .servers
            .iter()
            .zip(errors)
            .map(|(s, checked)| {
                let error = checked.unwrap_or_else(|| Some("the check did not finish".into()));
                ServerReport {
                    name: s.name.clone(),
                    host: s.host.clone(),
                    port: s.port,
                    labels: s.labels.clone(),
                    max_tenants: s.max_tenants,
                    tenants: loads.get(&s.name).copied().unwrap_or(0),
                    reachable: error.is_none(),
                    error,
                }
            })
            .collect())
    }
}
