//! `drover schedules …`.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::resolve::dsn::encode;
use crate::schedule::ScheduleView;

/// Schedule commands.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// All schedules with their next fire time.
    List,
    /// Create a schedule. CRON is crontab syntax (0 and 7 are Sunday, 1-5 is Mon-Fri),
    /// optionally with seconds first, or a macro like @daily.
    ///
    /// Example: drover schedules create nightly "0 3 * * 1-5" --timezone Europe/Berlin --template '{"batch_size": 50}'
    Create {
        name: String,
        cron: String,
        /// IANA timezone the expression is read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// The wave each tick starts, as the JSON body of POST /v1/waves.
        #[arg(long)]
        template: Option<String>,
        /// What a tick does while the previous wave is unfinished: skip or queue.
        #[arg(long, default_value = "skip")]
        on_overlap: String,
        /// How late a missed tick may still fire, in seconds.
        #[arg(long)]
        misfire_grace_seconds: Option<i32>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// One schedule, with its next five fire times in its timezone.
    Show { name: String },
    /// Let the schedule fire.
    Enable { name: String },
    /// Stop the schedule from firing.
    Disable { name: String },
    /// Delete the schedule (its waves stay).
    Delete { name: String },
    /// Start the schedule's wave now.
    Trigger { name: String },
}

fn print(output: Output, s: &ScheduleView) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("name        {}", s.name);
    println!(
        "cron        {}   (as the cron crate reads it: {})",
        s.cron, s.cron_translated
    );
    println!("timezone    {}", s.timezone);
    println!("enabled     {}", s.enabled);
    println!("on overlap  {}", s.on_overlap);
    println!(
        "last fired  {}",
        s.last_fire_at.map_or("-".into(), |t| t.to_rfc3339())
    );
    println!("template    {}", s.template);
    println!("next fires:");
    for f in &s.next_fires {
        println!("  {f}");
    }
    Ok(())
}

/// Runs one schedule command.
pub async fn run(args: &ClientArgs, cmd: SchedulesCommand) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let path = |n: &str| format!("/v1/schedules/{}", encode(n));
    match cmd {
        SchedulesCommand::List => {
            let all: Vec<ScheduleView> = api.call(Method::GET, "/v1/schedules", none).await?;
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.cron.clone(),
                            s.timezone.clone(),
                            if s.enabled { "yes".into() } else { "no".into() },
                            s.next_fires.first().cloned().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["NAME", "CRON", "TIMEZONE", "ENABLED", "NEXT"], &rows);
            }
        }
        SchedulesCommand::Create {
            name,
            cron,
            timezone,
            template,
            on_overlap,
            misfire_grace_seconds,
            disabled,
        } => {
            let template: Value = match template {
                Some(t) => serde_json::from_str(&t)
                    .map_err(|e| anyhow::anyhow!("--template is not JSON: {e}"))?,
                None => json!({}),
            };
            let body = json!({
                "name": name, "cron": cron, "timezone": timezone, "template": template, "on_overlap": on_overlap,
                "misfire_grace_seconds": misfire_grace_seconds.unwrap_or(300), "enabled": !disabled,
            });
            let s: ScheduleView = api.call(Method::POST, "/v1/schedules", Some(&body)).await?;
            print(args.output, &s)?;
        }
        SchedulesCommand::Show { name } => {
            let s: ScheduleView = api.call(Method::GET, &path(&name), none).await?;
            print(args.output, &s)?;
        }
        SchedulesCommand::Enable { name } => return set_enabled(args, &name, true).await,
        SchedulesCommand::Disable { name } => return set_enabled(args, &name, false).await,
        SchedulesCommand::Delete { name } => {
            let _: Value = api.call(Method::DELETE, &path(&name), none).await?;
            println!("deleted schedule {name}");
        }
        SchedulesCommand::Trigger { name } => {
            let fired: Value = api
                .call(Method::POST, &format!("{}/trigger", path(&name)), none)
                .await?;
            println!("{}", serde_json::to_string_pretty(&fired)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `enable` / `disable`.
async fn set_enabled(args: &ClientArgs, name: &str, enabled: bool) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let path = format!("/v1/schedules/{}", encode(name));
    let s: ScheduleView = api
        .call(Method::PATCH, &path, Some(&json!({ "enabled": enabled })))
        .await?;
    print(args.output, &s)?;
    Ok(ExitCode::SUCCESS)
}
