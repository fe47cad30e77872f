//! What a provisioner's callback does (`POST /v1/tenants/{slug}/provisioning`): the token
//! checked and spent, then the report acted on. A token is looked up by its SHA-256; one
//! that is unknown, spent, expired, superseded or issued for another tenant changes
//! nothing. A report that does not parse or names fields drover refuses is answered 422
//! before the token is spent, so the job may correct it and call again.

use std::sync::Arc;
use std::time::Instant;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::requests::{self, Operation, Request};
use super::{token_hash, Provisioner};
use crate::provision::ProvisionError;
use crate::registry::{Actor, Reached, Tenant, TenantPatch};
use crate::secrets::SecretRef;

/// How the external job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Succeeded,
    Failed,
}

/// Why the external job failed.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackFailure {
    /// What went wrong, shown as the tenant's `provisioning_error`.
    #[schema(min_length = 1, max_length = 2000)]
    pub message: String,
    /// Whether asking again may help (then drover does, on its retry schedule).
    #[serde(default)]
    pub retryable: bool,
}

/// The body of `POST /v1/tenants/{slug}/provisioning`. `succeeded` (provisioning) gives
/// where the database is and the reference of its password; fields left out keep the
/// tenant's (its derived names, the server's host and port). `failed` gives `error`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProvisioningCallback)]
pub struct CallbackBody {
    pub status: CallbackStatus,
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
    pub db_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")]
    pub db_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::secrets::secret_ref_schema)]
    pub db_secret_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CallbackFailure>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        field,
        message: message.into(),
    }
}

impl Provisioner {
    /// Acts on a callback for tenant `slug` carrying `token`; answers the tenant as it is
    /// afterwards (active, `deleted`, or still `provisioning` with its error).
    pub async fn callback(
        self: &Arc<Self>,
        slug: &str,
        token: &str,
        body: &CallbackBody,
    ) -> Result<Tenant, ProvisionError> {
        let (request, tenant) = self.authenticate(slug, token).await?;
        let patch = match (body.status, request.operation) {
            (CallbackStatus::Failed, _) => {
                if body.error.is_none() {
                    return Err(invalid("error", "required when status is failed"));
                }
                None
            }
            (CallbackStatus::Succeeded, Operation::Deprovision) => None,
            (CallbackStatus::Succeeded, Operation::Provision) => {
                Some(self.checked_report(&tenant, body)?)
            }
        };
        let client = self.control().await?;
        if !requests::spend(&**client, request.id).await? {
            return Err(ProvisionError::CallbackToken);
        }
        drop(client);
        let actor = Actor::new(&format!("provisioner:{}", request.server))?;
        match (&body.error, body.status, patch) {
            (Some(f), CallbackStatus::Failed, _) => {
                let e = ProvisionError::Reported {
                    server: request.server.clone(),
                    message: f.message.clone(),
                    retryable: f.retryable,
                };
                tracing::warn!(slug = %tenant.slug, error = %e, retryable = f.retryable, "external provisioner reported a failure");
                self.failed(&tenant, &request, &e).await;
                self.close(&request, "failed").await;
                Ok(self.registry.get_by_id(tenant.id).await.unwrap_or(tenant))
            }
            (_, _, Some(patch)) => self.activate(tenant, &request, patch, &actor).await,
            _ => {
                let payload =
                    json!({ "external": true, "server": request.server, "request_id": request.id });
                let done = self
                    .registry
                    .finish_delete(tenant.id, payload, &actor)
                    .await
                    .map_err(ProvisionError::Lookup)?;
                self.close(&request, "succeeded").await;
                tracing::info!(slug = %done.slug, "tenant deprovisioned by its external provisioner");
                Ok(done)
            }
        }
    }

    /// Whether `token` is a callback token issued for tenant `slug` (spent or not: the
    /// callback itself refuses a spent one), before its body is read.
    pub async fn check_callback(&self, slug: &str, token: &str) -> Result<(), ProvisionError> {
        self.authenticate(slug, token).await.map(drop)
    }

    /// The open request a token belongs to, if it is this tenant's: anything else is the
    /// same 401, so a caller learns nothing about other tenants' requests.
    async fn authenticate(
        &self,
        slug: &str,
        token: &str,
    ) -> Result<(Request, Tenant), ProvisionError> {
        let client = self.control().await?;
        let found = requests::by_token(&**client, &token_hash(token)).await?;
        drop(client);
        let Some(request) = found else {
            return Err(ProvisionError::CallbackToken);
        };
        let tenant = match self.registry.get_by_id(request.tenant_id).await {
            Ok(t) => t,
            Err(e) if e.is_retryable() => return Err(ProvisionError::Lookup(e)),
            Err(_) => return Err(ProvisionError::CallbackToken),
        };
        if !tenant.slug.eq_ignore_ascii_case(slug) {
            return Err(ProvisionError::CallbackToken);
        }
        Ok((request, tenant))
    }

