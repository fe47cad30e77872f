//! `drover waves …`: start a wave from flags, list, show and steer waves through the
//! daemon's API. How a wave is printed is in [`print`]; the live progress bars of
//! `--watch` and `waves watch` in [`watch`].

mod print;
mod watch;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::config::parse_duration;
use crate::resolve::dsn::encode;
use crate::waves::plan::OnDrift;
use crate::waves::timeline::Timeline;
use crate::waves::{CanarySpec, Selector, WaveRequest, WaveState, WaveView};

pub(crate) use watch::watch_wave;

/// Arguments of `drover waves start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The migration set to run: a pushed set's id or label, or `latest` (default: the
    /// newest pushed set, else the daemon's migrations directory).
    #[arg(long = "set", value_name = "ID|LABEL|latest")]
    pub migration_set: Option<String>,
    /// Version to reach (default: the latest migration of the set).
    #[arg(long)]
    pub target: Option<i32>,
    /// Only tenants with this label (key=value, repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Only these tenants (repeatable).
    #[arg(long = "slug")]
    pub slugs: Vec<String>,
    /// Only tenants on this billing plan.
    #[arg(long)]
    pub plan: Option<String>,
    /// Canary tenants (repeatable; default: tenants flagged canary).
    #[arg(long = "canary-slug")]
    pub canary_slugs: Vec<String>,
    /// Pick N canaries deterministically.
    #[arg(long)]
    pub canary_count: Option<u32>,
    /// Pick N % of the tenants as canaries.
    #[arg(long)]
    pub canary_percent: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<i32>,
    #[arg(long)]
    pub max_concurrency: Option<i32>,
    #[arg(long)]
    pub max_per_host: Option<i32>,
    /// Halt when more than N tenants failed (default: halt on the first failure).
    #[arg(long)]
    pub max_failures: Option<i32>,
    /// Halt when more than P % of the tenants failed.
    #[arg(long)]
    pub max_failure_percent: Option<f64>,
    /// Soak time after the canaries, e.g. 30s, 5m.
    #[arg(long, value_parser = parse_duration)]
    pub soak: Option<Duration>,
    /// Per-tenant lock_timeout, e.g. 5s.
    #[arg(long, value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// Per-tenant statement_timeout, e.g. 10m.
    #[arg(long, value_parser = parse_duration)]
    pub statement_timeout: Option<Duration>,
    #[arg(long)]
    pub max_attempts: Option<i32>,
    /// Run every pending migration in a transaction that is always rolled back and report
    /// who would fail and why; nothing is written to any tenant.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip (quarantine) the tenants this completed dry-run wave found failing.
    #[arg(long, value_name = "DRY_RUN_WAVE_ID")]
    pub exclude_failed_of: Option<uuid::Uuid>,
    /// Canary analysis checks: a JSON array, or @FILE holding one (see the README).
    #[arg(long, value_name = "JSON|@FILE")]
    pub analysis: Option<String>,
    /// Accept the error findings of this lint rule (repeat for several); stored in the plan.
    #[arg(long, value_name = "RULE")]
    pub acknowledge: Vec<String>,
    /// Tenants with schema drift: `proceed` (default; named in the plan) or `skip`
    /// (quarantined, left untouched).
    #[arg(long, value_name = "proceed|skip", value_parser = parse_on_drift)]
    pub on_drift: Option<OnDrift>,
    /// Draw live progress until the wave ends; exit non-zero if it halts or is aborted.
    #[arg(long)]
    pub watch: bool,
}

fn parse_on_drift(v: &str) -> Result<OnDrift, String> {
    match v {
        "proceed" => Ok(OnDrift::Proceed),
        "skip" => Ok(OnDrift::Skip),
        _ => Err("expected proceed or skip".into()),
    }
}

impl StartArgs {
    /// The `POST /v1/waves` body: what was not given is left to the daemon's defaults.
    fn request(self) -> anyhow::Result<WaveRequest> {
        let selector = Selector {
            labels: pairs(&self.labels)?,
            slugs: (!self.slugs.is_empty()).then_some(self.slugs),
            billing_plan: self.plan,
        };
        let canary = CanarySpec {
            slugs: (!self.canary_slugs.is_empty()).then_some(self.canary_slugs),
            count: self.canary_count,
            percent: self.canary_percent,
        };
        Ok(WaveRequest {
            migration_set: self.migration_set,
            target_version: self.target,
            selector: Some(selector),
            canary: Some(canary),
            batch_size: self.batch_size,
            max_concurrency: self.max_concurrency,
            max_per_host: self.max_per_host,
            max_failures: self.max_failures,
            max_failure_percent: self.max_failure_percent,
            soak_seconds: self.soak.map(|d| d.as_secs() as i32),
            lock_timeout_ms: ms(self.lock_timeout),
            statement_timeout_ms: ms(self.statement_timeout),
            max_attempts: self.max_attempts,
            dry_run: self.dry_run.then_some(true),
            exclude_failed_of: self.exclude_failed_of,
            analysis: analysis_arg(self.analysis)?,
            acknowledge: (!self.acknowledge.is_empty()).then_some(self.acknowledge),
            lock_retries: None,
            on_drift: self.on_drift,
        })
    }
}

