//! The table `provision_requests` (control-migrations/V24): an external provisioner's
//! requests, as an outbox (claimed with SKIP LOCKED under a lease, sent again with the same
//! id until answered 2xx) and as the record of each request's single-use callback token
//! (its SHA-256 only).
//!
//! ```text
//!  open ──► (sent, retried) ──► callback uses the token ──► succeeded | failed
//!    │                                      expires_at passed ──► expired
//!    └ a newer request for the tenant ──► superseded (its token is refused)
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::registry::RegistryError;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Provision,
    Deprovision,
}

impl Operation {
    /// As stored, and the `operation` of error events.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Provision => "provision",
            Operation::Deprovision => "deprovision",
        }
    }

    fn parse(s: &str) -> Operation {
        if s == "deprovision" {
            Operation::Deprovision
        } else {
            Operation::Provision
        }
    }
}

/// One request as a callback or the expiry sweep sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub operation: Operation,
    pub server: String,
    pub event_id: i64,
    pub attempt: u32,
    pub expires_at: DateTime<Utc>,
}

/// A request claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub request: Request,
    /// Sends so far, this one included: fences the record of its outcome.
    pub sends: i32,
}

const COLS: &str = "id, tenant_id, operation, server, event_id, attempt, expires_at";

fn from_row(r: &tokio_postgres::Row) -> Result<Request, RegistryError> {
    let op: String = r.try_get("operation")?;
    let attempt: i32 = r.try_get("attempt")?;
    Ok(Request {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        operation: Operation::parse(&op),
        server: r.try_get("server")?,
        event_id: r.try_get("event_id")?,
        attempt: u32::try_from(attempt).unwrap_or(1),
        expires_at: r.try_get("expires_at")?,
    })
}

/// A new request id (the delivery id), made before the event that names it.
pub async fn new_id(client: &impl GenericClient) -> Result<Uuid, RegistryError> {
    Ok(client
        .query_one("SELECT gen_random_uuid() AS id", &[])
        .await?
        .try_get("id")?)
}

/// Ends the tenant's open requests (their tokens are refused from now on).
pub async fn supersede(client: &impl GenericClient, tenant: Uuid) -> Result<u64, RegistryError> {
    const SQL: &str = "UPDATE control_plane.provision_requests \
         SET outcome = 'superseded', finished_at = now(), \
             send_state = CASE send_state WHEN 'pending' THEN 'dead' ELSE send_state END \
         WHERE tenant_id = $1 AND outcome IS NULL";
    Ok(client.execute(SQL, &[&tenant]).await?)
}

/// Writes a request, due to be sent now.
pub async fn insert(client: &impl GenericClient, r: &Request) -> Result<(), RegistryError> {
    const SQL: &str = "INSERT INTO control_plane.provision_requests \
         (id, tenant_id, operation, server, event_id, attempt, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let attempt = i32::try_from(r.attempt).unwrap_or(i32::MAX);
    client
        .execute(
            SQL,
            &[
                &r.id,
                &r.tenant_id,
                &r.operation.as_str(),
                &r.server,
                &r.event_id,
                &attempt,
                &r.expires_at,
            ],
        )
        .await?;
    Ok(())
}

/// Claims up to `limit` requests due to be sent, pushing each one's next send past
/// `lease` (a replica that dies mid-send leaves it due again).
pub async fn claim(
    client: &impl GenericClient,
    claimer: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, RegistryError> {
    let sql = format!(
        "UPDATE control_plane.provision_requests r \
            SET sends = r.sends + 1, claimed_by = $1, \
                next_send_at = now() + make_interval(secs => $3) \
          WHERE r.id IN (SELECT id FROM control_plane.provision_requests \
                 WHERE send_state = 'pending' AND outcome IS NULL AND next_send_at <= now() \
                   AND expires_at > now() \
                 ORDER BY next_send_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLS}, sends"
    );
    let rows = client
        .query(sql.as_str(), &[&claimer, &limit, &lease.as_secs_f64()])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                request: from_row(r)?,
                sends: r.try_get("sends")?,
            })
        })
        .collect()
}

