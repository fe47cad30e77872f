//! The outbox table `webhook_deliveries`: claiming due deliveries and recording what
//! happened, and the delivery counts `/metrics` and the console show. Rows are written by
//! the `events_after_insert` trigger (control-migrations/V10), in the transaction that
//! writes the event.
//!
//! A claim is a lease: it adds an attempt and pushes `next_attempt_at` past the send
//! timeout, then commits, so no transaction is open while the receiver is called. A
//! replica that dies mid-send leaves the delivery due again when the lease ends, and the
//! next claimer sends it with the same id. Results are recorded only by the holder of the
//! latest claim (`attempts` unchanged), so a late answer from an expired lease cannot
//! overwrite a newer one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::events::EventsError;

/// A claimed delivery and where it goes.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: i64,
    pub event_type: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub webhook: String,
    pub url: String,
    pub secret_ref: String,
    pub format: String,
}

/// What this replica may take now.
pub struct Capacity<'a> {
    /// Deliveries in total.
    pub total: i64,
    /// Deliveries per subscription when it has none in flight here.
    pub per_webhook: i32,
    /// Subscriptions with deliveries in flight here, and how many more each may take.
    pub busy: &'a [(Uuid, i32)],
}

/// Claims up to `cap.total` due deliveries, oldest event first within each subscription,
/// at most `per_webhook` in flight per subscription, skipping rows other replicas hold.
pub async fn claim(
    client: &impl GenericClient,
    claimer: &str,
    cap: &Capacity<'_>,
    lease: Duration,
) -> Result<Vec<Claim>, EventsError> {
    const SQL: &str =
        "WITH busy AS (SELECT * FROM unnest($1::uuid[], $2::int[]) AS b(webhook_id, free)), \
         picked AS ( \
           SELECT c.id FROM control_plane.webhooks w \
           CROSS JOIN LATERAL ( \
             SELECT d.id FROM control_plane.webhook_deliveries d \
             WHERE d.webhook_id = w.id AND d.state = 'pending' AND d.next_attempt_at <= now() \
             ORDER BY d.next_attempt_at, d.event_id \
             LIMIT coalesce((SELECT free FROM busy WHERE busy.webhook_id = w.id), $3::int) \
             FOR UPDATE OF d SKIP LOCKED) c \
           LIMIT $4) \
         UPDATE control_plane.webhook_deliveries d \
            SET attempts = d.attempts + 1, claimed_by = $5, \
                next_attempt_at = now() + make_interval(secs => $6) \
           FROM picked, control_plane.webhooks w \
          WHERE d.id = picked.id AND w.id = d.webhook_id \
         RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.created_at, \
                   w.name, w.url, w.secret_ref, w.format";
    let ids: Vec<Uuid> = cap.busy.iter().map(|b| b.0).collect();
    let free: Vec<i32> = cap.busy.iter().map(|b| b.1).collect();
    let rows = client
        .query(
            SQL,
            &[
                &ids,
                &free,
                &cap.per_webhook,
                &cap.total,
                &claimer,
                &lease.as_secs_f64(),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Claim {
                id: r.try_get("id")?,
                webhook_id: r.try_get("webhook_id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
                webhook: r.try_get("name")?,
                url: r.try_get("url")?,
                secret_ref: r.try_get("secret_ref")?,
                format: r.try_get("format")?,
            })
        })
        .collect()
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// A non-2xx answer, a timeout or a local problem (unreadable secret); `status` when
    /// the receiver answered.
    Failed { status: Option<u16>, error: String },
    /// The target's address is one webhooks may not reach: `dead` at once, never retried
    /// (the answer would be the same).
    Refused { error: String },
}

/// What recording a failure decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Delivered,
    Retrying,
    Dead,
    /// The lease had passed to another claim; nothing was written.
    Superseded,
}

/// Retry policy: exponential from `first`, at most `cap` apart, jittered to 50-100 %,
/// `dead` once the delivery is older than `give_up_after`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
    pub give_up_after: Duration,
}

/// Records the attempt `claim` made.
pub async fn record(
    client: &impl GenericClient,
    claim: &Claim,
    outcome: &Outcome,
    backoff: &Backoff,
) -> Result<Recorded, EventsError> {
    const DELIVERED: &str = "UPDATE control_plane.webhook_deliveries \
         SET state = 'delivered', last_status = $3, finished_at = now(), claimed_by = NULL \
         WHERE id = $1 AND attempts = $2 AND state = 'pending'";
    // $4: first delay, $5: cap, $6: give up after (seconds).
    const FAILED: &str = "UPDATE control_plane.webhook_deliveries SET \
           last_status = $3, last_error = $7, claimed_by = NULL, \
           state = CASE WHEN now() - created_at >= make_interval(secs => $6) THEN 'dead' ELSE 'pending' END, \
           finished_at = CASE WHEN now() - created_at >= make_interval(secs => $6) THEN now() END, \
           next_attempt_at = now() + make_interval(secs => \
               least($5, $4 * power(2, least(attempts - 1, 30))) * (0.5 + random() / 2)) \
         WHERE id = $1 AND attempts = $2 AND state = 'pending' RETURNING state";
    let (status, error, give_up_after) = match outcome {
        Outcome::Delivered { status } => {
            let n = client
                .execute(DELIVERED, &[&claim.id, &claim.attempts, &(*status as i32)])
                .await?;
            return Ok(if n == 1 {
                Recorded::Delivered
            } else {
                Recorded::Superseded
            });
        }
        Outcome::Failed { status, error } => (*status, error, backoff.give_up_after),
        // Giving up after zero seconds: dead on the first refusal.
        Outcome::Refused { error } => (None, error, Duration::ZERO),
    };
    let error: String = error.chars().take(500).collect();
    let row = client
        .query_opt(
            FAILED,
            &[
                &claim.id,
                &claim.attempts,
                &status.map(i32::from),
                &backoff.first.as_secs_f64(),
                &backoff.cap.as_secs_f64(),
                &give_up_after.as_secs_f64(),
                &error,
            ],
        )
        .await?;
    Ok(match row {
        None => Recorded::Superseded,
        Some(r) if r.try_get::<_, &str>("state")? == "dead" => Recorded::Dead,
        Some(_) => Recorded::Retrying,
    })
}