/// Wave commands.
#[derive(Debug, Subcommand)]
pub enum WavesCommand {
    /// Start a wave (canaries, soak, then batches) and optionally watch it.
    ///
    /// Example: drover waves start --canary-count 2 --batch-size 50 --max-failures 3 --soak 5m --watch
    Start(Box<StartArgs>),
    /// Recent waves.
    List,
    /// One wave: state, counts, phases, failures.
    Show { id: String },
    /// Live progress bars until the wave ends; exits non-zero if it halts or is aborted.
    Watch { id: String },
    /// Stop claiming new tenants (in-flight ones finish).
    Pause { id: String },
    /// Continue a paused wave, or retry the failed tenants of a halted one.
    Resume { id: String },
    /// End the wave; pending tenants are skipped.
    Abort { id: String },
    /// End a soaking wave's soak now and start its batches (recorded with your name).
    Promote { id: String },
}

/// `--analysis`: inline JSON or `@path`.
fn analysis_arg(
    v: Option<String>,
) -> anyhow::Result<Option<Vec<crate::waves::analysis::CheckSpec>>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let text = match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--analysis: cannot read {path}: {e}"))?,
        None => v,
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("--analysis: expected a JSON array of checks: {e}"))
}

fn pairs(v: &[String]) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if v.is_empty() {
        return Ok(None);
    }
    v.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("expected key=value, got {p:?}"))
        })
        .collect::<anyhow::Result<_>>()
        .map(Some)
}

fn ms(d: Option<Duration>) -> Option<i32> {
    d.map(|d| d.as_millis().min(i32::MAX as u128) as i32)
}

/// Runs one wave command.
pub async fn run(args: &ClientArgs, cmd: WavesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WavesCommand::Start(a) => start(args, *a).await,
        WavesCommand::List => list(args).await,
        WavesCommand::Show { id } => show(args, &id).await,
        WavesCommand::Watch { id } => watch_wave(&ApiClient::new(&args.server)?, &id).await,
        WavesCommand::Pause { id } => act(args, "pause", &id).await,
        WavesCommand::Resume { id } => act(args, "resume", &id).await,
        WavesCommand::Abort { id } => act(args, "abort", &id).await,
        WavesCommand::Promote { id } => act(args, "promote", &id).await,
    }
}

/// `drover waves start`: creates the wave, then prints it or (`--watch`) follows it.
async fn start(args: &ClientArgs, a: StartArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let watch = a.watch;
    let req = a.request()?;
    let w: WaveView = api.call(Method::POST, "/v1/waves", Some(&req)).await?;
    if !watch {
        print::wave(args.output, &w)?;
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{} {} started: {} tenants to V{}",
        if w.dry_run { "dry run" } else { "wave" },
        w.id,
        w.counts.total(),
        w.target_version
    );
    watch_wave(&api, &w.id.to_string()).await
}

/// `drover waves list`.
async fn list(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let waves: Vec<WaveView> = api.call(Method::GET, "/v1/waves", None::<&Value>).await?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&waves)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = waves
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                if w.dry_run {
                    format!("{} (dry run)", w.state)
                } else {
                    w.state.to_string()
                },
                format!("V{}", w.target_version),
                format!("{}/{}", w.counts.succeeded, w.counts.total()),
                w.counts.failed.to_string(),
                w.created_at.format("%Y-%m-%d %H:%M").to_string(),
                w.created_by.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "TARGET", "DONE", "FAILED", "CREATED", "BY"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `drover waves show`: the wave, and its timeline for people.
async fn show(args: &ClientArgs, id: &str) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let w: WaveView = api
        .call(Method::GET, &format!("/v1/waves/{}", encode(id)), none)
        .await?;
    print::wave(args.output, &w)?;
    if args.output != Output::Json {
        let timeline: Timeline = api
            .call(
                Method::GET,
                &format!("/v1/waves/{}/events", encode(id)),
                none,
            )
            .await?;
        print::timeline(&timeline);
    }
    Ok(exit_for(w.state))
}

/// pause / resume / abort / promote.
async fn act(args: &ClientArgs, action: &str, id: &str) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let w: WaveView = api
        .call(
            Method::POST,
            &format!("/v1/waves/{}/{action}", encode(id)),
            none,
        )
        .await?;
    print::wave(args.output, &w)?;
    Ok(ExitCode::SUCCESS)
}

/// Non-zero for a wave that ended badly, so scripts can gate on it.
fn exit_for(state: WaveState) -> ExitCode {
    match state {
        WaveState::Halted | WaveState::Aborted => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}
