//! Lock timeouts: retrying them on an escalating schedule, and finding out who held the
//! lock before giving up.
//!
//! ```text
//!  attempt 1   lock_timeout = first_lock_timeout_ms            (set in the startup packet)
//!   └► 55P03 → pause first_pause_ms; open a side connection to the tenant DB (best effort)
//!  attempt 2.. lock_timeout doubles, capped at the wave's lock_timeout_ms; pauses double
//!   │          while it runs, the side connection samples pg_blocking_pids(<our pid>)
//!  last        lock_timeout = the wave's lock_timeout_ms
//!   └► 55P03 → MigrateError::LockTimeout with the last blockers sampled
//! ```
//!
//! Short timeouts first keep the queue behind a waiting `ALTER TABLE` short: while it
//! waits for its ACCESS EXCLUSIVE lock, every other query on the table waits behind it
//! (GitLab's `with_lock_retries` does the same). The blockers can only be read while our
//! backend is still waiting (once the timeout fires it blocks nobody and nothing blocks
//! it), hence the sampling during the attempt rather than a look afterwards. The happy
//! path pays nothing: no side connection unless a lock timeout already happened.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::connect::{connect_with, RunLimits, TenantConnection};
pub use super::error::Blocker;
use super::error::MigrateError;

/// The escalating schedule of one tenant run (`lock_retries` of a wave request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockRetries {
    /// Short attempts before the last one, which uses the wave's `lock_timeout_ms`.
    #[serde(default = "default_attempts")]
    #[schema(minimum = 1, maximum = 10)]
    pub attempts: u32,
    /// `lock_timeout` of the first attempt; it doubles on each one after.
    #[serde(default = "default_first_lock_timeout_ms")]
    #[schema(minimum = 1, maximum = 3600000)]
    pub first_lock_timeout_ms: u32,
    /// Pause after the first lock timeout; it doubles after each one (at most 30 s).
    #[serde(default = "default_first_pause_ms")]
    #[schema(minimum = 0, maximum = 60000)]
    pub first_pause_ms: u32,
}

fn default_attempts() -> u32 {
    3
}
fn default_first_lock_timeout_ms() -> u32 {
    100
}
fn default_first_pause_ms() -> u32 {
    250
}

impl Default for LockRetries {
    fn default() -> Self {
        LockRetries {
            attempts: default_attempts(),
            first_lock_timeout_ms: default_first_lock_timeout_ms(),
            first_pause_ms: default_first_pause_ms(),
        }
    }
}

/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_secs(30);

impl LockRetries {
    /// No retries: one attempt with the run's own `lock_timeout`, no forensics (the
    /// provisioner's first migration of a brand-new database has nobody to wait for).
    pub const NONE: LockRetries = LockRetries {
        attempts: 0,
        first_lock_timeout_ms: 0,
        first_pause_ms: 0,
    };

    /// Why the values are out of range, if they are.
    pub fn invalid(&self) -> Option<&'static str> {
        if !(1..=10).contains(&self.attempts) {
            return Some("attempts must be between 1 and 10");
        }
        if !(1..=3_600_000).contains(&self.first_lock_timeout_ms) {
            return Some("first_lock_timeout_ms must be between 1 and 3600000");
        }
        if self.first_pause_ms > 60_000 {
            return Some("first_pause_ms must be between 0 and 60000");
        }
        None
    }

    /// (lock_timeout, pause after a timeout) of every attempt, the last one at `last`.
    pub fn schedule(&self, last: Duration) -> Vec<(Duration, Duration)> {
        let mut steps: Vec<(Duration, Duration)> = (0..self.attempts.min(10))
            .map(|i| {
                let factor = 2u32.pow(i);
                let timeout = Duration::from_millis(self.first_lock_timeout_ms as u64) * factor;
                let pause = Duration::from_millis(self.first_pause_ms as u64) * factor;
                (timeout.min(last), pause.min(MAX_PAUSE))
            })
            .collect();
        steps.push((last, Duration::ZERO));
        steps
    }
}