/// Age of the oldest pending delivery in seconds (0 when none), for the metrics.
pub async fn oldest_pending_age(client: &impl GenericClient) -> Result<f64, EventsError> {
    const SQL: &str =
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age \
         FROM control_plane.webhook_deliveries WHERE state = 'pending'";
    Ok(client.query_one(SQL, &[]).await?.try_get("age")?)
}

/// Dead deliveries in total, for the metrics.
pub async fn dead_count(client: &impl GenericClient) -> Result<i64, EventsError> {
    const SQL: &str =
        "SELECT count(*) AS n FROM control_plane.webhook_deliveries WHERE state = 'dead'";
    Ok(client.query_one(SQL, &[]).await?.try_get("n")?)
}

/// One subscription's pending deliveries, for the console.
#[derive(Debug, Clone)]
pub struct PendingSummary {
    /// The subscription's name.
    pub webhook: String,
    /// Pending deliveries that failed at least once (waiting for their next attempt). A
    /// first attempt in flight has `attempts = 1` already, so the count reads the recorded
    /// error, not the attempt counter.
    pub retrying: i64,
    /// Seconds since the oldest pending delivery was written (`None`: nothing pending).
    pub oldest_pending_secs: Option<f64>,
}

/// A delivery whose last attempt failed.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    /// The subscription's name.
    pub webhook: String,
    pub event_type: String,
    /// Given up (state `dead`) rather than waiting for a retry.
    pub dead: bool,
    pub attempts: i32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<i32>,
    pub error: String,
    /// When it gave up, or when it is tried next.
    pub at: DateTime<Utc>,
}

/// Every subscription's pending deliveries (subscriptions with none included).
pub async fn pending_by_webhook(
    client: &impl GenericClient,
) -> Result<Vec<PendingSummary>, EventsError> {
    const SQL: &str = "SELECT w.name, \
           count(d.id) FILTER (WHERE d.state = 'pending' AND d.last_error IS NOT NULL) AS retrying, \
           extract(epoch FROM now() - min(d.created_at) FILTER (WHERE d.state = 'pending'))::float8 AS oldest \
         FROM control_plane.webhooks w \
         LEFT JOIN control_plane.webhook_deliveries d ON d.webhook_id = w.id \
         GROUP BY w.name";
    let mut out = Vec::new();
    for r in client.query(SQL, &[]).await? {
        out.push(PendingSummary {
            webhook: r.try_get("name")?,
            retrying: r.try_get("retrying")?,
            oldest_pending_secs: r.try_get("oldest")?,
        });
    }
    Ok(out)
}

/// The `per_webhook` newest failed deliveries of every subscription, by name, newest first.
pub async fn last_failures(
    client: &impl GenericClient,
    per_webhook: i64,
) -> Result<Vec<DeliveryFailure>, EventsError> {
    const SQL: &str = "SELECT w.name, f.event_type, f.state, f.attempts, f.last_status, \
           f.last_error, f.at \
         FROM control_plane.webhooks w CROSS JOIN LATERAL ( \
           SELECT d.event_type, d.state, d.attempts, d.last_status, d.last_error, \
             coalesce(d.finished_at, d.next_attempt_at) AS at \
           FROM control_plane.webhook_deliveries d \
           WHERE d.webhook_id = w.id AND d.state <> 'delivered' AND d.last_error IS NOT NULL \
           ORDER BY d.next_attempt_at DESC LIMIT $1) f \
         ORDER BY w.name, f.at DESC";
    let mut out = Vec::new();
    for r in client.query(SQL, &[&per_webhook]).await? {
        let state: String = r.try_get("state")?;
        out.push(DeliveryFailure {
            webhook: r.try_get("name")?,
            event_type: r.try_get("event_type")?,
            dead: state == "dead",
            attempts: r.try_get("attempts")?,
            status: r.try_get("last_status")?,
            error: r.try_get("last_error")?,
            at: r.try_get("at")?,
        });
    }
    Ok(out)
}

/// Deletes at most `batch` deliveries in `state` (`delivered` or `dead`) that finished more
/// than `older_than` ago, oldest first (the retention task's step); returns how many.
/// Pending deliveries are never touched.
pub async fn prune(
    client: &impl GenericClient,
    state: &'static str,
    older_than: Duration,
    batch: i64,
) -> Result<u64, crate::db::DbError> {
    const SQL: &str = "DELETE FROM control_plane.webhook_deliveries WHERE id IN \
         (SELECT id FROM control_plane.webhook_deliveries \
          WHERE state = $1 AND state IN ('delivered', 'dead') \
            AND finished_at < now() - make_interval(secs => $2) ORDER BY finished_at LIMIT $3)";
    Ok(client
        .execute(SQL, &[&state, &older_than.as_secs_f64(), &batch])
        .await?)
}
