//! Leader election through the control DB, and the replica roster.
//!
//! A lease row (`control_plane.leader`, one row) rather than a session advisory lock on a
//! dedicated connection: a lease survives a connection blip of the leader (an advisory lock
//! would be lost, then fought over, on every reconnect), its holder and expiry are
//! visible to every replica for `/v1/cluster`, and it works through any pooler.
//!
//! ```text
//!            every ttl/3: UPDATE … WHERE holder = me OR expired
//!   follower ───────────── row updated ─────────────► leader ──┐ renew every ttl/3
//!      ▲                                                  │    │
//!      └── renewal finds another holder / DB unreachable ─┘ ◄──┘
//!          (a leader that cannot renew steps down before its lease ends)
//!   shutdown: the leader clears the row (resigns) so a follower takes over at once.
//! ```
//!
//! The `leader` task also upserts this replica's row in `control_plane.replicas` on each
//! round. Only the leader runs singleton loops (the scheduler); exactly-once firing does
//! not depend on the election being perfect (see `scheduler`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Whether this replica leads, shared with the scheduler and `/readyz`.
#[derive(Debug, Default)]
pub struct Leadership {
    leader: AtomicBool,
}

impl Leadership {
    /// True while this replica holds a valid lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    fn set(&self, v: bool) {
        if self.leader.swap(v, Ordering::AcqRel) != v {
            tracing::info!(leader = v, "leadership changed");
        }
    }
}

/// The lease as every replica sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Leader)]
pub struct LeaderView {
    #[schema(required)]
    pub holder: Option<String>,
    pub term: i64,
    #[schema(required)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A replica that renewed its row recently.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Replica)]
pub struct ReplicaView {
    pub instance_id: String,
    pub version: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub last_heartbeat: chrono::DateTime<chrono::Utc>,
}

/// One election round: take or renew the lease. Returns whether we hold it.
async fn round(pool: &Pool, me: &str, ttl: Duration) -> Result<bool, crate::db::DbError> {
    const TAKE: &str = "UPDATE control_plane.leader SET holder = $1, expires_at = now() + make_interval(secs => $2::float8), \
         term = CASE WHEN holder = $1 THEN term ELSE term + 1 END \
         WHERE id = 1 AND (holder = $1 OR holder IS NULL OR expires_at < now())";
    let client = pool.get().await?;
    Ok(client.execute(TAKE, &[&me, &ttl.as_secs_f64()]).await? == 1)
}

/// Runs elections until `shutdown`, then resigns.
pub async fn run(
    pool: Pool,
    me: String,
    ttl: Duration,
    leadership: Arc<Leadership>,
    shutdown: CancellationToken,
) {
    let every = ttl / 3;
    let started = chrono::Utc::now();
    let mut held_since_renewal: Option<Instant> = None;
    loop {
        let attempt = Instant::now();
        match round(&pool, &me, ttl).await {
            Ok(held) => {
                leadership.set(held);
                held_since_renewal = held.then_some(attempt);
            }
            Err(e) => {
                // Unreachable DB: keep leading only while the last renewal is surely valid.
                tracing::warn!(error = %e, "leader election round failed");
                if held_since_renewal.is_some_and(|t| t.elapsed() >= ttl - every) {
                    leadership.set(false);
                    held_since_renewal = None;
                }
            }
        }
        heartbeat(&pool, &me, started).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    if leadership.is_leader() {
        const RESIGN: &str = "UPDATE control_plane.leader SET holder = NULL, expires_at = NULL WHERE id = 1 AND holder = $1";
        if let Ok(client) = pool.get().await {
            let _ = client.execute(RESIGN, &[&me]).await;
        }
        leadership.set(false);
        tracing::info!("resigned leadership");
    }
    const GONE: &str = "DELETE FROM control_plane.replicas WHERE instance_id = $1";
    if let Ok(client) = pool.get().await {
        let _ = client.execute(GONE, &[&me]).await;
    }
}

async fn heartbeat(pool: &Pool, me: &str, started: chrono::DateTime<chrono::Utc>) {
    const SQL: &str = "INSERT INTO control_plane.replicas (instance_id, version, started_at, last_heartbeat) \
         VALUES ($1, $2, $3, now()) ON CONFLICT (instance_id) DO UPDATE SET version = $2, last_heartbeat = now()";
    if let Ok(client) = pool.get().await {
        if let Err(e) = client
            .execute(SQL, &[&me, &env!("CARGO_PKG_VERSION"), &started])
            .await
        {
            tracing::debug!(error = %crate::db::describe(&e), "replica heartbeat failed");
        }
    }
}

/// The lease and the replicas seen within `window`.
pub async fn cluster(
    pool: &Pool,
    window: Duration,
) -> Result<(LeaderView, Vec<ReplicaView>), crate::db::DbError> {
    const LEADER: &str =
        "SELECT CASE WHEN expires_at > now() THEN holder END AS holder, term, expires_at \
         FROM control_plane.leader WHERE id = 1";
    const REPLICAS: &str =
        "SELECT instance_id, version, started_at, last_heartbeat FROM control_plane.replicas \
         WHERE last_heartbeat > now() - make_interval(secs => $1::float8) ORDER BY instance_id";
    let client = pool.get().await?;
    let l = client.query_one(LEADER, &[]).await?;
    let leader = LeaderView {
        holder: l.try_get("holder")?,
        term: l.try_get("term")?,
        expires_at: l.try_get("expires_at")?,
    };
    let replicas = client
        .query(REPLICAS, &[&window.as_secs_f64()])
        .await?
        .iter()
        .map(|r| {
            Ok(ReplicaView {
                instance_id: r.try_get("instance_id")?,
                version: r.try_get("version")?,
                started_at: r.try_get("started_at")?,
                last_heartbeat: r.try_get("last_heartbeat")?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok((leader, replicas))
}
