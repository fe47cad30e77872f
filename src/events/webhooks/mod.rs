//! Webhook subscriptions (`control_plane.webhooks`) and what a delivery looks like on the wire
//! (docs/design.md#events-and-webhooks): the body, the `X-Drover-*` headers and the HMAC
//! signature.
//!
//! A subscription stores only a secret *reference* for its HMAC key; the key is read
//! through the secret store when a delivery is signed and never written anywhere.
//! Sending and retrying live in [`deliver`]; the outbox SQL in [`outbox`]. Body formats
//! are [`FORMATS`] below, one file each (`format.rs` says what a format declares and how
//! to add one).

pub mod deliver;
mod format;
pub mod outbox;
pub mod provisioners;
pub mod target;

// The formats: one file each, registered here and in `FORMATS`.
mod json;
mod slack;

/// Every registered body format, in the order messages list them; the first is the
/// default.
pub const FORMATS: &[&Format] = &[&json::FORMAT, &slack::FORMAT];

pub use format::{Format, UnknownFormat};
pub use slack::summary;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{Event, EventsError, TypePattern};
use crate::secrets::{RefScope, SecretRef, SecretStore};

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhook)]
pub struct WebhookRequest {
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: String,
    #[schema(min_items = 1, max_items = 64)]
    pub events: Vec<String>,
    #[schema(schema_with = crate::secrets::secret_ref_schema)]
    pub secret_ref: String,
    #[serde(default)]
    pub format: Option<&'static Format>,
}

/// Delivery counts of one subscription.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
}

/// A subscription as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret_ref: String,
    // As stored: a format this drover does not know is shown as it is, and its deliveries
    // fail naming it. (A plain comment: a doc comment would change the API document.)
    #[schema(value_type = Format)]
    pub format: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub deliveries: DeliveryCounts,
    /// The most recent failed attempt's error, if any.
    #[schema(required)]
    pub last_error: Option<String>,
}

impl WebhookView {
    /// The view for a reader who may not see receiver credentials (every role below
    /// admin): the URL as [`display_url`] shows it.
    pub fn redacted(mut self) -> WebhookView {
        self.url = display_url(&self.url);
        self
    }
}

/// A receiver URL fit to show: no user or password, no query (`?…`), and long path
/// segments cut short, because some receivers (Slack's incoming webhooks among them)
/// carry their credential in the path.
pub fn display_url(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return "(unparseable URL)".into();
    };
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let had_query = u.query().is_some();
    u.set_query(None);
    u.set_fragment(None);
    let path: Vec<String> = u
        .path()
        .split('/')
        .map(|seg| {
            if seg.chars().count() >= 16 {
                format!("{}…", seg.chars().take(4).collect::<String>())
            } else {
                seg.to_string()
            }
        })
        .collect();
    let origin = u.origin().ascii_serialization();
    format!(
        "{origin}{}{}",
        path.join("/"),
        if had_query { "?…" } else { "" }
    )
}

/// `POST /v1/webhooks/{name}/test`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookTest)]
pub struct TestResult {
    pub delivery_id: Uuid,
    pub ok: bool,
    #[schema(required)]
    pub status: Option<u16>,
    #[schema(required)]
    pub error: Option<String>,
}

/// A validated subscription.
struct Valid {
    name: String,
    url: String,
    events: Vec<String>,
    secret_ref: SecretRef,
    format: &'static Format,
}

fn invalid(field: &'static str, message: impl Into<String>) -> EventsError {
    EventsError::Invalid {
        field,
        message: message.into(),
    }
}

fn validate_name(name: &str) -> Result<(), EventsError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            "1-63 lower-case letters, digits and inner hyphens",
        ))
    }
}

