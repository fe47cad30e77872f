//! `drover migrations push` and the pushed-set views of `drover migrations list --set` and
//! `drover migrations sets`: CI publishes the application's migrations to the control DB,
//! and every replica runs them from there (see docs/design.md#migration-sets).

use std::path::Path;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use super::client::ApiClient;
use super::output::table;
use super::Output;
use crate::migrate::MigrationSet;
use crate::sets::published::{PushRequest, PushedFile, SetSummary, SetView};

/// Validates `dir` locally (the same rules as the daemon), then pushes it.
pub async fn push(
    server: &str,
    dir: &Path,
    label: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let set = MigrationSet::load(dir)?;
    if set.files().is_empty() {
        anyhow::bail!("{} holds no migration files", dir.display());
    }
    let req = PushRequest {
        label,
        files: set
            .files()
            .iter()
            .map(|f| PushedFile {
                name: f.file_name(),
                sql: f.sql.clone(),
            })
            .collect(),
    };
    let client = ApiClient::new(server)?;
    let view: SetView = client
        .call(Method::POST, "/v1/migration-sets", Some(&req))
        .await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&summary_json(&view))?);
    } else {
        let s = &view.summary;
        println!("{}", s.id);
        eprintln!(
            "set {} · {} file(s) up to V{} · labels {} · lint: {} error(s), {} warning(s)",
            &s.id[..12],
            s.file_count,
            s.latest_version,
            if s.labels.is_empty() {
                "-".to_string()
            } else {
                s.labels.join(", ")
            },
            s.lint_errors,
            s.lint_warnings
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn summary_json(view: &SetView) -> Value {
    serde_json::to_value(&view.summary).unwrap_or_default()
}

/// The files of pushed set `id` (an id, a label or `latest`).
pub async fn files(server: &str, id: &str, output: Output) -> anyhow::Result<ExitCode> {
    let client = ApiClient::new(server)?;
    let path = format!("/v1/migration-sets/{}", crate::resolve::dsn::encode(id));
    let view: SetView = client.call(Method::GET, &path, None::<&()>).await?;
    if output == Output::Json {
        let files: Vec<Value> = view
            .files
            .iter()
            .map(|f| serde_json::json!({"version": f.version, "name": f.name.trim_start_matches(&format!("V{}__", f.version)).trim_end_matches(".sql"), "checksum": f.checksum, "no_transaction": f.no_transaction}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&files)?);
    } else {
        let rows: Vec<Vec<String>> = view
            .files
            .iter()
            .map(|f| {
                vec![
                    format!("V{}", f.version),
                    f.name.clone(),
                    f.checksum.clone(),
                    if f.no_transaction { "yes" } else { "" }.into(),
                ]
            })
            .collect();
        table(&["VERSION", "FILE", "CHECKSUM", "NO-TRANSACTION"], &rows);
        eprintln!("set {}", view.summary.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// The pushed sets, newest (`latest`) first.
pub async fn list(server: &str, output: Output) -> anyhow::Result<ExitCode> {
    let client = ApiClient::new(server)?;
    let page: Value = client
        .call(Method::GET, "/v1/migration-sets", None::<&()>)
        .await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&page["items"])?);
        return Ok(ExitCode::SUCCESS);
    }
    let items: Vec<SetSummary> = serde_json::from_value(page["items"].clone())?;
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|s| {
            vec![
                s.id[..12].to_string(),
                format!("V{}", s.latest_version),
                s.file_count.to_string(),
                s.labels.join(","),
                format!("{}/{}", s.lint_errors, s.lint_warnings),
                s.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ]
        })
        .collect();
    table(
        &["ID", "LATEST", "FILES", "LABELS", "LINT E/W", "PUSHED"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
