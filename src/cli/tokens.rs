//! `drover tokens create|list|revoke`: named API tokens with roles.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::resolve::dsn::encode;

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token; it is printed once and cannot be shown again.
    ///
    /// Example: drover tokens create grafana --role viewer --expires-in 90d
    Create {
        /// 1-63 of a-z, 0-9, '.', '_', '-'.
        name: String,
        /// viewer, resolver, operator, admin or publisher (CI: pushes migration sets only).
        #[arg(long)]
        role: String,
        /// Lifetime such as 90d, 12h or 30m (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Every token with its role, expiry and last use (never the token).
    List,
    /// Revoke a token: refused on every replica within 2 seconds.
    Revoke { name: String },
}

fn cell(v: &Value) -> String {
    v.as_str().map_or_else(|| "-".to_string(), str::to_string)
}

/// Runs one token command.
pub async fn run(args: &ClientArgs, cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    match cmd {
        TokensCommand::Create {
            name,
            role,
            expires_in,
        } => {
            let body = json!({ "name": name, "role": role, "expires_in": expires_in });
            let created: Value = api.call(Method::POST, "/v1/tokens", Some(&body)).await?;
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                // The token alone on stdout (for `$(...)`); the explanation on stderr.
                println!("{}", cell(&created["token"]));
                eprintln!(
                    "token {} (role {}, expires {}): store it now, it is not shown again",
                    cell(&created["name"]),
                    cell(&created["role"]),
                    created["expires_at"].as_str().unwrap_or("never"),
                );
            }
        }
        TokensCommand::List => {
            let list: Value = api.call(Method::GET, "/v1/tokens", none).await?;
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let rows: Vec<Vec<String>> = list["items"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        ["name", "role", "created_by", "expires_at", "last_used_at"]
                            .iter()
                            .map(|k| cell(&t[*k]))
                            .collect()
                    })
                    .collect();
                table(
                    &["NAME", "ROLE", "CREATED BY", "EXPIRES", "LAST USED"],
                    &rows,
                );
            }
        }
        TokensCommand::Revoke { name } => {
            let path = format!("/v1/tokens/{}", encode(&name));
            let _: Value = api.call(Method::DELETE, &path, none).await?;
            println!("revoked token {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
