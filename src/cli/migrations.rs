//! `drover migrations list|push|sets|lint`: the tenant migration files, local (the
//! directory this binary would run) or pushed to the daemon's control DB.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::output::table;
use super::{lint, sets, Output};
use crate::config::{Config, ConfigError};

/// `drover migrations …`.
#[derive(Debug, Subcommand)]
pub enum MigrationsCommand {
    /// Versions, names, checksums; fails naming any file refinery would skip. With
    /// --set, the files of a set pushed to the daemon instead of the local directory.
    ///
    /// Example: drover migrations list --set latest
    List {
        /// A pushed set: its id, a label, or `latest`.
        #[arg(long, value_name = "ID|LABEL|latest")]
        set: Option<String>,
        /// Base URL of a running drover daemon (with --set).
        #[arg(long, env = "DROVER_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
    },
    /// Publish a directory of migrations to the daemon's control DB (CI runs this, then
    /// starts or schedules a wave); prints the set's id. Needs a publisher or admin token
    /// in DROVER_TOKEN (or DROVER_ADMIN_TOKEN).
    ///
    /// Example: drover migrations push ./db/tenant-migrations --label "$GIT_SHA"
    Push {
        /// The directory (default: DROVER_MIGRATIONS_DIR, else ./tenant-migrations).
        dir: Option<std::path::PathBuf>,
        /// A permanent name for the set, e.g. the application's git sha.
        #[arg(long)]
        label: Option<String>,
        /// Base URL of a running drover daemon.
        #[arg(long, env = "DROVER_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
    },
    /// The sets pushed to the daemon, newest (what `latest` means) first.
    Sets {
        /// Base URL of a running drover daemon.
        #[arg(long, env = "DROVER_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
    },
    /// Lint the files for statements that lock or break a busy tenant; exit 1 on an error.
    ///
    /// Example: drover migrations lint ./tenant-migrations --format json
    Lint {
        /// The directory (default: DROVER_MIGRATIONS_DIR, else ./tenant-migrations).
        dir: Option<std::path::PathBuf>,
        /// Output format (`json` prints the report).
        #[arg(long, value_enum, default_value = "table")]
        format: Output,
        /// Lint only the files above this version (what a wave from it would run).
        #[arg(long)]
        after: Option<i32>,
    },
}

/// Runs one migrations command. `load` reads the configuration, needed only when no
/// directory is given (its `migrations_dir`).
pub async fn run(
    command: MigrationsCommand,
    output: Output,
    load: impl Fn() -> Result<Config, ConfigError>,
) -> anyhow::Result<ExitCode> {
    let dir_or_config = |dir: Option<PathBuf>| -> anyhow::Result<PathBuf> {
        Ok(match dir {
            Some(d) => d,
            None => load()?.migrations_dir,
        })
    };
    match command {
        MigrationsCommand::List { set, server } => match set {
            Some(id) => sets::files(&server, &id, output).await,
            None => list_local(&dir_or_config(None)?, output),
        },
        MigrationsCommand::Push { dir, label, server } => {
            sets::push(&server, &dir_or_config(dir)?, label, output).await
        }
        MigrationsCommand::Sets { server } => sets::list(&server, output).await,
        MigrationsCommand::Lint { dir, format, after } => {
            // `-o json` before the subcommand means the same as `--format json` after it.
            let format = if output == Output::Json {
                output
            } else {
                format
            };
            lint::lint(&dir_or_config(dir)?, after, format)
        }
    }
}

/// `drover migrations list`: the local files as this binary sees them.
fn list_local(dir: &std::path::Path, output: Output) -> anyhow::Result<ExitCode> {
    let set = crate::migrate::MigrationSet::load(dir)?;
    if output == Output::Json {
        let files: Vec<Value> = set
            .files()
            .iter()
            .map(|f| serde_json::json!({"version": f.version, "name": f.name, "checksum": f.checksum.to_string(), "no_transaction": f.no_transaction}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&files)?);
    } else {
        let rows: Vec<Vec<String>> = set
            .files()
            .iter()
            .map(|f| {
                vec![
                    format!("V{}", f.version),
                    f.name.clone(),
                    f.checksum.to_string(),
                    if f.no_transaction {
                        "yes".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        table(&["VERSION", "NAME", "CHECKSUM", "NO-TRANSACTION"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}