fn validate_url(url: &str, policy: &target::Policy) -> Result<(), EventsError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("url", "must be an http:// or https:// URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "needs a host"));
    }
    // Credentials in the URL would be a secret stored in the control DB and shown by GET.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "url",
            "must not carry credentials; receivers authenticate drover by the signature",
        ));
    }
    if url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return Err(invalid("url", "at most 2048 characters, no whitespace"));
    }
    // A host name is checked when it is resolved, at every send.
    policy
        .check_literal(&parsed)
        .map_err(|r| invalid("url", r.to_string()))
}

/// The HMAC key reference: well-formed, inside the webhook scope (`file:` under
/// `webhook_secret_prefix`; never drover's own configuration or other secrets of the
/// host), and readable now.
async fn validate_secret_ref(
    secrets: &SecretStore,
    scope: &RefScope,
    s: &str,
) -> Result<SecretRef, EventsError> {
    let r: SecretRef = s
        .parse()
        .map_err(|e: crate::secrets::SecretRefError| invalid("secret_ref", e.to_string()))?;
    scope
        .check_webhook(&r)
        .map_err(|e| invalid("secret_ref", e.to_string()))?;
    secrets
        .read(&r)
        .await
        .map_err(|e| invalid("secret_ref", e.to_string()))?;
    Ok(r)
}

async fn validate(
    secrets: &SecretStore,
    scope: &RefScope,
    policy: &target::Policy,
    req: &WebhookRequest,
) -> Result<Valid, EventsError> {
    validate_name(&req.name)?;
    validate_url(&req.url, policy)?;
    if req.events.is_empty() || req.events.len() > 64 {
        return Err(invalid("events", "list 1 to 64 event types or prefixes"));
    }
    let mut events: Vec<String> = Vec::new();
    for e in &req.events {
        let p = TypePattern::parse("events", e)?.to_text();
        if !events.contains(&p) {
            events.push(p);
        }
    }
    let secret_ref = validate_secret_ref(secrets, scope, &req.secret_ref).await?;
    Ok(Valid {
        name: req.name.clone(),
        url: req.url.clone(),
        events,
        secret_ref,
        format: req.format.unwrap_or(FORMATS[0]),
    })
}

const VIEW: &str =
    "SELECT w.name, w.url, w.events, w.secret_ref, w.format, w.created_by, w.created_at, \
       coalesce(c.pending, 0) AS pending, coalesce(c.delivered, 0) AS delivered, \
       coalesce(c.dead, 0) AS dead, \
       (SELECT d.last_error FROM control_plane.webhook_deliveries d \
         WHERE d.webhook_id = w.id AND d.last_error IS NOT NULL \
           AND (d.state <> 'delivered') \
         ORDER BY d.next_attempt_at DESC LIMIT 1) AS last_error \
     FROM control_plane.webhooks w \
     LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE state = 'pending') AS pending, \
                               count(*) FILTER (WHERE state = 'delivered') AS delivered, \
                               count(*) FILTER (WHERE state = 'dead') AS dead \
                        FROM control_plane.webhook_deliveries WHERE webhook_id = w.id) c ON true";

fn view_from_row(r: &tokio_postgres::Row) -> Result<WebhookView, EventsError> {
    Ok(WebhookView {
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        events: r.try_get("events")?,
        secret_ref: r.try_get("secret_ref")?,
        format: r.try_get("format")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        deliveries: DeliveryCounts {
            pending: r.try_get("pending")?,
            delivered: r.try_get("delivered")?,
            dead: r.try_get("dead")?,
        },
        last_error: r.try_get("last_error")?,
    })
}

