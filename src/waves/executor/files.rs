//! The migration files of the waves this replica claims from: the claim says where a
//! plan's files come from; the first time the replica meets a wave it fetches them, and a
//! replica whose files differ from the plan leaves the wave to others.

use std::sync::Arc;

use super::Executor;
use crate::migrate::{MigrateError, MigrationSet};
use crate::sets::{matches_plan, PlanSource};
use crate::waves::claim::Claimed;

/// Whether `set` is the one a plan's source names: the pushed set itself, or directory
/// files matching the plan's frozen fingerprint.
fn runs(set: &MigrationSet, source: &PlanSource) -> bool {
    match source {
        PlanSource::Pushed(id) => set.id() == id.as_str(),
        PlanSource::Directory(frozen) => matches_plan(set, frozen),
    }
}

impl Executor {
    /// Whether this replica holds the files `source` names for wave `id` already.
    pub(super) fn holds(&self, id: uuid::Uuid, source: &PlanSource) -> bool {
        self.known_files(id).is_some_and(|set| runs(&set, source))
    }

    /// Fetches the files of waves the claim refused; true when any was fetched (claim
    /// again: those waves take claims now).
    pub(super) async fn fetch_refused(&self, refused: &[(uuid::Uuid, Arc<PlanSource>)]) -> bool {
        let mut fetched = false;
        for (id, source) in refused {
            if let Some(set) = self.files(source).await {
                if runs(&set, source) {
                    self.remember_files(*id, set);
                    fetched = true;
                }
            }
        }
        fetched
    }

    /// The files this replica already fetched for wave `id`.
    fn known_files(&self, id: uuid::Uuid) -> Option<Arc<MigrationSet>> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn remember_files(&self, id: uuid::Uuid, set: Arc<MigrationSet>) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        // Plans never change, so forgetting only costs a fetch.
        if files.len() >= 4096 {
            files.clear();
        }
        files.insert(id, set);
    }

    /// The files a plan's source names (the catalog logs why when it has none).
    async fn files(&self, source: &PlanSource) -> Option<Arc<MigrationSet>> {
        self.catalog.for_source(source).await
    }

    /// The files of a claimed target's wave (remembered: the claim just fetched them).
    pub(super) async fn wave_set(&self, c: &Claimed) -> Result<Arc<MigrationSet>, MigrateError> {
        let set = match self.known_files(c.wave_id) {
            Some(set) => Some(set),
            None => self.files(&c.source).await,
        };
        set.ok_or_else(|| {
            MigrateError::Other("the wave's migration set is unavailable on this replica".into())
        })
    }
}
