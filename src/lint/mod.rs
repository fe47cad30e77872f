//! Migration lint: finds statements that succeed and still hurt a busy tenant (a table
//! locked for the length of an index build, a rewrite, a rename the running application
//! does not know), before the first canary is touched (see README.md#migration-lint).
//!
//! Statements are parsed by PostgreSQL's own grammar (`pg_query`, libpg_query), never by
//! pattern matching. The files of one lint run are read in version order as one scope:
//! a table created in an earlier statement of the scope is new, and what is done to a new
//! table cannot block anyone ([`rules`]).
//!
//! A finding can be silenced in the file, for the statement that follows the comment, with
//! `-- drover:allow <rule> <reason>` (the reason is required: a bare allow is itself a
//! finding). A wave refuses error findings unless its request acknowledges the rule
//! ([`crate::waves::create`]); `drover migrations lint` exits 1 on any.

mod rules;

use serde::{Deserialize, Serialize};

use crate::migrate::{MigrationFile, MigrationSet};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = LintLevel)]
pub enum Level {
    /// Refused by waves unless acknowledged; `drover migrations lint` exits 1.
    Error,
    /// Shown and stored with the wave; never blocks.
    Warning,
}

/// One problem in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = LintFinding)]
pub struct Finding {
    /// Kebab-case rule id, e.g. `require-concurrent-index-creation`.
    pub rule: String,
    pub level: Level,
    /// `V3__add_index.sql`.
    pub file: String,
    pub version: i32,
    /// 1-based line of the statement's first line.
    pub line: usize,
    /// The statement (first 300 characters).
    pub statement: String,
    /// What goes wrong on a busy tenant.
    pub message: String,
    /// How to write it safely.
    pub fix: String,
}

/// What one lint run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = LintReport)]
pub struct Report {
    /// Files read.
    pub files: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    /// Warning findings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Warning)
    }
}

/// Every rule: id, level and its one-line documentation (the README lists the same).
pub const RULES: &[(&str, Level, &str)] = rules::RULES;

/// Lints the files of `set` with versions in `(after, through]` as one scope.
pub fn lint_set(set: &MigrationSet, after: Option<i32>, through: i32) -> Report {
    let files: Vec<&MigrationFile> = set
        .files()
        .iter()
        .filter(|f| Some(f.version) > after && f.version <= through)
        .collect();
    lint_files(&files)
}

/// Lints `files` in order as one scope.
pub fn lint_files(files: &[&MigrationFile]) -> Report {
    let mut scope = rules::Scope::default();
    let mut findings = Vec::new();
    for file in files {
        findings.extend(rules::lint_file(file, &mut scope));
    }
    Report {
        files: files.len(),
        findings,
    }
}

#[cfg(test)]
mod tests;
