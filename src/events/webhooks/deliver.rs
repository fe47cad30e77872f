//! The `webhook-worker` task: sends due deliveries from the outbox, on every replica.
//!
//! ```text
//!  loop: claim due rows (SKIP LOCKED, lease = timeout + margin) ─► commit
//!        ─► one task per delivery: read event + secret, sign, POST (timeout, bounded read)
//!        ─► record: delivered | retry later (backoff + jitter) | dead (too old)
//!  wakes: a `drover_events` notification, a finished send, or every second
//! ```
//!
//! Isolation: at most [`Limits::in_flight`] sends at once and [`Limits::per_webhook`] per
//! subscription, each bounded by `webhook_timeout`; a hanging receiver holds a few slots
//! of its own subscription for at most the timeout and never a control-DB transaction, so
//! waves and other subscribers carry on. On shutdown the worker stops claiming and gives
//! in-flight sends the grace period; an unfinished one is sent again later, with the same id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::outbox::{self, Backoff, Capacity, Claim, Outcome, Recorded};
use super::target::{refusal_in, GuardedResolver, Policy};
use super::{signature, Format};
use crate::events::notify::Wake;
use crate::events::{feed, EventsError};
use crate::metrics::Metrics;
use crate::secrets::{RefScope, SecretRef, SecretStore};

/// The most of a receiver's answer that is read (and dropped).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest wait between two claims when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(1);

/// How much the worker does at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub in_flight: usize,
    pub per_webhook: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            in_flight: 64,
            per_webhook: 8,
        }
    }
}

/// Everything a send needs.
pub struct Sender {
    pub pool: Pool,
    pub secrets: SecretStore,
    pub http: Clients,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    pub timeout: Duration,
    pub instance: String,
    /// The webhook scope each key reference is checked against before it is read.
    pub scope: RefScope,
    pub limits: Limits,
}

/// The HTTP clients for receivers, both resolving through the target policy: `strict`
/// for URLs on one of the control DB's ports (its addresses refused even inside the
/// allowed networks), `normal` for the rest.
pub struct Clients {
    pub policy: Arc<Policy>,
    normal: reqwest::Client,
    strict: reqwest::Client,
}

impl Clients {
    /// Clients for receivers: no redirects (a signed body must not be replayed to another
    /// host, nor reach an address the policy did not check), no proxy (the connected
    /// address is the checked one), the request timeout covering connect, send and the
    /// bounded read.
    pub fn new(timeout: Duration, policy: Policy) -> Result<Clients, reqwest::Error> {
        let policy = Arc::new(policy);
        let build = |strict: bool| {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver {
                    policy: policy.clone(),
                    strict,
                }))
                .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Clients {
            normal: build(false)?,
            strict: build(true)?,
            policy,
        })
    }

    /// The client for `url`, or the refusal of its literal address.
    fn for_url(&self, url: &str) -> Result<&reqwest::Client, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        self.policy
            .check_literal(&parsed)
            .map_err(|r| r.to_string())?;
        let port = parsed.port_or_known_default().unwrap_or(0);
        Ok(if self.policy.is_control_db_port(port) {
            &self.strict
        } else {
            &self.normal
        })
    }
}

