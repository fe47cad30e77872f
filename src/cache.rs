//! A keyed, single-flight TTL cache with bounded stale serving and negative caching: the
//! memory behind resolution (tenant rows and secrets).
//!
//! ```text
//!  get(key) ── fresh value (age < ttl) ───────────────────────────► Hit
//!     │
//!     ├─ recent failure (age < negative_ttl) ─► stale value within ttl + stale_for ► Stale
//!     │                                      └► otherwise the remembered error
//!     └─ load (one caller per key; the others wait for its result)
//!            ├─ ok, the same as held before (or nothing held) ────────► Miss
//!            ├─ ok, different from the value held before ────────────► Rotated
//!            └─ error ─► stale value within ttl + stale_for ─────────► Stale
//!                     └► the error (remembered for negative_ttl)
//! ```
//!
//! "The same" is the cache's `same` rule ([`TtlCache::with_same`]; by default nothing is
//! the same). A loaded value the rule calls the same as the one held is not stored: the
//! held one is renewed, so whatever callers built from it (a rendered DSN) stays valid.
//! [`TtlCache::reload`] loads past the TTL (a refetch after a refused password, a fresh
//! resolution) and [`TtlCache::put`] stores a value loaded elsewhere (a warm-up batch);
//! both under the same per-key gate as a load.
//!
//! A hit takes a read lock on the map and a short plain mutex on the entry, never an
//! await. Single flight comes from a per-key async gate: the first caller loads while
//! holding it, later callers queue on it and find the fresh value. No background tasks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use std::time::Instant;

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
    /// Loaded just now, and different from the value held before (which it replaced).
    Rotated,
}

struct State<V, E> {
    value: Option<(V, Instant)>,
    failure: Option<(E, Instant)>,
}

/// One key. `state` is a plain mutex held only to read or write a value, so the hit path
/// never awaits; `loading` is the single-flight gate, held across a load.
struct Slot<V, E> {
    state: Mutex<State<V, E>>,
    loading: tokio::sync::Mutex<()>,
}

impl<V: Clone, E: Clone> Slot<V, E> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<V, E>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, ttl: Duration) -> Option<V> {
        let st = self.state();
        st.value
            .as_ref()
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(v, _)| v.clone())
    }
}

type Shard<V, E> = RwLock<HashMap<String, Arc<Slot<V, E>>>>;

/// Shards keep the replicas' request threads off one lock's cache line.
const SHARDS: usize = 16;

/// The cache. `V` and `E` are cloned out to callers, so keep them cheap (`Arc`).
pub struct TtlCache<V, E> {
    policy: CachePolicy,
    shards: Vec<Shard<V, E>>,
    same: fn(&V, &V) -> bool,
}

impl<V: Clone, E: Clone> TtlCache<V, E> {
    /// An empty cache.
    pub fn new(policy: CachePolicy) -> Self {
        TtlCache {
            policy,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            same: |_, _| false,
        }
    }

    /// The same cache, calling a loaded value the same as the held one when `same` says
    /// so (then the held value is kept and renewed, and the load is not a rotation).
    pub fn with_same(mut self, same: fn(&V, &V) -> bool) -> Self {
        self.same = same;
        self
    }

    /// Stores a loaded value in `st`: the held one renewed when it is the same, else the
    /// new one (a rotation when something different was held).
    fn store(&self, st: &mut State<V, E>, v: V) -> (V, Freshness) {
        st.failure = None;
        let (kept, freshness) = match st.value.take() {
            Some((held, _)) if (self.same)(&held, &v) => (held, Freshness::Miss),
            Some(_) => (v, Freshness::Rotated),
            None => (v, Freshness::Miss),
        };
        st.value = Some((kept.clone(), Instant::now()));
        (kept, freshness)
    }

    fn shard(&self, key: &str) -> &Shard<V, E> {
        // FNV-1a: keys are short slugs and refs; any spread will do.
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// A fresh value, if there is one; never loads, never waits (the hot path).
    pub fn peek(&self, key: &str) -> Option<V> {
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        shard.get(key)?.fresh(self.policy.ttl)
    }

    fn slot(&self, key: &str) -> Arc<Slot<V, E>> {
        let shard = self.shard(key);
        if let Some(s) = shard.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return s.clone();
        }
        let mut slots = shard.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() > self.policy.max_entries / SHARDS {
            self.evict(&mut slots);
        }
        let slot = Arc::new(Slot {
            state: Mutex::new(State {
                value: None,
                failure: None,
            }),
            loading: tokio::sync::Mutex::new(()),
        });
        slots.insert(key.to_string(), slot.clone());
        slot
    }

