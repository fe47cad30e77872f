//! `drover migrations lint`: the lint report of a migration directory, read locally (no
//! daemon needed), for CI before the files ship.

use std::path::Path;
use std::process::ExitCode;

use super::Output;
use crate::lint::{self, Level};
use crate::migrate::MigrationSet;

/// Prints the findings of the files in `dir` (above `after`); exit 1 on any error.
pub fn lint(dir: &Path, after: Option<i32>, format: Output) -> anyhow::Result<ExitCode> {
    let set = MigrationSet::load(dir)?;
    let report = lint::lint_set(&set, after, set.latest().unwrap_or(0));
    let errors = report.errors().count();
    if format == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for f in &report.findings {
            let level = match f.level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            println!("{}:{}: {level}[{}] {}", f.file, f.line, f.rule, f.message);
            println!("    {}", f.statement.lines().next().unwrap_or_default());
            println!("    fix: {}", f.fix);
        }
        println!(
            "{} file(s), {errors} error(s), {} warning(s)",
            report.files,
            report.warnings().count()
        );
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