/// Keeps the SHA-256 of the token a send carries (the same on every send, unless the
/// HMAC key it is derived from was replaced meanwhile).
pub async fn set_token_hash(
    client: &impl GenericClient,
    id: Uuid,
    hash: &[u8],
) -> Result<(), RegistryError> {
    const SQL: &str = "UPDATE control_plane.provision_requests SET token_sha256 = $2 \
         WHERE id = $1 AND token_sha256 IS DISTINCT FROM $2";
    client.execute(SQL, &[&id, &hash]).await?;
    Ok(())
}

/// Records how send number `sends` ended; a failed one is due again after a doubling
/// delay (1 s, capped at a minute, jittered). Only the latest claim's answer is kept.
pub async fn record_send(
    client: &impl GenericClient,
    claimed: &Claimed,
    status: Option<u16>,
    error: Option<&str>,
) -> Result<(), RegistryError> {
    const DELIVERED: &str = "UPDATE control_plane.provision_requests \
         SET send_state = 'delivered', last_status = $3, last_error = NULL, claimed_by = NULL \
         WHERE id = $1 AND sends = $2 AND send_state = 'pending'";
    const FAILED: &str = "UPDATE control_plane.provision_requests \
         SET last_status = $3, last_error = $4, claimed_by = NULL, \
             next_send_at = now() + make_interval(secs => \
                 least(60, power(2, least(sends - 1, 30))) * (0.5 + random() / 2)) \
         WHERE id = $1 AND sends = $2 AND send_state = 'pending'";
    let status = status.map(i32::from);
    let id = claimed.request.id;
    match error {
        None => {
            client
                .execute(DELIVERED, &[&id, &claimed.sends, &status])
                .await?
        }
        Some(e) => {
            let e: String = e.chars().take(500).collect();
            client
                .execute(FAILED, &[&id, &claimed.sends, &status, &e])
                .await?
        }
    };
    Ok(())
}

/// The request a token was issued for, whatever its state.
pub async fn by_token(
    client: &impl GenericClient,
    hash: &[u8],
) -> Result<Option<Request>, RegistryError> {
    let sql =
        format!("SELECT {COLS} FROM control_plane.provision_requests WHERE token_sha256 = $1");
    let row = client.query_opt(sql.as_str(), &[&hash]).await?;
    row.as_ref().map(from_row).transpose()
}

/// Spends the request's token: true for the one callback that may act on it (the request
/// still open, unexpired, its token unused); false for every other.
pub async fn spend(client: &impl GenericClient, id: Uuid) -> Result<bool, RegistryError> {
    const SQL: &str = "UPDATE control_plane.provision_requests SET used_at = now(), \
             send_state = CASE send_state WHEN 'pending' THEN 'delivered' ELSE send_state END \
         WHERE id = $1 AND used_at IS NULL AND outcome IS NULL AND expires_at > now()";
    Ok(client.execute(SQL, &[&id]).await? == 1)
}

/// Closes the request with how it ended (`succeeded`, `failed`).
pub async fn finish(
    client: &impl GenericClient,
    id: Uuid,
    outcome: &'static str,
) -> Result<(), RegistryError> {
    const SQL: &str = "UPDATE control_plane.provision_requests \
         SET outcome = $2, finished_at = now() WHERE id = $1 AND outcome IS NULL";
    client.execute(SQL, &[&id, &outcome]).await?;
    Ok(())
}

/// Closes up to `limit` open requests whose time is up, as `expired`, and returns them.
/// One whose token was spent gets `settle` longer: its callback may still be migrating.
pub async fn expire(
    client: &impl GenericClient,
    settle: Duration,
    limit: i64,
) -> Result<Vec<Request>, RegistryError> {
    let sql = format!(
        "UPDATE control_plane.provision_requests r \
            SET outcome = 'expired', finished_at = now(), \
                send_state = CASE r.send_state WHEN 'pending' THEN 'dead' ELSE r.send_state END \
          WHERE r.id IN (SELECT id FROM control_plane.provision_requests \
                 WHERE outcome IS NULL AND expires_at <= now() \
                   AND (used_at IS NULL OR used_at <= now() - make_interval(secs => $1)) \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLS}"
    );
    let rows = client
        .query(sql.as_str(), &[&settle.as_secs_f64(), &limit])
        .await?;
    rows.iter().map(from_row).collect()
}