/// A blocker's query as it may be stored and shown: literals replaced by `$n` by
/// PostgreSQL's parser, then cut to 200 characters. Text the parser refuses (often cut
/// short by `track_activity_query_size`) gets the same treatment from the scanner; text
/// neither can read is withheld.
pub fn normalized_query(query: &str) -> String {
    let normalized = pg_query::normalize(query)
        .ok()
        .or_else(|| scan_normalize(query));
    match normalized {
        Some(q) => q.chars().take(200).collect(),
        None => "<withheld: the query could not be read to remove its literals>".into(),
    }
}

/// Literal tokens (strings, numbers, bit strings) replaced by `$n`, by the scanner.
fn scan_normalize(query: &str) -> Option<String> {
    use pg_query::protobuf::Token;
    let scanned = pg_query::scan(query).ok()?;
    let mut out = String::with_capacity(query.len());
    let (mut at, mut n) = (0usize, 0);
    for t in &scanned.tokens {
        let literal = matches!(
            t.token(),
            Token::Sconst
                | Token::Iconst
                | Token::Fconst
                | Token::Bconst
                | Token::Xconst
                | Token::Usconst
        );
        let (start, end) = (t.start as usize, t.end as usize);
        if literal && start >= at && end <= query.len() {
            n += 1;
            out.push_str(query.get(at..start)?);
            out.push_str(&format!("${n}"));
            at = end;
        }
    }
    out.push_str(query.get(at..)?);
    Some(out)
}

/// The sessions `pid` waits for, read from another connection. Query texts mentioning a
/// password are withheld: they may carry one (`ALTER ROLE … PASSWORD '…'`).
async fn blockers(side: &Client, pid: i32) -> Result<Vec<Blocker>, tokio_postgres::Error> {
    const SQL: &str = "SELECT pid, coalesce(application_name, '') AS application_name, \
         coalesce(usename::text, '') AS usename, coalesce(state, '') AS state, \
         (extract(epoch FROM clock_timestamp() - xact_start) * 1000)::int8 AS xact_age_ms, \
         coalesce(query, '') AS query \
         FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids($1)) ORDER BY pid";
    let rows = side.query(SQL, &[&pid]).await?;
    rows.iter()
        .map(|r| {
            let query: String = r.try_get("query")?;
            Ok(Blocker {
                pid: r.try_get("pid")?,
                application_name: r.try_get("application_name")?,
                user: r.try_get("usename")?,
                state: r.try_get("state")?,
                xact_age_ms: r.try_get("xact_age_ms")?,
                query: if query.to_ascii_lowercase().contains("password") {
                    "<withheld: the query mentions a password>".into()
                } else {
                    normalized_query(&query)
                },
            })
        })
        .collect()
}

/// Whether `e` is a lock timeout of a migration statement.
fn is_lock_timeout(e: &MigrateError) -> bool {
    matches!(e, MigrateError::Sql { code, .. } if code == "55P03")
}

/// Who watches a retried attempt: a second connection to the tenant DB and our pid.
struct Watch {
    side: Client,
    pid: i32,
}

/// Opens the side connection, quickly: forensics must never hold up the failure path.
async fn open_watch(main: &Client, conn: &TenantConnection, limits: &RunLimits) -> Option<Watch> {
    let pid = main
        .query_one("SELECT pg_backend_pid() AS pid", &[])
        .await
        .ok()?
        .try_get("pid")
        .ok()?;
    let quick = RunLimits {
        connect_timeout: Duration::from_secs(2),
        ..*limits
    };
    let side = tokio::time::timeout(
        Duration::from_secs(3),
        connect_with(conn, &quick, "", "drover-forensics"),
    )
    .await;
    match side {
        Ok(Ok(side)) => Some(Watch { side, pid }),
        _ => {
            tracing::debug!("no side connection for lock forensics");
            None
        }
    }
}

/// Runs `attempt` while sampling who blocks `watch.pid`; returns its result and the last
/// non-empty sample.
async fn watched<T>(
    watch: Option<&Watch>,
    timeout: Duration,
    attempt: impl Future<Output = Result<T, MigrateError>>,
) -> (Result<T, MigrateError>, Vec<Blocker>) {
    let Some(w) = watch else {
        return (attempt.await, Vec::new());
    };
    let seen = Mutex::new(Vec::new());
    let every = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let sample = async {
        loop {
            tokio::time::sleep(every).await;
            let got = tokio::time::timeout(Duration::from_secs(1), blockers(&w.side, w.pid)).await;
            if let Ok(Ok(b)) = got {
                if !b.is_empty() {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = b;
                }
            }
        }
    };
    let result = tokio::select! {
        r = attempt => r,
        () = sample => unreachable!("the sampler never ends"),
    };
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    (result, seen)
}

