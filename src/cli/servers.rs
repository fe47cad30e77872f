//! `drover servers list`: the provisioning servers through the daemon's API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::provision::ServerReport;

/// Server commands.
#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// Each provisioning server: tenants placed there, capacity, labels, and whether its
    /// admin connection answered when the daemon last checked (every 5 s).
    List,
}

/// Body of `GET /v1/servers`.
#[derive(serde::Deserialize)]
struct List {
    items: Vec<ServerReport>,
}

/// Runs one server command.
pub async fn run(args: &ClientArgs, cmd: ServersCommand) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    match cmd {
        ServersCommand::List => {
            let list: List = api.call(Method::GET, "/v1/servers", none).await?;
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&list.items)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        format!("{}:{}", s.host, s.port),
                        s.tenants.to_string(),
                        s.max_tenants.map_or("-".into(), |m| m.to_string()),
                        s.labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                        match &s.error {
                            None => "yes".into(),
                            Some(e) => format!("no: {e}"),
                        },
                    ]
                })
                .collect();
            table(
                &["NAME", "HOST", "TENANTS", "MAX", "LABELS", "REACHABLE"],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
