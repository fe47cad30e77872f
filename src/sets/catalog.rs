//! The tenant migration catalog: which migration sets this replica knows, and the files a
//! plan's source names.
//!
//! Two sources: sets pushed to the control DB (docs/design.md#migration-sets,
//! [`super::published`]), fetched by id and cached (they never change), and this replica's
//! directory (`DROVER_MIGRATIONS_DIR`), loaded at start-up and reloaded whenever a wave is
//! created or a replica meets a wave whose frozen fingerprint (`plan->'migrations'`,
//! `[[version, name, checksum], …]`) its loaded files do not match.
//!
//! "Latest" has one meaning everywhere (waves, dry runs, schedules, provisioning, the
//! fleet report, `drover_tenants_behind`): [`Catalog::newest`], the most recently pushed
//! set, else the directory. A plan records which set it runs, and the catalog is asked
//! for that [`PlanSource`] ([`Catalog::for_source`]): it returns exactly those files on
//! every replica, whatever its own disk holds. Reading a plan (a wave's row) is its
//! owner's job; the catalog never reads another module's table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use deadpool_postgres::Pool;
use serde_json::Value;

use super::published;
use super::PublishedError;
use crate::migrate::{MigrationSet, SetError};

/// Where a plan's files come from, as the plan recorded them: what the catalog is asked
/// for.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanSource {
    /// A pushed set, by id.
    Pushed(String),
    /// The directory's files with this frozen fingerprint (`[[version, name, checksum],
    /// …]`, as [`MigrationSet::fingerprint`] made it).
    Directory(Value),
}

/// The migration sets this replica can run. One per replica, in `AppState`.
pub struct Catalog {
    dir: PathBuf,
    set: RwLock<Arc<MigrationSet>>,
    /// The control DB holding pushed sets; `None` for a catalog of the directory only.
    control: Option<Pool>,
    pushed: RwLock<HashMap<String, Arc<MigrationSet>>>,
}

impl Catalog {
    /// Loads `dir`. A missing directory is an empty set (waves then refuse with a clear
    /// error, resolution works); a broken one is an error naming the bad file.
    pub fn load(dir: &Path) -> Result<Catalog, SetError> {
        let set = if dir.exists() {
            MigrationSet::load(dir)?
        } else {
            tracing::warn!(dir = %dir.display(), "tenant migrations directory not found (DROVER_MIGRATIONS_DIR); waves run only sets pushed to the control DB (drover migrations push)");
            MigrationSet::default()
        };
        Ok(Catalog::with_set(dir, set))
    }

    /// A catalog over `dir` that starts with `set` already loaded.
    pub fn with_set(dir: &Path, set: MigrationSet) -> Catalog {
        Catalog {
            dir: dir.to_path_buf(),
            set: RwLock::new(Arc::new(set)),
            control: None,
            pushed: RwLock::new(HashMap::new()),
        }
    }

    /// The same catalog, also serving the sets pushed to this control DB.
    pub fn with_control(mut self, pool: Pool) -> Catalog {
        self.control = Some(pool);
        self
    }

    /// The set as last loaded.
    pub fn current(&self) -> Arc<MigrationSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The highest version of the directory's loaded set (see [`Catalog::newest`] for
    /// what "latest" means to waves and the fleet).
    pub fn latest(&self) -> Option<i32> {
        self.current().latest()
    }

    /// The newest set: the most recently pushed one, else the directory's files now.
    pub async fn newest(&self) -> Result<Arc<MigrationSet>, PublishedError> {
        if let Some(pool) = &self.control {
            if let Some(id) = published::newest_id(pool).await? {
                return self.pushed(&id).await;
            }
        }
        Ok(self.fresh()?)
    }

    /// The highest version of [`Catalog::newest`]: what "behind latest" compares with.
    pub async fn newest_version(&self) -> Result<Option<i32>, PublishedError> {
        Ok(self.newest().await?.latest())
    }

    /// The set a wave request names in `"migration_set"`: a pushed set's id or label,
    /// `latest` or nothing ([`Catalog::newest`]), or the id of the directory's files.
    pub async fn resolve(&self, wanted: Option<&str>) -> Result<Arc<MigrationSet>, PublishedError> {
        let wanted = match wanted {
            None | Some("latest") => return self.newest().await,
            Some(w) => w,
        };
        if let Some(pool) = &self.control {
            if let Some(id) = published::find(pool, wanted).await? {
                return self.pushed(&id).await;
            }
        }
        let dir = self.fresh()?;
        if published::is_id(wanted) && dir.answers_to(wanted) {
            return Ok(dir);
        }
        Err(PublishedError::NotFound(wanted.to_string()))
    }