impl Sender {
    /// POSTs one signed body; `Failed` carries the status and a short reason.
    pub async fn post(
        &self,
        url: &str,
        event_type: &str,
        delivery_id: Uuid,
        secret: &secrecy::SecretString,
        body: Vec<u8>,
    ) -> Outcome {
        let ts = chrono::Utc::now().timestamp();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut put = |name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.insert(name, v);
            }
        };
        put("x-drover-event", event_type.to_string());
        put("x-drover-delivery", delivery_id.to_string());
        put("x-drover-timestamp", ts.to_string());
        put("x-drover-signature", signature(secret, ts, &body));
        let client = match self.http.for_url(url) {
            Ok(c) => c,
            Err(error) => return Outcome::Refused { error },
        };
        let sent = client.post(url).headers(headers).body(body).send().await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if let Some(r) = refusal_in(&e) {
                    return Outcome::Refused {
                        error: r.to_string(),
                    };
                }
                return Outcome::Failed {
                    status: None,
                    error: describe(e),
                };
            }
        };
        let code = resp.status();
        let status = code.as_u16();
        // Drain at most MAX_RESPONSE_BYTES so the connection can be reused; a receiver
        // answering with gigabytes costs nothing. The body itself is never kept: whatever
        // answered (an internal service, a metadata endpoint) must not have its words
        // shown to viewers through `last_error`.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match resp.chunk().await {
                Ok(Some(c)) => read += c.len(),
                _ => break,
            }
        }
        if code.is_success() {
            Outcome::Delivered { status }
        } else {
            Outcome::Failed {
                status: Some(status),
                error: format!(
                    "receiver answered {status} {}",
                    code.canonical_reason().unwrap_or("")
                )
                .trim_end()
                .to_string(),
            }
        }
    }

    /// Sends one claimed delivery and records the outcome.
    async fn deliver(&self, claim: Claim) {
        let outcome = match self.prepare(&claim).await {
            Ok((body, secret)) => {
                self.post(&claim.url, &claim.event_type, claim.id, &secret, body)
                    .await
            }
            Err(error) => Outcome::Failed {
                status: None,
                error,
            },
        };
        if let Outcome::Refused { error } = &outcome {
            tracing::warn!(webhook = %claim.webhook, delivery = %claim.id, reason = %error, "webhook target refused");
        }
        let recorded = async {
            let client = self.pool.get().await.map_err(EventsError::from)?;
            outbox::record(&**client, &claim, &outcome, &self.backoff).await
        }
        .await;
        match recorded {
            Ok(r) => {
                let label = match r {
                    Recorded::Delivered => "delivered",
                    Recorded::Retrying => "failed",
                    Recorded::Dead => "dead",
                    Recorded::Superseded => "superseded",
                };
                self.metrics
                    .webhook_deliveries_total
                    .with_label_values(&[label])
                    .inc();
                if r == Recorded::Dead {
                    tracing::warn!(webhook = %claim.webhook, delivery = %claim.id, "webhook delivery gave up: dead");
                }
            }
            // The lease runs out and the delivery is sent again, with the same id.
            Err(e) => {
                tracing::warn!(error = %e, delivery = %claim.id, "could not record a webhook delivery")
            }
        }
    }

    /// The signed delivery's body and key, or why it cannot be sent now (the reason is
    /// recorded as the attempt's error).
    async fn prepare(&self, claim: &Claim) -> Result<(Vec<u8>, secrecy::SecretString), String> {
        // An unknown stored format is never sent as another one: each attempt fails, loudly,
        // until the delivery is dead or a replica that knows the format sends it.
        let format = Format::stored(&claim.format).map_err(|e| {
            tracing::error!(webhook = %claim.webhook, delivery = %claim.id, error = %e, "webhook delivery failed");
            e.to_string()
        })?;
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let event = feed::get(&**client, claim.event_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("event {} no longer exists", claim.event_id))?;
        drop(client);
        let r: SecretRef = claim
            .secret_ref
            .parse()
            .map_err(|e: crate::secrets::SecretRefError| e.to_string())?;
        self.scope
            .check_webhook(&r)
            .map_err(|rule| format!("secret {r} refused: {rule}"))?;
        let secret = self.secrets.read(&r).await.map_err(|e| e.to_string())?;
        Ok((format.render(&event, claim.id), secret))
    }

    async fn claim(
        &self,
        free: usize,
        busy: &HashMap<Uuid, i32>,
    ) -> Result<Vec<Claim>, EventsError> {
        let busy: Vec<(Uuid, i32)> = busy
            .iter()
            .map(|(id, n)| (*id, (self.limits.per_webhook - n).max(0)))
            .collect();
        let cap = Capacity {
            total: free as i64,
            per_webhook: self.limits.per_webhook,
            busy: &busy,
        };
        let client = self.pool.get().await?;
        // The lease outlives the send (bounded by the timeout) and the record: it only
        // expires for a replica that died or lost the control DB.
        let lease = self.timeout + Duration::from_secs(5);
        outbox::claim(&**client, &self.instance, &cap, lease).await
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        // Without the URL: it is the subscription's, shown by GET anyway, and may be long.
        e.without_url().to_string()
    }
}

/// Runs until `shutdown` fires, then waits up to `grace` for sends in flight.
pub async fn run(sender: Arc<Sender>, wake: Wake, shutdown: CancellationToken, grace: Duration) {
    let mut woken = wake.subscribe();
    let mut tasks: JoinSet<Uuid> = JoinSet::new();
    let mut busy: HashMap<Uuid, i32> = HashMap::new();
    loop {
        let free = sender.limits.in_flight.saturating_sub(tasks.len());
        if free > 0 {
            match sender.claim(free, &busy).await {
                Ok(claims) => {
                    for c in claims {
                        *busy.entry(c.webhook_id).or_default() += 1;
                        let s = sender.clone();
                        tasks.spawn(async move {
                            let hook = c.webhook_id;
                            s.deliver(c).await;
                            hook
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
            }
        }
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                finished(&mut busy, done);
                while let Some(done) = tasks.try_join_next() {
                    finished(&mut busy, done);
                }
            }
            _ = woken.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!("webhook sends still running after the grace period; they are sent again later with the same delivery id");
        tasks.abort_all();
    }
}

fn finished(busy: &mut HashMap<Uuid, i32>, done: Result<Uuid, tokio::task::JoinError>) {
    if let Ok(hook) = done {
        if let Some(n) = busy.get_mut(&hook) {
            *n -= 1;
            if *n <= 0 {
                busy.remove(&hook);
            }
        }
    }
}
