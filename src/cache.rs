//! A keyed, single-flight TTL cache with bounded stale serving and negative caching: the
//! memory behind resolution (tenant rows and secrets).
//!
//! ```text
//!  get(key) ── fresh value (age < ttl) ───────────────────────────► Hit
//!     │
//!     ├─ recent failure (age < negative_ttl) ─► stale value within ttl + stale_for ► Stale
//!     │                                      └► otherwise the remembered error
//!     └─ load (one caller per key; the others wait for its result)
//!            ├─ ok ─────────────────────────────────────────────────► Miss
//!            └─ error ─► stale value within ttl + stale_for ─────────► Stale
//!                     └► the error (remembered for negative_ttl)
//! ```
//!
//! Single flight comes from a per-key async mutex: the first caller loads while holding
//! it, later callers queue on it and find the fresh value. No background tasks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long values and failures are trusted.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// A value is served without reloading this long.
    pub ttl: Duration,
    /// Past its TTL, a value may still be served this long while loads fail.
    pub stale_for: Duration,
    /// A failed load is remembered (not retried) this long.
    pub negative_ttl: Duration,
    /// Entries kept at most; beyond it, expired entries are dropped first.
    pub max_entries: usize,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Cached and within its TTL.
    Hit,
    /// Loaded just now.
    Miss,
    /// Past its TTL, served because loading failed.
    Stale,
}

struct Slot<V, E> {
    value: Option<(V, Instant)>,
    failure: Option<(E, Instant)>,
}

type SlotRef<V, E> = Arc<tokio::sync::Mutex<Slot<V, E>>>;

/// The cache. `V` and `E` are cloned out to callers, so keep them cheap (`Arc`).
pub struct TtlCache<V, E> {
    policy: CachePolicy,
    slots: Mutex<HashMap<String, SlotRef<V, E>>>,
}

impl<V: Clone, E: Clone> TtlCache<V, E> {
    /// An empty cache.
    pub fn new(policy: CachePolicy) -> Self {
        TtlCache {
            policy,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &str) -> SlotRef<V, E> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= self.policy.max_entries {
            self.evict(&mut slots);
        }
        let slot = Arc::new(tokio::sync::Mutex::new(Slot {
            value: None,
            failure: None,
        }));
        slots.insert(key.to_string(), slot.clone());
        slot
    }

    /// Drops expired idle entries, or everything idle if that is not enough.
    fn evict(&self, slots: &mut HashMap<String, SlotRef<V, E>>) {
        let keep_for = self.policy.ttl + self.policy.stale_for;
        let now = Instant::now();
        slots.retain(|_, s| match s.try_lock() {
            Ok(slot) => slot
                .value
                .as_ref()
                .is_some_and(|(_, at)| now.duration_since(*at) < keep_for),
            Err(_) => true,
        });
        if slots.len() >= self.policy.max_entries {
            slots.retain(|_, s| s.try_lock().is_err());
        }
    }

    /// The value for `key`, loading it with `load` when needed (see the module diagram).
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<(V, Freshness), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        let now = Instant::now();
        let p = self.policy;
        let stale_ok = |slot: &Slot<V, E>| {
            slot.value
                .as_ref()
                .filter(|(_, at)| now.duration_since(*at) < p.ttl + p.stale_for)
                .map(|(v, _)| v.clone())
        };
        if let Some((v, at)) = &slot.value {
            if now.duration_since(*at) < p.ttl {
                return Ok((v.clone(), Freshness::Hit));
            }
        }
        if let Some((e, at)) = &slot.failure {
            if now.duration_since(*at) < p.negative_ttl {
                return match stale_ok(&slot) {
                    Some(v) => Ok((v, Freshness::Stale)),
                    None => Err(e.clone()),
                };
            }
        }
        match load().await {
            Ok(v) => {
                slot.value = Some((v.clone(), Instant::now()));
                slot.failure = None;
                Ok((v, Freshness::Miss))
            }
            Err(e) => {
                slot.failure = Some((e.clone(), Instant::now()));
                match stale_ok(&slot) {
                    Some(v) => Ok((v, Freshness::Stale)),
                    None => Err(e),
                }
            }
        }
    }

    /// Forgets `key`: the next `get_or_load` loads it again.
    pub fn invalidate(&self, key: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy() -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_secs(10),
            stale_for: Duration::from_secs(20),
            negative_ttl: Duration::from_secs(2),
            max_entries: 100,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_concurrent_cold_requests_load_once() {
        let cache: Arc<TtlCache<u32, String>> = Arc::new(TtlCache::new(policy()));
        let loads = Arc::new(AtomicUsize::new(0));

        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load("acme", || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(7)
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().0, 7);
        }

        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_value_is_served_within_the_bound_then_the_error() {
        let cache: TtlCache<u32, String> = TtlCache::new(policy());
        cache.get_or_load("k", || async { Ok(1) }).await.unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;

        let stale = cache
            .get_or_load("k", || async { Err("down".to_string()) })
            .await;
        tokio::time::advance(Duration::from_secs(20)).await;
        let gone = cache
            .get_or_load("k", || async { Err("down".to_string()) })
            .await;

        assert_eq!(stale, Ok((1, Freshness::Stale)));
        assert_eq!(gone, Err("down".to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_recent_failure_is_not_retried_until_the_negative_ttl_passes() {
        let cache: TtlCache<u32, String> = TtlCache::new(policy());
        let loads = AtomicUsize::new(0);
        let failing = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>("down".to_string())
        };

        let _ = cache.get_or_load("k", failing).await;
        let _ = cache.get_or_load("k", failing).await;
        tokio::time::advance(Duration::from_secs(3)).await;
        let _ = cache.get_or_load("k", failing).await;

        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_forces_a_reload() {
        let cache: TtlCache<u32, String> = TtlCache::new(policy());
        cache.get_or_load("k", || async { Ok(1) }).await.unwrap();

        cache.invalidate("k");
        let again = cache.get_or_load("k", || async { Ok(2) }).await;

        assert_eq!(again, Ok((2, Freshness::Miss)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_never_grows_past_max_entries() {
        let cache: TtlCache<u32, String> = TtlCache::new(CachePolicy {
            max_entries: 10,
            ..policy()
        });

        for i in 0..100 {
            cache
                .get_or_load(&format!("k{i}"), || async { Ok(i) })
                .await
                .unwrap();
        }

        assert!(cache.len() <= 10, "{}", cache.len());
    }
}