    /// Drops expired idle entries, or everything idle if that is not enough.
    fn evict(&self, slots: &mut HashMap<String, Arc<Slot<V, E>>>) {
        let keep_for = self.policy.ttl + self.policy.stale_for;
        let idle = |s: &Slot<V, E>| s.loading.try_lock().is_ok();
        slots.retain(|_, s| {
            !idle(s)
                || s.state()
                    .value
                    .as_ref()
                    .is_some_and(|(_, at)| at.elapsed() < keep_for)
        });
        if slots.len() > self.policy.max_entries / SHARDS {
            slots.retain(|_, s| !idle(s));
        }
    }

    /// The value for `key`, loading it with `load` when needed (see the module diagram).
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<(V, Freshness), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let p = self.policy;
        if let Some(v) = self.peek(key) {
            return Ok((v, Freshness::Hit));
        }
        let slot = self.slot(key);
        let _loading = slot.loading.lock().await;
        let stale_ok = |st: &State<V, E>| {
            st.value
                .as_ref()
                .filter(|(_, at)| at.elapsed() < p.ttl + p.stale_for)
                .map(|(v, _)| v.clone())
        };
        {
            // Whoever held the gate before us may have just loaded it.
            let st = slot.state();
            if let Some((v, at)) = &st.value {
                if at.elapsed() < p.ttl {
                    return Ok((v.clone(), Freshness::Hit));
                }
            }
            if let Some((e, at)) = &st.failure {
                if at.elapsed() < p.negative_ttl {
                    return match stale_ok(&st) {
                        Some(v) => Ok((v, Freshness::Stale)),
                        None => Err(e.clone()),
                    };
                }
            }
        }
        let loaded = load().await;
        let mut st = slot.state();
        match loaded {
            Ok(v) => Ok(self.store(&mut st, v)),
            Err(e) => {
                st.failure = Some((e.clone(), Instant::now()));
                match stale_ok(&st) {
                    Some(v) => Ok((v, Freshness::Stale)),
                    None => Err(e),
                }
            }
        }
    }

    /// Loads `key` past its TTL, unless the value held now is one `keep` accepts (another
    /// caller reloaded it while this one waited for the gate): then that value, as a Hit.
    /// A failed reload leaves the held value and remembers nothing: the caller asked for
    /// this load on purpose and reports its error.
    pub async fn reload<F, Fut>(
        &self,
        key: &str,
        keep: impl FnOnce(&V) -> bool,
        load: F,
    ) -> Result<(V, Freshness), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = self.slot(key);
        let _loading = slot.loading.lock().await;
        if let Some((v, _)) = &slot.state().value {
            if keep(v) {
                return Ok((v.clone(), Freshness::Hit));
            }
        }
        let v = load().await?;
        let mut st = slot.state();
        let stored = self.store(&mut st, v);
        Ok(stored)
    }

    /// Stores `v`, loaded elsewhere, under `key` as a load would (Miss, or Rotated).
    pub async fn put(&self, key: &str, v: V) -> Freshness {
        let slot = self.slot(key);
        let _loading = slot.loading.lock().await;
        let mut st = slot.state();
        let (_, freshness) = self.store(&mut st, v);
        freshness
    }

    /// Forgets `key`: the next `get_or_load` loads it again.
    pub fn invalidate(&self, key: &str) {
        self.shard(key)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
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

    // Real time, short durations: the cache reads std's clock (tokio's test clock would
    // slow the hot path of every build that has dev-dependencies, benchmarks included).
    // Tests never sleep a guessed amount: they wait until a moment measured from when the
    // value was stored, and state the bound a step must finish within.
    fn policy() -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_millis(100),
            stale_for: Duration::from_millis(300),
            negative_ttl: Duration::from_millis(100),
            max_entries: 100,
        }
    }

    /// Waits until `at`, a moment the test measured.
    async fn until(at: Instant) {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_concurrent_cold_requests_load_once() {
        const CALLERS: usize = 1000;
        let cache: Arc<TtlCache<u32, String>> = Arc::new(TtlCache::new(CachePolicy {
            ttl: Duration::from_secs(60),
            ..policy()
        }));
        let loads = Arc::new(AtomicUsize::new(0));
        // The load finishes only once every caller has asked, so all of them overlap it.
        let (asked, all_asked) = tokio::sync::watch::channel(0usize);
        let asked = Arc::new(asked);

        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                let (asked, mut all_asked) = (asked.clone(), all_asked.clone());
                tokio::spawn(async move {
                    asked.send_modify(|n| *n += 1);
                    cache
                        .get_or_load("acme", || async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            let _ = all_asked.wait_for(|n| *n == CALLERS).await;
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

    #[tokio::test]
    async fn stale_value_is_served_within_the_bound_then_the_error() {
        let p = CachePolicy {
            stale_for: Duration::from_secs(1),
            ..policy()
        };
        let cache: TtlCache<u32, String> = TtlCache::new(p);
        let before = Instant::now();
        cache.get_or_load("k", || async { Ok(1) }).await.unwrap();
        // The value was stored between `before` and `stored`.
        let stored = Instant::now();
        until(stored + p.ttl).await;

        let stale = cache
            .get_or_load("k", || async { Err("down".to_string()) })
            .await;
        let asked_at_age = before.elapsed();
        until(stored + p.ttl + p.stale_for).await;
        let gone = cache
            .get_or_load("k", || async { Err("down".to_string()) })
            .await;

        assert!(
            asked_at_age < p.ttl + p.stale_for,
            "the stale read came {asked_at_age:?} after the load, past the 1.1 s bound"
        );
        assert_eq!(stale, Ok((1, Freshness::Stale)));
        assert_eq!(gone, Err("down".to_string()));
    }

    #[tokio::test]
    async fn a_recent_failure_is_not_retried_until_the_negative_ttl_passes() {
        let p = CachePolicy {
            negative_ttl: Duration::from_millis(500),
            ..policy()
        };
        let cache: TtlCache<u32, String> = TtlCache::new(p);
        let loads = AtomicUsize::new(0);
        let failing = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>("down".to_string())
        };

        let before = Instant::now();
        let _ = cache.get_or_load("k", failing).await;
        // The failure was remembered between `before` and `failed`.
        let failed = Instant::now();
        let _ = cache.get_or_load("k", failing).await;
        let second_at_age = before.elapsed();
        until(failed + p.negative_ttl).await;
        let _ = cache.get_or_load("k", failing).await;

        assert!(
            second_at_age < p.negative_ttl,
            "the second call came {second_at_age:?} after the failure, past the 500 ms bound"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn invalidate_forces_a_reload() {
        let cache: TtlCache<u32, String> = TtlCache::new(policy());
        cache.get_or_load("k", || async { Ok(1) }).await.unwrap();

        cache.invalidate("k");
        let again = cache.get_or_load("k", || async { Ok(2) }).await;

        assert_eq!(again, Ok((2, Freshness::Miss)));
    }

    #[tokio::test]
    async fn a_reload_of_the_same_value_renews_the_held_one_and_a_different_one_is_a_rotation() {
        // Values are (version, payload); the same version is the same value.
        let cache: TtlCache<Arc<(u32, &str)>, String> =
            TtlCache::new(policy()).with_same(|a, b| a.0 == b.0);
        let (first, _) = cache
            .get_or_load("k", || async { Ok(Arc::new((1, "a"))) })
            .await
            .unwrap();

        let (renewed, f1) = cache
            .reload("k", |_| false, || async { Ok(Arc::new((1, "a"))) })
            .await
            .unwrap();
        let (rotated, f2) = cache
            .reload("k", |_| false, || async { Ok(Arc::new((2, "b"))) })
            .await
            .unwrap();

        assert_eq!(f1, Freshness::Miss);
        assert!(Arc::ptr_eq(&first, &renewed), "the held value is kept");
        assert_eq!(f2, Freshness::Rotated);
        assert_eq!(*rotated, (2, "b"));
        assert_eq!(cache.peek("k").map(|v| v.0), Some(2));
    }

    #[tokio::test]
    async fn a_reload_keeps_a_value_another_caller_already_replaced() {
        let cache: TtlCache<u32, String> = TtlCache::new(policy());
        cache.get_or_load("k", || async { Ok(2) }).await.unwrap();
        let loads = AtomicUsize::new(0);

        let (v, f) = cache
            .reload(
                "k",
                |held| *held != 1,
                || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(3)
                },
            )
            .await
            .unwrap();

        assert_eq!((v, f), (2, Freshness::Hit));
        assert_eq!(loads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
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

        assert!(cache.len() <= 10 + SHARDS, "{}", cache.len());
    }
}
