//! Fetching a wave's secrets ahead: the first time this replica sees a wave active, the
//! secrets of its pending targets (in claim order, at most `secret_warm_limit`) are fetched
//! into the resolver's cache in batches, in the background, so the wave's first tenants
//! do not each wait for their own backend read. A failure is logged and counted by the
//! warm-up and changes nothing else: each tenant's connection reads its secret as ever.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::Executor;
use crate::waves::WaveError;

/// Waves this replica has warmed (kept while they are active), with their warm-up task:
/// a wave that ends, or an executor that goes, stops its warm-up.
#[derive(Default)]
pub struct Warmed {
    waves: HashMap<Uuid, tokio::task::JoinHandle<()>>,
}

impl Drop for Warmed {
    fn drop(&mut self) {
        for (_, h) in self.waves.drain() {
            h.abort();
        }
    }
}

impl Executor {
    /// Starts a warm-up for every active wave not warmed yet; forgets finished ones.
    pub(super) fn warm_new_waves(self: &Arc<Self>, active: &[Uuid]) {
        let limit = self.connector.resolver().warm_limit();
        let mut warmed = self.warmed.lock().unwrap_or_else(|p| p.into_inner());
        warmed.waves.retain(|id, task| {
            let keep = active.contains(id);
            if !keep {
                task.abort();
            }
            keep
        });
        if limit == 0 {
            return;
        }
        for &id in active {
            if warmed.waves.contains_key(&id) {
                continue;
            }
            let me = self.clone();
            let task = tokio::spawn(async move {
                match me.wave_secret_refs(id, limit).await {
                    Ok(refs) => {
                        let done = me.connector.resolver().prefetch(refs).await;
                        tracing::info!(wave = %id, ok = done.ok, failed = done.failed,
                            skipped = done.skipped, "wave secrets fetched ahead");
                    }
                    Err(e) => {
                        tracing::warn!(wave = %id, error = %e, "wave secrets not fetched ahead")
                    }
                }
            });
            warmed.waves.insert(id, task);
        }
    }

    /// The secret references of a wave's pending targets, in the order they are claimed.
    async fn wave_secret_refs(&self, wave: Uuid, limit: usize) -> Result<Vec<String>, WaveError> {
        const SQL: &str = "SELECT tn.db_secret_ref FROM control_plane.wave_targets t \
             JOIN control_plane.tenants tn ON tn.id = t.tenant_id \
             WHERE t.wave_id = $1 AND t.state = 'pending' \
               AND tn.deleted_at IS NULL AND tn.status = 'active' \
             ORDER BY t.phase, t.host_seq, t.slug LIMIT $2";
        let client = self
            .store
            .pool()
            .get()
            .await
            .map_err(crate::db::DbError::from)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(SQL, &[&wave, &limit])
            .await
            .map_err(crate::db::DbError::from)?;
        rows.iter()
            .map(|r| {
                r.try_get("db_secret_ref")
                    .map_err(|e| crate::db::DbError::from(e).into())
            })
            .collect()
    }
}