    /// The report as a change of the tenant's connection fields, checked as a PATCH is
    /// (names, host, port) and the reference against the tenant scope.
    fn checked_report(
        &self,
        t: &Tenant,
        body: &CallbackBody,
    ) -> Result<TenantPatch, ProvisionError> {
        let patch = TenantPatch {
            db_host: body.db_host.clone(),
            db_port: body.db_port,
            db_name: body.db_name.clone(),
            db_user: body.db_user.clone(),
            db_secret_ref: body.db_secret_ref.clone(),
            ..TenantPatch::default()
        };
        patch.validate().map_err(ProvisionError::invalid)?;
        let host = patch.db_host.as_deref().unwrap_or(&t.db_host);
        if host == crate::provision::servers::PENDING_HOST {
            return Err(invalid(
                "db_host",
                "required: the server names no host for its tenants",
            ));
        }
        let reference = patch.db_secret_ref.as_deref().unwrap_or(&t.db_secret_ref);
        let r: SecretRef = reference
            .parse()
            .map_err(|e: crate::secrets::SecretRefError| invalid("db_secret_ref", e.to_string()))?;
        self.registry
            .scope()
            .check(&r)
            .map_err(|e| invalid("db_secret_ref", e.to_string()))?;
        Ok(patch)
    }

    /// Logs in with what the provisioner reported, migrates to the latest set, then stores
    /// the connection and activates. A failure is the attempt's, as a step of an admin
    /// server's job would be.
    async fn activate(
        self: &Arc<Self>,
        tenant: Tenant,
        request: &Request,
        patch: TenantPatch,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        let started = Instant::now();
        let mut reported = tenant.clone();
        apply(&mut reported, &patch);
        let outcome = match self.log_in_and_migrate(&reported).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(slug = %tenant.slug, error = %e, "the database an external provisioner reported is not usable");
                self.failed(&tenant, request, &e).await;
                self.close(request, "failed").await;
                return Err(e);
            }
        };
        self.registry
            .update(&tenant.slug, &patch, actor)
            .await
            .map_err(ProvisionError::invalid)?;
        let payload = json!({
            "version": outcome.to, "role": reported.db_user, "database": reported.db_name,
            "external": true, "server": request.server, "request_id": request.id,
            "duration_ms": started.elapsed().as_millis() as u64,
        });
        let reached = Reached {
            from: outcome.from,
            to: outcome.to,
            applied: &outcome.applied,
        };
        let done = self
            .registry
            .finish_provisioning(tenant.id, reached, payload, actor)
            .await
            .map_err(|e| ProvisionError::Registry(e.to_string()))?;
        self.close(request, "succeeded").await;
        self.metrics
            .provisioning_total
            .with_label_values(&["succeeded"])
            .inc();
        tracing::info!(slug = %done.slug, version = ?outcome.to, "tenant provisioned by its external provisioner");
        Ok(done)
    }

    /// The password behind the reported reference (read afresh), then the migration run,
    /// which is the login.
    async fn log_in_and_migrate(
        &self,
        t: &Tenant,
    ) -> Result<crate::migrate::tenant::RunOutcome, ProvisionError> {
        let r: SecretRef = t
            .db_secret_ref
            .parse()
            .map_err(|e: crate::secrets::SecretRefError| invalid("db_secret_ref", e.to_string()))?;
        self.resolver.forget_secret(&t.db_secret_ref);
        let password: SecretString = self
            .secrets
            .read(&r)
            .await
            .map_err(ProvisionError::Secret)?;
        self.migrate(t, password).await
    }

    /// Closes the request; a failure only leaves it to the expiry sweep, which finds the
    /// tenant no longer waiting.
    async fn close(&self, request: &Request, outcome: &'static str) {
        let closed = async {
            let client = self.control().await?;
            requests::finish(&**client, request.id, outcome).await?;
            Ok::<_, ProvisionError>(())
        }
        .await;
        if let Err(e) = closed {
            tracing::warn!(request = %request.id, error = %e, "could not close the provisioning request");
        }
    }
}

/// The tenant as the report would leave it.
fn apply(t: &mut Tenant, p: &TenantPatch) {
    if let Some(v) = &p.db_host {
        t.db_host.clone_from(v);
    }
    if let Some(v) = p.db_port {
        t.db_port = v;
    }
    if let Some(v) = &p.db_name {
        t.db_name.clone_from(v);
    }
    if let Some(v) = &p.db_user {
        t.db_user.clone_from(v);
    }
    if let Some(v) = &p.db_secret_ref {
        t.db_secret_ref.clone_from(v);
    }
}
