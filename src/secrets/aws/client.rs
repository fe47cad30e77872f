//! The `aws-sm:` backend: the calls to Secrets Manager through the official SDK.
//!
//! Reads ask for `AWSCURRENT` (`GetSecretValue`; the version id is the fetched version);
//! [`SecretBackend::fetch_many`] asks `BatchGetSecretValue` for up to [`BATCH_SIZE`]
//! secrets a call, a few calls in flight, and answers each reference on its own (one
//! missing secret fails only its references).
//!
//! Writes (provisioning) put a new version (`PutSecretValue`), creating the secret tagged
//! [`CREATED_TAG`] when there is none; a secret scheduled for deletion (a slug
//! deprovisioned and provisioned again within the recovery window) is restored first. A
//! `#key` reference writes a JSON object, keeping the secret's other fields. Removing
//! deletes the secret with the configured recovery window (`#key`: removes the field, and
//! the secret once no field is left). There is no compare-and-set in Secrets Manager: two
//! writers of different fields of one secret at the same moment can lose one field.
//!
//! The SDK retries throttling and transient failures itself (standard retry mode, 3
//! attempts); `aws_sm_timeout` bounds a whole call, retries included.

use std::fmt;

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::answer::{
    batch_error, find, is_not_found, is_pending_deletion, json_object, sdk_error, secret_text,
    select, Answer,
};
use super::{AwsSmLocation, AwsSmSettings, BATCH_SIZE, CREATED_TAG, SCHEME, VERSION_STAGE};
use crate::secrets::scheme::Scheme;
use crate::secrets::{BoxFuture, Fetched, SecretBackend, SecretError, SecretRef};

/// Batch calls in flight at once in [`SecretBackend::fetch_many`]: 4 × 20 secrets.
const BATCHES_IN_FLIGHT: usize = 4;

/// Where the SDK configuration comes from, asked on first use.
type Loader = Box<dyn Fn() -> ConfigLoader + Send + Sync>;

/// Secrets Manager through one SDK client, built on first use from the SDK's standard
/// chains. `Debug` shows the settings only (the client holds no secret of ours, and its
/// credentials are the SDK's business).
pub struct AwsSmBackend {
    settings: AwsSmSettings,
    loader: Loader,
    client: OnceCell<Client>,
}

impl fmt::Debug for AwsSmBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSmBackend")
            .field("settings", &self.settings)
            .field("loaded", &self.client.initialized())
            .finish()
    }
}

