//! `GET /v1/servers` / `drover servers list`: each provisioning server with its live
//! tenants, capacity and whether its admin connection answered when last tried (by the
//! background probe, [`super::probe`], a few seconds ago at most).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ProvisionError, Provisioner};

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
    /// Whether the admin connection opened (and answered within 2 s) when last tried: by
    /// the background probe every 5 s, or by a provisioning job.
    pub reachable: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When that answer was seen (`null` before the first probe).
    #[serde(default)]
    #[schema(required)]
    pub checked_at: Option<DateTime<Utc>>,
}

impl Provisioner {
    /// Every server with its load and its last answer (see [`super::probe`]): no
    /// connection to any server is made here.
    pub async fn report(&self) -> Result<Vec<ServerReport>, ProvisionError> {
        let loads = self.registry.server_loads().await?;
        let reach = self.reach.current().await;
        Ok(self
            .servers
            .iter()
            .zip(reach)
            .map(|(s, reach)| {
                let (error, checked_at) = match reach {
                    Some(r) => (r.error, Some(r.at)),
                    None => (Some("not checked yet".to_string()), None),
                };
                ServerReport {
                    name: s.name.clone(),
                    host: s.host.clone(),
                    port: s.port,
                    labels: s.labels.clone(),
                    max_tenants: s.max_tenants,
                    tenants: loads.get(&s.name).copied().unwrap_or(0),
                    reachable: error.is_none(),
                    error,
                    checked_at,
                }
            })
            .collect())
    }
}
