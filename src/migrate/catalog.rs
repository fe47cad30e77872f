//! The tenant migration catalog: which migration sets this replica knows, and which one a
//! wave runs.
//!
//! Today the catalog is one directory (`DROVER_MIGRATIONS_DIR`), loaded at start-up and
//! reloaded whenever a wave is created or a replica meets a wave whose frozen fingerprint
//! (`plan->'migrations'`, `[[version, name, checksum], …]`) its loaded files do not match.
//! Callers ask for a set by what they need — the newest files ([`Catalog::fresh`]), the
//! loaded ones ([`Catalog::current`]) or the set a wave was planned with
//! ([`Catalog::for_plan`]) — so a catalog that also fetches sets pushed to the control DB
//! (SPEC §21) changes no caller.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::set::{MigrationSet, SetError};

/// The migration sets this replica can run. One per replica, in `AppState`.
pub struct Catalog {
    dir: PathBuf,
    set: RwLock<Arc<MigrationSet>>,
}

impl Catalog {
    /// Loads `dir`. A missing directory is an empty set (waves then refuse with a clear
    /// error, resolution works); a broken one is an error naming the bad file.
    pub fn load(dir: &Path) -> Result<Catalog, SetError> {
        let set = if dir.exists() {
            MigrationSet::load(dir)?
        } else {
            tracing::warn!(dir = %dir.display(), "tenant migrations directory not found (DROVER_MIGRATIONS_DIR); waves are unavailable");
            MigrationSet::default()
        };
        Ok(Catalog::with_set(dir, set))
    }

    /// A catalog over `dir` that starts with `set` already loaded.
    pub fn with_set(dir: &Path, set: MigrationSet) -> Catalog {
        Catalog {
            dir: dir.to_path_buf(),
            set: RwLock::new(Arc::new(set)),
        }
    }

    /// The set as last loaded.
    pub fn current(&self) -> Arc<MigrationSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The highest version of the loaded set.
    pub fn latest(&self) -> Option<i32> {
        self.current().latest()
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