/// The HTTPS client every AWS call goes through: rustls with the `ring` provider, as the
/// rest of drover (the SDK's default would bring aws-lc).
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl AwsSmBackend {
    /// A backend on the SDK's standard chains: credentials (environment, profile, web
    /// identity, IMDSv2), region, and endpoint overrides (`AWS_ENDPOINT_URL…`).
    pub fn from_environment(settings: AwsSmSettings) -> Self {
        Self::from_loader(settings, || aws_config::defaults(BehaviorVersion::latest()))
    }

    /// A backend whose SDK configuration starts from `loader` (tests and benches point it
    /// at an emulator with fixed credentials); drover adds its HTTPS client and timeout.
    pub fn from_loader(
        settings: AwsSmSettings,
        loader: impl Fn() -> ConfigLoader + Send + Sync + 'static,
    ) -> Self {
        AwsSmBackend {
            settings,
            loader: Box::new(loader),
            client: OnceCell::new(),
        }
    }

    /// The client, loading the SDK configuration the first time. Without a region there is
    /// no endpoint to ask: refused as not configured (and tried again next time).
    async fn client(&self, reference: &SecretRef) -> Result<&Client, SecretError> {
        self.client
            .get_or_try_init(|| async {
                let config = (self.loader)()
                    .http_client(https_client())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(self.settings.timeout)
                            .connect_timeout(self.settings.timeout)
                            .build(),
                    )
                    .load()
                    .await;
                if config.region().is_none() {
                    return Err(SecretError::Unsupported {
                        reference: reference.to_string(),
                        scheme: SCHEME.unconfigured,
                    });
                }
                Ok(Client::new(&config))
            })
            .await
    }

    fn location(reference: &SecretRef) -> Result<AwsSmLocation<'_>, SecretError> {
        AwsSmLocation::of(reference).ok_or_else(|| SecretError::Unsupported {
            reference: reference.to_string(),
            scheme: "aws-sm (the reference is not aws-sm:NAME[#key])",
        })
    }

    /// The `AWSCURRENT` text of the secret and its version id; `Ok(None)` when there is no
    /// such secret.
    async fn current(
        &self,
        reference: &SecretRef,
        secret_id: &str,
    ) -> Result<Option<(SecretString, Option<String>)>, SecretError> {
        let answer = self
            .client(reference)
            .await?
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(VERSION_STAGE)
            .send()
            .await;
        match answer {
            Ok(out) => {
                let text = secret_text(
                    reference,
                    out.secret_string(),
                    out.secret_binary().map(|b| b.as_ref()),
                )?;
                Ok(Some((text, out.version_id().map(str::to_string))))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk_error(reference, &e)),
        }
    }

    #[tracing::instrument(name = "aws_sm_fetch", skip_all, fields(reference = %reference))]
    async fn fetch_one(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let loc = Self::location(reference)?;
        let (text, version) = self
            .current(reference, loc.secret_id)
            .await?
            .ok_or_else(|| SecretError::NotFound {
                reference: reference.to_string(),
                why: "AWS Secrets Manager has no such secret".into(),
            })?;
        let value = select(reference, &loc, &text)?;
        tracing::debug!(version = version.as_deref(), "read aws-sm secret");
        Ok(Fetched { value, version })
    }

    /// One `BatchGetSecretValue` call for up to [`BATCH_SIZE`] distinct secret ids: one
    /// answer per reference of `refs` (each `(index, reference)`), in any order.
    async fn fetch_batch(
        &self,
        refs: Vec<(usize, &SecretRef)>,
    ) -> Vec<(usize, Result<Fetched, SecretError>)> {
        let mut ids: Vec<&str> = Vec::new();
        for (_, r) in &refs {
            if let Some(loc) = AwsSmLocation::of(r) {
                if !ids.contains(&loc.secret_id) {
                    ids.push(loc.secret_id);
                }
            }
        }
        let first = refs[0].1;
        let answer = match self.client(first).await {
            Ok(client) => {
                client
                    .batch_get_secret_value()
                    .set_secret_id_list(Some(ids.iter().map(|s| s.to_string()).collect()))
                    .send()
                    .await
            }
            Err(e) => return refs.into_iter().map(|(i, _)| (i, Err(e.clone()))).collect(),
        };
        let out = match answer {
            Ok(out) => out,
            Err(e) => {
                return refs
                    .into_iter()
                    .map(|(i, r)| (i, Err(sdk_error(r, &e))))
                    .collect()
            }
        };
        let (values, errors) = (out.secret_values(), out.errors());
        refs.into_iter()
            .map(|(i, r)| {
                let answer =
                    Self::location(r).and_then(|loc| match find(loc.secret_id, values, errors) {
                        Answer::Value(entry) => {
                            let text = secret_text(
                                r,
                                entry.secret_string(),
                                entry.secret_binary().map(|b| b.as_ref()),
                            )?;
                            Ok(Fetched {
                                value: select(r, &loc, &text)?,
                                version: entry.version_id().map(str::to_string),
                            })
                        }
                        Answer::Error(e) => Err(batch_error(r, e)),
                        Answer::Missing => Err(SecretError::NotFound {
                            reference: r.to_string(),
                            why: "AWS Secrets Manager's batch answer does not mention it".into(),
                        }),
                    });
                (i, answer)
            })
            .collect()
    }

    /// Groups references into batches of at most [`BATCH_SIZE`] distinct secrets (several
    /// `#key`s of one secret share its slot) and runs them a few at a time.
    async fn fetch_batched(&self, references: &[SecretRef]) -> Vec<Result<Fetched, SecretError>> {
        let mut batches: Vec<Vec<(usize, &SecretRef)>> = Vec::new();
        let mut ids_in_last: Vec<&str> = Vec::new();
        for (i, r) in references.iter().enumerate() {
            let id = AwsSmLocation::of(r).map_or("", |l| l.secret_id);
            let new_id = !ids_in_last.contains(&id);
            if batches.is_empty() || (new_id && ids_in_last.len() == BATCH_SIZE) {
                batches.push(Vec::new());
                ids_in_last.clear();
            }
            if !ids_in_last.contains(&id) {
                ids_in_last.push(id);
            }
            if let Some(last) = batches.last_mut() {
                last.push((i, r));
            }
        }
        let mut answers: Vec<Option<Result<Fetched, SecretError>>> =
            references.iter().map(|_| None).collect();
        let calls: Vec<_> = batches.into_iter().map(|b| self.fetch_batch(b)).collect();
        let mut done = futures_util::stream::iter(calls).buffer_unordered(BATCHES_IN_FLIGHT);
        while let Some(batch) = done.next().await {
            for (i, answer) in batch {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .zip(references)
            .map(|(a, r)| {
                a.unwrap_or_else(|| {
                    Err(SecretError::Unreadable {
                        reference: r.to_string(),
                        why: "no batch answered for it".into(),
                    })
                })
            })
            .collect()
    }

    /// Stores `text` as the secret's new current version, creating the secret (tagged as
    /// drover's) when there is none and restoring it when it is scheduled for deletion.
    async fn put(
        &self,
        reference: &SecretRef,
        secret_id: &str,
        text: &SecretString,
    ) -> Result<(), SecretError> {
        let client = self.client(reference).await?;
        let put = || {
            client
                .put_secret_value()
                .secret_id(secret_id)
                .secret_string(text.expose_secret())
                .send()
        };
        let err = match put().await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if is_pending_deletion(&err) {
            client
                .restore_secret()
                .secret_id(secret_id)
                .send()
                .await
                .map_err(|e| sdk_error(reference, &e))?;
            tracing::info!(reference = %reference, "restored an aws-sm secret scheduled for deletion to write it");
            return put()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error(reference, &e));
        }
        if !is_not_found(&err) {
            return Err(sdk_error(reference, &err));
        }
        if secret_id.starts_with("arn:") {
            // An ARN names a secret that exists; drover does not create one from it.
            return Err(sdk_error(reference, &err));
        }
        client
            .create_secret()
            .name(secret_id)
            .secret_string(text.expose_secret())
            .description("Created by drover for a tenant it provisioned")
            .tags(Tag::builder().key(CREATED_TAG.0).value(CREATED_TAG.1).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.code() == Some("ResourceExistsException") {
                    SecretError::Unreadable {
                        reference: reference.to_string(),
                        why: "the secret was created by someone else while drover was writing it; try again".into(),
                    }
                } else {
                    sdk_error(reference, &e)
                }
            })
    }

    #[tracing::instrument(name = "aws_sm_write", skip_all, fields(reference = %reference))]
    async fn write_one(
        &self,
        reference: &SecretRef,
        value: &SecretString,
    ) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        let Some(key) = loc.key else {
            return self.put(reference, loc.secret_id, value).await;
        };
        let mut fields = match self.current_or_restored(reference, loc.secret_id).await? {
            Some((text, _)) => json_object(reference, &text).map_err(|_| SecretError::Denied {
                reference: reference.to_string(),
                why: "the secret holds something other than a JSON object; drover will not overwrite it to set a #key".into(),
            })?,
            None => serde_json::Map::new(),
        };
        fields.insert(key.into(), Value::String(value.expose_secret().to_string()));
        let text = SecretString::from(Value::Object(fields).to_string());
        self.put(reference, loc.secret_id, &text).await
    }

    /// [`Self::current`], restoring a secret scheduled for deletion first (its fields are
    /// what a `#key` write merges into).
    async fn current_or_restored(
        &self,
        reference: &SecretRef,
        secret_id: &str,
    ) -> Result<Option<(SecretString, Option<String>)>, SecretError> {
        match self.current(reference, secret_id).await {
            Err(SecretError::NotFound { why, .. }) if why.contains("scheduled for deletion") => {
                self.client(reference)
                    .await?
                    .restore_secret()
                    .secret_id(secret_id)
                    .send()
                    .await
                    .map_err(|e| sdk_error(reference, &e))?;
                self.current(reference, secret_id).await
            }
            other => other,
        }
    }

    #[tracing::instrument(name = "aws_sm_remove", skip_all, fields(reference = %reference))]
    async fn remove_one(&self, reference: &SecretRef) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        if let Some(key) = loc.key {
            let current = match self.current(reference, loc.secret_id).await {
                Ok(c) => c,
                Err(SecretError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some((text, _)) = current else {
                return Ok(());
            };
            let Ok(mut fields) = json_object(reference, &text) else {
                return Ok(());
            };
            if fields.remove(key).is_none() {
                return Ok(());
            }
            if !fields.is_empty() {
                let text = SecretString::from(Value::Object(fields).to_string());
                return self.put(reference, loc.secret_id, &text).await;
            }
        }
        self.delete(reference, loc.secret_id).await
    }

    /// `DeleteSecret` with the recovery window (0: at once). Already gone or already
    /// scheduled is fine.
    async fn delete(&self, reference: &SecretRef, secret_id: &str) -> Result<(), SecretError> {
        let days = self.settings.recovery_window_days;
        let call = self
            .client(reference)
            .await?
            .delete_secret()
            .secret_id(secret_id);
        let call = if days == 0 {
            call.force_delete_without_recovery(true)
        } else {
            call.recovery_window_in_days(days)
        };
        match call.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) || is_pending_deletion(&e) => Ok(()),
            Err(e) => Err(sdk_error(reference, &e)),
        }
    }
}

impl SecretBackend for AwsSmBackend {
    fn scheme(&self) -> &'static Scheme {
        &SCHEME
    }

    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move { self.fetch_one(reference).await.map(|f| f.value) })
    }

    fn fetch<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<Fetched, SecretError>> {
        Box::pin(self.fetch_one(reference))
    }

    fn fetch_many<'a>(
        &'a self,
        references: &'a [SecretRef],
    ) -> BoxFuture<'a, Vec<Result<Fetched, SecretError>>> {
        Box::pin(self.fetch_batched(references))
    }

    fn write<'a>(
        &'a self,
        reference: &'a SecretRef,
        value: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.write_one(reference, value))
    }

    fn remove<'a>(&'a self, reference: &'a SecretRef) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.remove_one(reference))
    }
}