/// Runs `attempt` (which re-reads whatever it needs) on the escalating schedule of
/// `retries`; `client`'s session `lock_timeout` must already be the schedule's first.
/// `on_timeout` is called for every lock timeout (the metric).
pub(crate) async fn with_lock_retries<T, F, Fut>(
    client: &Client,
    conn: &TenantConnection,
    limits: &RunLimits,
    retries: &LockRetries,
    on_timeout: &(dyn Fn() + Send + Sync),
    mut attempt: F,
) -> Result<T, MigrateError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, MigrateError>>,
{
    let schedule = retries.schedule(limits.lock_timeout);
    let mut watch: Option<Watch> = None;
    for (i, (timeout, pause)) in schedule.iter().enumerate() {
        let last = i + 1 == schedule.len();
        if i > 0 {
            let set = format!("SET lock_timeout = {}", timeout.as_millis());
            client
                .batch_execute(&set)
                .await
                .map_err(|e| MigrateError::from_pg(0, &e))?;
        }
        let (result, seen) = watched(watch.as_ref(), *timeout, attempt()).await;
        let err = match result {
            Err(e) if is_lock_timeout(&e) => e,
            other => return other,
        };
        on_timeout();
        if last {
            return Err(err.with_blockers(seen));
        }
        tracing::debug!(
            attempt = i + 1,
            lock_timeout_ms = timeout.as_millis() as u64,
            "lock timeout; retrying"
        );
        tokio::time::sleep(*pause).await;
        if watch.is_none() {
            watch = open_watch(client, conn, limits).await;
        }
    }
    unreachable!("the schedule ends with the last attempt, which returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocker_queries_lose_their_literals_even_when_cut_short() {
        assert_eq!(
            normalized_query("UPDATE users SET email = 'ann@example.com' WHERE id = 42"),
            "UPDATE users SET email = $1 WHERE id = $2"
        );
        // Cut mid-statement, as track_activity_query_size leaves long queries.
        let cut =
            normalized_query("SELECT * FROM users WHERE email = 'ann@example.com' AND id IN (1, 2");
        assert!(!cut.contains("ann@") && !cut.contains("1, 2"), "{cut}");
        assert!(
            cut.starts_with("SELECT * FROM users WHERE email = $1"),
            "{cut}"
        );
        let unterminated = normalized_query("SELECT 'ann@example.com");
        assert!(!unterminated.contains("ann@"), "{unterminated}");
    }

    #[test]
    fn the_schedule_doubles_short_timeouts_and_pauses_and_ends_at_the_waves_timeout() {
        let r = LockRetries::default();

        let s = r.schedule(Duration::from_millis(300));

        let ms = |d: Duration| d.as_millis() as u64;
        let got: Vec<(u64, u64)> = s.iter().map(|(t, p)| (ms(*t), ms(*p))).collect();
        assert_eq!(got, vec![(100, 250), (200, 500), (300, 1000), (300, 0)]);
        assert_eq!(LockRetries::NONE.schedule(Duration::from_secs(5)).len(), 1);
    }

    #[test]
    fn out_of_range_retries_are_refused_and_defaults_fill_in() {
        let r: LockRetries = serde_json::from_str(r#"{"attempts": 5}"#).unwrap();
        assert_eq!((r.attempts, r.first_lock_timeout_ms), (5, 100));
        assert!(r.invalid().is_none());
        assert!(LockRetries { attempts: 0, ..r }.invalid().is_some());
        assert!(LockRetries { attempts: 11, ..r }.invalid().is_some());
        assert!(LockRetries {
            first_pause_ms: 60_001,
            ..r
        }
        .invalid()
        .is_some());
        assert!(serde_json::from_str::<LockRetries>(r#"{"tries": 5}"#).is_err());
    }
}
