//! Migration sets: the sets published to the control DB ([`published`]: it owns
//! `migration_sets`, `migration_set_files` and `migration_set_labels`) and the catalog of
//! sets this replica can run ([`catalog`]: pushed sets by id, the local directory, what
//! "latest" means, and the files a plan's [`PlanSource`] names).
//!
//! Layering: above `crate::lint` (a pushed set is linted when stored) and
//! `crate::migrate` (whose [`MigrationSet`](crate::migrate::MigrationSet) holds a set's
//! files), below everything that runs or names sets (`waves`, `schedule`, `provision`,
//! `http`). It reads no table of theirs: the waves read their own plans and hand the
//! catalog a [`PlanSource`], and deleting a set asks the caller who still uses it
//! ([`SetUsers`]). No loops or background tasks: callers drive it.

pub mod catalog;
mod error;
pub mod published;

pub use catalog::{matches_plan, Catalog, PlanSource};
pub use error::PublishedError;
pub use published::{SetUse, SetUsers};
