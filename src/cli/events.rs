//! `drover events` (the feed, or the live stream with `--follow`) and `drover webhooks …`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::events::feed::Page;
use crate::events::webhooks::{TestResult, WebhookView};
use crate::events::Event;
use crate::resolve::dsn::encode;

/// Filters of `drover events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Event type or prefix: tenant.migrated, wave.*, *.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Tenant slug.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Wave id.
    #[arg(long)]
    pub wave: Option<String>,
    /// Exact actor, e.g. drover or api:cli:alice.
    #[arg(long)]
    pub actor: Option<String>,
    /// Events written at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Events written before this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// Page size (without --follow).
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Keep printing new events as they happen (Ctrl-C stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

impl EventsArgs {
    fn query(&self, with_limit: bool) -> String {
        let mut parts = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}={}", encode(v)));
            }
        };
        add("type", &self.event_type);
        add("tenant", &self.tenant);
        add("wave", &self.wave);
        add("actor", &self.actor);
        add("since", &self.since);
        add("until", &self.until);
        if with_limit {
            parts.push(format!("limit={}", self.limit));
        }
        parts.join("&")
    }
}

fn line(e: &Event) -> Vec<String> {
    let subject = e
        .tenant
        .clone()
        .or_else(|| e.wave_id.map(|w| w.to_string()))
        .unwrap_or_else(|| "-".into());
    vec![
        e.id.to_string(),
        e.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        e.event_type.clone(),
        subject,
        e.actor.clone(),
        e.payload.to_string(),
    ]
}

const HEADER: [&str; 6] = ["ID", "AT", "TYPE", "TENANT/WAVE", "ACTOR", "PAYLOAD"];

/// `drover events`.
pub async fn run(client: &ClientArgs, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&client.server)?;
    if args.follow {
        return follow(&api, client.output, &args).await;
    }
    let none: Option<&Value> = None;
    let page: Page = api
        .call(
            Method::GET,
            &format!("/v1/events?{}", args.query(true)),
            none,
        )
        .await?;
    if client.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&page)?);
    } else {
        let rows: Vec<Vec<String>> = page.items.iter().map(line).collect();
        table(&HEADER, &rows);
        if let Some(c) = page.next_cursor {
            eprintln!("(older events: add cursor={c} to the API query)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the SSE stream, reconnecting with Last-Event-ID when the connection drops.
async fn follow(api: &ApiClient, output: Output, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/events/stream?{}", args.query(false));
    let mut last: Option<String> = None;
    loop {
        let mut resp = api.stream(&path, last.as_deref()).await?;
        let mut buf = String::new();
        let (mut id, mut data) = (None::<String>, String::new());
        while let Some(chunk) = resp.chunk().await.unwrap_or(None) {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(nl) = buf.find('\n') {
                let l: String = buf.drain(..=nl).collect();
                let l = l.trim_end_matches(['\r', '\n']);
                if l.is_empty() {
                    if !data.is_empty() {
                        print_event(output, &data)?;
                        last = id.take().or(last.take());
                        data.clear();
                    }
                } else if let Some(v) = l.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = l.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        }
        eprintln!("(stream closed; reconnecting)");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn print_event(output: Output, data: &str) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{data}");
        return Ok(());
    }
    let e: Event = serde_json::from_str(data).context("reading a stream event")?;
    println!("{}", line(&e).join("  "));
    Ok(())
}

/// `drover webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe a URL to events, signed with the key behind a secret reference.
    ///
    /// Example: drover webhooks add ops --url https://hooks.example.com/drover --events 'wave.*,tenant.provisioning_failed' --secret-ref file:webhooks/ops
    Add {
        name: String,
        /// http:// or https:// URL receiving POSTs.
        #[arg(long)]
        url: String,
        /// Comma-separated types or prefixes.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Secret reference of the HMAC key (env:, file:, vault:).
        #[arg(long)]
        secret_ref: String,
        /// json or slack.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Every subscription with its delivery counts.
    List,
    /// One subscription.
    Show { name: String },
    /// Delete a subscription (its pending deliveries are dropped).
    Remove { name: String },
    /// Send a webhook.test event now and print what the receiver answered.
    Test { name: String },
}

fn print_hooks(output: Output, hooks: &[WebhookView]) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(hooks)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = hooks
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.url.clone(),
                h.events.join(","),
                h.deliveries.pending.to_string(),
                h.deliveries.delivered.to_string(),
                h.deliveries.dead.to_string(),
                h.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "URL",
            "EVENTS",
            "PENDING",
            "DELIVERED",
            "DEAD",
            "LAST ERROR",
        ],
        &rows,
    );
    Ok(())
}

/// Runs one webhooks command.
pub async fn webhooks(client: &ClientArgs, cmd: WebhooksCommand) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&client.server)?;
    let none: Option<&Value> = None;
    let path = |n: &str| format!("/v1/webhooks/{}", encode(n));
    match cmd {
        WebhooksCommand::Add {
            name,
            url,
            events,
            secret_ref,
            format,
        } => {
            let body = json!({"name": name, "url": url, "events": events, "secret_ref": secret_ref, "format": format});
            let h: WebhookView = api.call(Method::POST, "/v1/webhooks", Some(&body)).await?;
            print_hooks(client.output, &[h])?;
        }
        WebhooksCommand::List => {
            let all: Vec<WebhookView> = api.call(Method::GET, "/v1/webhooks", none).await?;
            print_hooks(client.output, &all)?;
        }
        WebhooksCommand::Show { name } => {
            let h: WebhookView = api.call(Method::GET, &path(&name), none).await?;
            print_hooks(client.output, &[h])?;
        }
        WebhooksCommand::Remove { name } => {
            let _: Value = api.call(Method::DELETE, &path(&name), none).await?;
            println!("removed webhook {name}");
        }
        WebhooksCommand::Test { name } => {
            let r: TestResult = api
                .call(Method::POST, &format!("{}/test", path(&name)), none)
                .await?;
            if client.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if r.ok {
                println!("delivered {} ({})", r.delivery_id, r.status.unwrap_or(0));
            } else {
                println!(
                    "failed {}: {}",
                    r.delivery_id,
                    r.error.unwrap_or_else(|| "unknown".into())
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