/// Creates a subscription (and its `webhook.created` event: give `client` a transaction
/// so both commit together); it receives events written after it exists.
pub async fn create(
    client: &impl GenericClient,
    secrets: &SecretStore,
    scope: &RefScope,
    policy: &target::Policy,
    req: &WebhookRequest,
    actor: &str,
    on_behalf_of: Option<&str>,
) -> Result<WebhookView, EventsError> {
    const SQL: &str =
        "INSERT INTO control_plane.webhooks (name, url, events, secret_ref, format, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    let v = validate(secrets, scope, policy, req).await?;
    // Written before the subscription exists, so it is not one of the events it receives.
    let payload = serde_json::json!({ "webhook": v.name, "url": display_url(&v.url),
        "events": v.events, "format": v.format.name });
    crate::audit::record(client, "webhook.created", actor, on_behalf_of, payload).await?;
    client
        .execute(
            SQL,
            &[
                &v.name,
                &v.url,
                &v.events,
                &v.secret_ref.to_string(),
                &v.format.name,
                &actor,
            ],
        )
        .await
        .map_err(|e| match EventsError::from(e) {
            EventsError::Duplicate(_) => EventsError::Duplicate(v.name.clone()),
            other => other,
        })?;
    get(client, &v.name).await
}

/// Every subscription by name.
pub async fn list(client: &impl GenericClient) -> Result<Vec<WebhookView>, EventsError> {
    let sql = format!("{VIEW} ORDER BY w.name");
    let rows = client.query(sql.as_str(), &[]).await?;
    rows.iter().map(view_from_row).collect()
}

/// One subscription.
pub async fn get(client: &impl GenericClient, name: &str) -> Result<WebhookView, EventsError> {
    let sql = format!("{VIEW} WHERE w.name = $1");
    let row = client.query_opt(sql.as_str(), &[&name]).await?;
    row.as_ref()
        .map(view_from_row)
        .transpose()?
        .ok_or_else(|| EventsError::NotFound(name.to_string()))
}

/// Deletes a subscription and its deliveries (pending ones are not sent), with its
/// `webhook.deleted` event (give `client` a transaction so both commit together).
pub async fn delete(
    client: &impl GenericClient,
    name: &str,
    actor: &str,
    on_behalf_of: Option<&str>,
) -> Result<(), EventsError> {
    const SQL: &str = "DELETE FROM control_plane.webhooks WHERE name = $1 RETURNING url";
    let Some(row) = client.query_opt(SQL, &[&name]).await? else {
        return Err(EventsError::NotFound(name.to_string()));
    };
    let url: String = row.try_get("url")?;
    let payload = serde_json::json!({ "webhook": name, "url": display_url(&url) });
    crate::audit::record(client, "webhook.deleted", actor, on_behalf_of, payload).await?;
    Ok(())
}

/// The body of a delivery in the subscription's stored `format`; a format this drover
/// does not know is an error naming it, never a body in another format.
pub fn body(event: &Event, delivery_id: Uuid, format: &str) -> Result<Vec<u8>, UnknownFormat> {
    Ok(Format::stored(format)?.render(event, delivery_id))
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() {
        // Known answer from Python: hmac.new(b"key", b"1700000000.{}", "sha256").hexdigest()
        let sig = signature(&SecretString::from("key"), 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(
            sig,
            signature(&SecretString::from("key"), 1_700_000_001, b"{}")
        );
    }

    #[test]
    fn urls_must_be_http_without_credentials() {
        let open = target::Policy {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
            control_db: Vec::new(),
        };
        let validate_url = |u: &str| super::validate_url(u, &open);
        assert!(validate_url("https://hooks.example.com/x").is_ok());
        assert!(validate_url("http://127.0.0.1:9000/").is_ok());
        assert!(super::validate_url("http://127.0.0.1:9000/", &target::Policy::default()).is_err());
        for bad in [
            "ftp://x/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://u:p@x/",
            "nope",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_shown_url_has_no_credentials_query_or_long_path_tokens() {
        assert_eq!(
            display_url("https://user:pa55@hooks.example.com:8443/in/events?token=abc"),
            "https://hooks.example.com:8443/in/events?…"
        );
        assert_eq!(
            display_url("https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"),
            "https://hooks.slack.com/services/T0000/B0000/XXXX…"
        );
        assert_eq!(display_url("not a url"), "(unparseable URL)");
    }

    #[test]
    fn names_follow_the_slug_rules() {
        assert!(validate_name("ops-slack").is_ok());
        for bad in ["", "-a", "A", "a_b", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
