//! This replica's copy of the token table: what every bearer-token check reads, so that a
//! request costs no control-DB query whether its token is real or made up.
//!
//! ```text
//!  token-refresh task:
//!    LISTEN drover_tokens_changed ── notification, or (re)connected ──► wake
//!    every REFRESH (1 s), or on wake ──► flush last-use marks (one UPDATE, if any)
//!                                    ──► reload (one SELECT of the whole table)
//!  a check: SHA-256 ──► the copy (never trusted past MAX_AGE: reloaded in the request,
//!                       one at a time, when the task is behind)
//!                   ├─ found ──► valid or expired (judged against the clock); valid: marked used
//!                   └─ absent ──► a notified change still loading, or not listening yet?
//!                                 wait for that reload (≤ 1 s) ──► unknown
//! ```
//!
//! Revocation holds on every replica within 2 s: at commit time through NOTIFY, otherwise
//! through the reload every second, and a copy older than [`MAX_AGE`] is never used (when
//! the control DB cannot be read, named tokens get 503 and the root token still works).
//! The replica that creates or revokes a token changes its own copy at once. A token
//! created on another replica is known here once its notification's reload is done (a
//! check waits for it); should the LISTEN connection drop later, for up to a second.
//!
//! `last_used_at` is written in batches, once per [`REFRESH`] at most (and before the
//! token list is read), never once per request: it is exact to about a second.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use secrecy::SecretString;
use subtle::ConstantTimeEq;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{AccessError, Lookup, Principal, Role};

/// How often the copy is reloaded when no change is notified.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Oldest copy a check trusts. Above [`REFRESH`] so that the task, not a request, reloads
/// it; below 2 s so that a missed notification still ends a revoked token within 2 s.
pub const MAX_AGE: Duration = Duration::from_millis(1500);

/// While the control DB fails, requests try a reload themselves at most this often.
const RETRY: Duration = Duration::from_millis(500);

/// How long a check of an unknown token waits for a notified change to be loaded.
const CHANGE_WAIT: Duration = Duration::from_secs(1);

/// The channel the `access_tokens_notify_changed` trigger notifies.
pub const CHANNEL: &str = "drover_tokens_changed";

#[derive(Clone)]
struct Entry {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
}

/// One load of the table.
struct Loaded {
    tokens: HashMap<[u8; 32], Entry>,
    /// When the SELECT that filled it started.
    at: Instant,
}

/// The copy, its reload and the pending last-use marks.
pub struct Snapshot {
    pool: Pool,
    current: RwLock<Option<Arc<Loaded>>>,
    /// Held while loading or changing the copy locally; holds the last load attempt.
    loading: tokio::sync::Mutex<Option<Instant>>,
    /// Notifications received so far (a counter).
    asked: AtomicU64,
    /// The value of `asked` the current copy covers.
    covered: watch::Sender<u64>,
    /// Loads done so far (a counter).
    loads: watch::Sender<u64>,
    /// Whether the LISTEN connection has been up (until then, a change may go unheard).
    listening: AtomicBool,
    /// Wakes the refresh loop.
    wake: Notify,
    /// Token hash → last use not written yet.
    used: Mutex<HashMap<[u8; 32], DateTime<Utc>>>,
}