    /// Pushed set `id`, from the cache or the control DB.
    async fn pushed(&self, id: &str) -> Result<Arc<MigrationSet>, PublishedError> {
        if let Some(set) = self
            .pushed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(set.clone());
        }
        let pool = self
            .control
            .as_ref()
            .ok_or_else(|| PublishedError::NotFound(id.to_string()))?;
        let set = published::fetch(pool, id)
            .await?
            .ok_or_else(|| PublishedError::NotFound(id.to_string()))?;
        let set = Arc::new(set);
        self.pushed
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), set.clone());
        Ok(set)
    }

    /// The files `source` names: the pushed set by id, or the directory's files matching
    /// the frozen fingerprint ([`Catalog::for_plan`]). `None` (logged) when this replica
    /// cannot get them now; a wave worker then leaves the wave to others and tries again
    /// on its next pass.
    pub async fn for_source(&self, source: &PlanSource) -> Option<Arc<MigrationSet>> {
        match source {
            PlanSource::Directory(frozen) => self.for_plan(frozen),
            PlanSource::Pushed(id) => match self.pushed(id).await {
                Ok(set) => Some(set),
                Err(e) => {
                    tracing::error!(set = %id, error = %e, "cannot fetch a plan's migration set");
                    None
                }
            },
        }
    }

    /// Reloads the files from disk (wave creation does this, so new files count and a
    /// broken file is reported to whoever asked for the wave).
    pub fn reload(&self) -> Result<Arc<MigrationSet>, SetError> {
        let set = Arc::new(MigrationSet::load(&self.dir)?);
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = set.clone();
        Ok(set)
    }

    /// The files on disk now (reloaded), or the loaded set when there is no migrations
    /// directory at all (a daemon that only resolves).
    pub fn fresh(&self) -> Result<Arc<MigrationSet>, SetError> {
        if !self.dir.exists() {
            return Ok(self.current());
        }
        self.reload()
    }

    /// The set a wave was planned with, given its frozen `plan->'migrations'`: the loaded
    /// set when it matches, else the files reloaded once; `None` (logged) when this
    /// replica's files differ from the plan, so it must not work on the wave.
    pub fn for_plan(&self, frozen: &Value) -> Option<Arc<MigrationSet>> {
        let current = self.current();
        if matches_plan(&current, frozen) {
            return Some(current);
        }
        let reloaded = self.reload().ok().filter(|s| matches_plan(s, frozen));
        if reloaded.is_none() {
            tracing::error!("this replica's tenant migration files differ from a wave's plan; not working on it");
        }
        reloaded
    }
}

/// Whether `set` holds every file of a frozen fingerprint with the same checksum (files
/// past the wave's target may exist: they are not part of its plan).
pub fn matches_plan(set: &MigrationSet, frozen: &Value) -> bool {
    let Some(frozen) = frozen.as_array() else {
        return false;
    };
    frozen.iter().all(|f| {
        let version = f[0]
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(-1);
        let checksum = f[2].as_str().unwrap_or("");
        set.get(version)
            .is_some_and(|m| m.checksum.to_string() == checksum)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("drover-catalog-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, sql) in files {
            std::fs::write(dir.join(name), sql).unwrap();
        }
        dir
    }

    fn frozen(set: &MigrationSet) -> Value {
        json!(set.fingerprint())
    }

    #[test]
    fn a_plan_frozen_from_the_same_files_matches_and_a_changed_checksum_does_not() {
        let dir = dir_with(&[("V1__a.sql", "select 1;"), ("V2__b.sql", "select 2;")]);
        let set = MigrationSet::load(&dir).unwrap();
        let mut edited = frozen(&set);
        edited[1][2] = json!("12345");

        assert!(matches_plan(&set, &frozen(&set)));
        assert!(!matches_plan(&set, &edited));
        assert!(
            !matches_plan(&set, &json!([[3, "c", "1"]])),
            "unknown version"
        );
        assert!(!matches_plan(&set, &Value::Null), "no fingerprint at all");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn files_past_the_plan_still_match_it() {
        let dir = dir_with(&[("V1__a.sql", "select 1;"), ("V2__b.sql", "select 2;")]);
        let set = MigrationSet::load(&dir).unwrap();
        let first_only = json!([frozen(&set)[0]]);

        assert!(matches_plan(&set, &first_only));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_plan_made_from_newer_files_is_found_by_reloading() {
        let dir = dir_with(&[("V1__a.sql", "select 1;")]);
        let catalog = Catalog::load(&dir).unwrap();
        std::fs::write(dir.join("V2__b.sql"), "select 2;").unwrap();
        let plan = frozen(&MigrationSet::load(&dir).unwrap());

        let set = catalog.for_plan(&plan);

        assert_eq!(set.map(|s| s.latest()), Some(Some(2)));
        assert_eq!(catalog.latest(), Some(2), "the reload is kept");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_plan_the_files_on_disk_contradict_finds_no_set() {
        let dir = dir_with(&[("V1__a.sql", "select 1;")]);
        let catalog = Catalog::load(&dir).unwrap();

        let set = catalog.for_plan(&json!([[1, "a", "999"]]));

        assert!(set.is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_directory_source_is_answered_from_the_files_and_a_pushed_one_needs_the_control_db() {
        let dir = dir_with(&[("V1__a.sql", "select 1;")]);
        let catalog = Catalog::load(&dir).unwrap();
        let set = MigrationSet::load(&dir).unwrap();

        let matching = catalog
            .for_source(&PlanSource::Directory(frozen(&set)))
            .await;
        let contradicted = catalog
            .for_source(&PlanSource::Directory(json!([[1, "a", "999"]])))
            .await;
        let pushed = catalog.for_source(&PlanSource::Pushed(set.id())).await;

        assert_eq!(matching.map(|s| s.id()), Some(set.id()));
        assert!(contradicted.is_none());
        assert!(pushed.is_none(), "no control DB: no pushed sets");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_empty_catalog_that_fresh_does_not_fail() {
        let dir =
            std::env::temp_dir().join(format!("drover-catalog-missing-{}", std::process::id()));

        let catalog = Catalog::load(&dir).unwrap();

        assert_eq!(catalog.latest(), None);
        assert_eq!(catalog.fresh().unwrap().latest(), None);
        assert!(
            catalog.reload().is_err(),
            "a wave still needs the directory"
        );
    }
}