impl Snapshot {
    /// An empty copy over the control pool (loaded on first use or by [`Self::reload`]).
    pub fn new(pool: Pool) -> Self {
        Snapshot {
            pool,
            current: RwLock::new(None),
            loading: tokio::sync::Mutex::new(None),
            asked: AtomicU64::new(0),
            covered: watch::Sender::new(0),
            loads: watch::Sender::new(0),
            listening: AtomicBool::new(false),
            wake: Notify::new(),
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Who the token with this SHA-256 is. No query unless the copy is too old.
    pub async fn check(&self, hash: &[u8; 32]) -> Result<Lookup, AccessError> {
        let loaded = self.fresh().await?;
        if let Some(found) = self.judge(&loaded, hash) {
            return Ok(found);
        }
        // A token created on another replica a moment ago: its notification may be here
        // while the reload that brings it is not done yet; and before this replica
        // listens (just after start-up), only the next reload can tell.
        let asked = self.asked.load(Ordering::SeqCst);
        let notified = *self.covered.borrow() < asked;
        let deaf = !self.listening.load(Ordering::SeqCst);
        if notified || deaf {
            let (mut covered, mut loads) = (self.covered.subscribe(), self.loads.subscribe());
            let loads_now = *loads.borrow_and_update();
            let change = async {
                if notified {
                    let _ = covered.wait_for(|c| *c >= asked).await;
                } else {
                    let _ = loads.wait_for(|n| *n > loads_now).await;
                }
            };
            let _ = tokio::time::timeout(CHANGE_WAIT, change).await;
            let loaded = self.fresh().await?;
            if let Some(found) = self.judge(&loaded, hash) {
                return Ok(found);
            }
        }
        Ok(Lookup::Unknown)
    }

    fn judge(&self, loaded: &Loaded, hash: &[u8; 32]) -> Option<Lookup> {
        let (stored, entry) = loaded.tokens.get_key_value(hash)?;
        // The map found it by hash; compare again in constant time so the decision never
        // rests on a comparison whose timing depends on the secret.
        if !bool::from(stored.ct_eq(hash)) {
            return None;
        }
        match entry.expires_at {
            Some(t) if t <= Utc::now() => Some(Lookup::Expired),
            _ => {
                self.used
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(*hash, Utc::now());
                Some(Lookup::Valid(entry.principal.clone()))
            }
        }
    }

    fn loaded(&self) -> Option<Arc<Loaded>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fresh_enough(&self) -> Option<Arc<Loaded>> {
        self.loaded().filter(|l| l.at.elapsed() <= MAX_AGE)
    }

    /// The copy, reloaded here when the refresh task is behind (one request at a time;
    /// while the control DB fails, at most every [`RETRY`]).
    async fn fresh(&self) -> Result<Arc<Loaded>, AccessError> {
        if let Some(l) = self.fresh_enough() {
            return Ok(l);
        }
        let mut last = self.loading.lock().await;
        if let Some(l) = self.fresh_enough() {
            return Ok(l);
        }
        if last.is_some_and(|t| t.elapsed() < RETRY) {
            return Err(AccessError::Stale);
        }
        *last = Some(Instant::now());
        self.load().await?;
        self.loaded().ok_or(AccessError::Stale)
    }

    /// Reads the whole table into a new copy.
    pub async fn reload(&self) -> Result<(), AccessError> {
        let mut last = self.loading.lock().await;
        *last = Some(Instant::now());
        self.load().await
    }

    /// The load itself; the caller holds `loading`.
    async fn load(&self) -> Result<(), AccessError> {
        let asked = self.asked.load(Ordering::SeqCst);
        let started = Instant::now();
        const SQL: &str =
            "SELECT name, role, token_hash, expires_at FROM control_plane.access_tokens";
        let rows = self.pool.get().await?.query(SQL, &[]).await?;
        let mut tokens = HashMap::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get("name")?;
            let stored: Vec<u8> = row.try_get("token_hash")?;
            let role: Result<Role, _> = row.try_get::<_, String>("role")?.parse();
            let (Ok(hash), Ok(role)) = (<[u8; 32]>::try_from(stored.as_slice()), role) else {
                tracing::warn!(name, "token row with an unusable hash or role; ignored");
                continue;
            };
            let principal = Principal {
                identity: format!("token:{name}"),
                role,
            };
            let expires_at = row.try_get("expires_at")?;
            tokens.insert(
                hash,
                Entry {
                    principal,
                    expires_at,
                },
            );
        }
        self.install(Loaded {
            tokens,
            at: started,
        });
        self.covered.send_if_modified(|c| {
            let newer = *c < asked;
            if newer {
                *c = asked;
            }
            newer
        });
        self.loads.send_modify(|n| *n += 1);
        Ok(())
    }

    fn install(&self, loaded: Loaded) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(loaded));
    }

    /// Applies a change this replica just committed to its copy, so that it holds here at
    /// once (the other replicas hear of it through NOTIFY). Waits for a load in flight,
    /// which may have started before the commit.
    async fn change_here(&self, change: impl FnOnce(&mut HashMap<[u8; 32], Entry>)) {
        let _loading = self.loading.lock().await;
        let Some(old) = self.loaded() else { return };
        let mut tokens = old.tokens.clone();
        change(&mut tokens);
        self.install(Loaded { tokens, at: old.at });
    }

    /// A token created here.
    pub async fn created(
        &self,
        hash: [u8; 32],
        principal: Principal,
        expires_at: Option<DateTime<Utc>>,
    ) {
        self.change_here(|t| {
            t.insert(
                hash,
                Entry {
                    principal,
                    expires_at,
                },
            );
        })
        .await;
    }

    /// A token revoked here.
    pub async fn revoked(&self, identity: &str) {
        self.change_here(|t| t.retain(|_, e| e.principal.identity != identity))
            .await;
    }

    /// LISTEN is up: anything may have changed while it was not.
    fn listening(&self) {
        self.listening.store(true, Ordering::SeqCst);
        self.notified();
    }

    /// Something changed in the table: reload soon, and let unknown tokens wait for it.
    fn notified(&self) {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Writes the pending last-use marks in one statement. On failure they are kept for
    /// the next attempt.
    pub async fn flush_used(&self) -> Result<(), AccessError> {
        let batch: Vec<([u8; 32], DateTime<Utc>)> = {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            used.drain().collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let hashes: Vec<&[u8]> = batch.iter().map(|(h, _)| &h[..]).collect();
        let at: Vec<DateTime<Utc>> = batch.iter().map(|(_, t)| *t).collect();
        const SQL: &str = "UPDATE control_plane.access_tokens t \
             SET last_used_at = GREATEST(t.last_used_at, u.at) \
             FROM unnest($1::bytea[], $2::timestamptz[]) AS u(hash, at) \
             WHERE t.token_hash = u.hash";
        let written = async {
            let client = self.pool.get().await?;
            client.execute(SQL, &[&hashes, &at]).await?;
            Ok::<_, AccessError>(())
        }
        .await;
        if written.is_err() {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            for (h, t) in batch {
                let kept = used.entry(h).or_insert(t);
                *kept = (*kept).max(t);
            }
        }
        written
    }
}

/// The `token-refresh` task: LISTEN for token changes and reload the copy on each, and
/// every [`REFRESH`] regardless; flush last-use marks before each reload and once more at
/// shutdown. Runs until `shutdown` fires.
pub async fn run(
    snapshot: Arc<Snapshot>,
    url: SecretString,
    ca: Option<PathBuf>,
    shutdown: CancellationToken,
) {
    let listener = {
        let (a, b) = (snapshot.clone(), snapshot.clone());
        crate::listen::Listener {
            channel: CHANNEL,
            what: "token changes",
            // Anything could have changed while we were not listening.
            on_listening: Arc::new(move || a.listening()),
            on_notify: Arc::new(move |_| b.notified()),
        }
    };
    let listen = crate::listen::run(listener, url, ca, shutdown.clone());
    let refresh = async {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = snapshot.wake.notified() => {}
                _ = tokio::time::sleep(REFRESH) => {}
                _ = shutdown.cancelled() => break,
            }
            let flushed = snapshot.flush_used().await;
            let done = flushed.and(snapshot.reload().await);
            match done {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("token list readable again");
                }
                Ok(()) => {}
                // Once per outage: the copy's age refuses named tokens meanwhile.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot refresh the token list; named tokens are refused once it is older than {MAX_AGE:?}");
                }
                Err(_) => {}
            }
        }
        if let Err(e) = snapshot.flush_used().await {
            tracing::warn!(error = %e, "last token uses not recorded at shutdown");
        }
    };
    tokio::join!(listen, refresh);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_trusted_for_less_than_two_seconds_and_refreshed_before_that() {
        assert!(REFRESH < MAX_AGE);
        assert!(MAX_AGE + RETRY <= Duration::from_secs(2));
    }
}
