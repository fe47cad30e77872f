//! `drover waves …`, `drover fleet` and `drover migrations list`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::Value;

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::config::parse_duration;
use crate::registry::FleetReport;
use crate::resolve::dsn::encode;
use crate::waves::timeline::Timeline;
use crate::waves::{CanarySpec, Selector, WaveRequest, WaveState, WaveView};

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
    /// Draw live progress until the wave ends; exit non-zero if it halts or is aborted.
    #[arg(long)]
    pub watch: bool,
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
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let (id, watch) = match cmd {
        WavesCommand::Start(a) => {
            let StartArgs {
                migration_set,
                target,
                labels,
                slugs,
                plan,
                canary_slugs,
                canary_count,
                canary_percent,
                batch_size,
                max_concurrency,
                max_per_host,
                max_failures,
                max_failure_percent,
                soak,
                lock_timeout,
                statement_timeout,
                max_attempts,
                dry_run,
                exclude_failed_of,
                analysis,
                acknowledge,
                watch,
            } = *a;
            let selector = Selector {
                labels: pairs(&labels)?,
                slugs: (!slugs.is_empty()).then_some(slugs),
                billing_plan: plan,
            };
            let canary = CanarySpec {
                slugs: (!canary_slugs.is_empty()).then_some(canary_slugs),
                count: canary_count,
                percent: canary_percent,
            };
            let req = WaveRequest {
                migration_set,
                target_version: target,
                selector: Some(selector),
                canary: Some(canary),
                batch_size,
                max_concurrency,
                max_per_host,
                max_failures,
                max_failure_percent,
                soak_seconds: soak.map(|d| d.as_secs() as i32),
                lock_timeout_ms: ms(lock_timeout),
                statement_timeout_ms: ms(statement_timeout),
                max_attempts,
                dry_run: dry_run.then_some(true),
                exclude_failed_of,
                analysis: analysis_arg(analysis)?,
                acknowledge: (!acknowledge.is_empty()).then_some(acknowledge),
                lock_retries: None,
            };
            let w: WaveView = api.call(Method::POST, "/v1/waves", Some(&req)).await?;
            if !watch {
                print_wave(args.output, &w)?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "{} {} started: {} tenants to V{}",
                if w.dry_run { "dry run" } else { "wave" },
                w.id,
                w.counts.total(),
                w.target_version
            );
            (w.id.to_string(), true)
        }
        WavesCommand::List => {
            let waves: Vec<WaveView> = api.call(Method::GET, "/v1/waves", none).await?;
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&waves)?);
            } else {
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
            }
            return Ok(ExitCode::SUCCESS);
        }
        WavesCommand::Show { id } => {
            let w: WaveView = api
                .call(Method::GET, &format!("/v1/waves/{}", encode(&id)), none)
                .await?;
            print_wave(args.output, &w)?;
            if args.output != Output::Json {
                let timeline: Timeline = api
                    .call(
                        Method::GET,
                        &format!("/v1/waves/{}/events", encode(&id)),
                        none,
                    )
                    .await?;
                print_timeline(&timeline);
            }
            return Ok(exit_for(w.state));
        }
        WavesCommand::Watch { id } => (id, true),
        WavesCommand::Pause { id } => return act(args, "pause", &id).await,
        WavesCommand::Resume { id } => return act(args, "resume", &id).await,
        WavesCommand::Abort { id } => return act(args, "abort", &id).await,
        WavesCommand::Promote { id } => return act(args, "promote", &id).await,
    };
    debug_assert!(watch);
    watch_wave(&api, &id).await
}

/// pause / resume / abort.
pub async fn act(args: &ClientArgs, action: &str, id: &str) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let w: WaveView = api
        .call(
            Method::POST,
            &format!("/v1/waves/{}/{action}", encode(id)),
            none,
        )
        .await?;
    print_wave(args.output, &w)?;
    Ok(ExitCode::SUCCESS)
}

/// The lint findings the wave's creator acknowledged, and its warnings.
fn print_lint(lint: &Value) {
    for (what, key) in [("acknowledged", "acknowledged"), ("warning", "warnings")] {
        for f in lint[key].as_array().into_iter().flatten() {
            println!(
                "lint     {what} {} at {}:{}",
                f["rule"].as_str().unwrap_or("?"),
                f["file"].as_str().unwrap_or("?"),
                f["line"]
            );
        }
    }
}

fn exit_for(state: WaveState) -> ExitCode {
    match state {
        WaveState::Halted | WaveState::Aborted => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

/// The wave's timeline, one line an event: time, type, actor and what the payload says.
fn print_timeline(timeline: &Timeline) {
    if timeline.items.is_empty() {
        return;
    }
    println!("timeline");
    for e in &timeline.items {
        let detail: Vec<String> = e
            .payload
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        println!(
            "  {}  {:<15} {:<20} {}",
            e.created_at.format("%Y-%m-%d %H:%M:%S"),
            e.event_type,
            e.actor,
            detail.join(" ")
        );
    }
}

fn print_wave(output: Output, w: &WaveView) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(w)?);
        return Ok(());
    }
    println!("wave     {}", w.id);
    println!(
        "state    {}{}",
        w.state,
        w.halt_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    println!(
        "target   V{}{}",
        w.target_version,
        if w.dry_run { " (dry run)" } else { "" }
    );
    if let Some(src) = w.exclude_failed_of {
        println!("excludes the tenants dry run {src} found failing");
    }
    if let (Some(by), Some(at)) = (&w.promoted_by, w.promoted_at) {
        println!("promoted by {by} at {}", at.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    print_lint(&w.plan["lint"]);
    let c = &w.counts;
    println!(
        "tenants  {} total: {} succeeded, {} failed, {} running, {} pending, {} skipped",
        c.total(),
        c.succeeded,
        c.failed,
        c.running,
        c.pending,
        c.skipped
    );
    if let Some(eta) = w.eta_seconds {
        println!("eta      ~{eta} s");
    }
    let rows: Vec<Vec<String>> = w
        .phases
        .iter()
        .map(|p| {
            let c = &p.counts;
            vec![
                p.name.clone(),
                p.total.to_string(),
                c.succeeded.to_string(),
                c.failed.to_string(),
                c.running.to_string(),
                c.pending.to_string(),
                c.skipped.to_string(),
            ]
        })
        .collect();
    println!();
    table(
        &[
            "PHASE", "TOTAL", "OK", "FAILED", "RUNNING", "PENDING", "SKIPPED",
        ],
        &rows,
    );
    if !w.failures.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = w
            .failures
            .iter()
            .map(|f| {
                vec![
                    f.slug.clone(),
                    f.kind.clone().unwrap_or_default(),
                    f.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&["FAILED TENANT", "KIND", "ERROR"], &rows);
    }
    if !w.skipped.is_empty() && w.dry_run_report.is_none() {
        println!();
        let rows: Vec<Vec<String>> = w
            .skipped
            .iter()
            .map(|f| vec![f.slug.clone(), f.error.clone().unwrap_or_default()])
            .collect();
        table(&["SKIPPED TENANT", "REASON"], &rows);
    }
    if let Some(r) = &w.dry_run_report {
        print_dry_run(r);
    }
    if let Some(a) = &w.analysis {
        print_analysis(a);
    }
    Ok(())
}

/// One line per distinct outcome: `count × file code: message: slugs`.
fn print_dry_run(r: &crate::waves::dry_run::DryRunReport) {
    println!();
    println!(
        "dry run  {} would succeed, {} would fail, {} not run, {} pending",
        r.would_succeed, r.would_fail, r.not_run, r.pending
    );
    for (title, groups) in [("fails", &r.failures), ("not run", &r.skipped)] {
        for g in groups {
            let what = [g.file.clone(), g.code.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let what = if what.is_empty() {
                g.kind.clone().unwrap_or_default()
            } else {
                what
            };
            println!(
                "  {} × {title} {what}: {}: {}",
                g.count,
                g.message,
                g.slugs.join(", ")
            );
            if let Some(d) = &g.example_detail {
                println!("      e.g. {d}");
            }
        }
    }
    let cost = |c: &crate::waves::dry_run::TenantCost| {
        let size = c.size_bytes.map_or("-".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / 1048576.0)
        });
        let ms = |v: Option<i64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        format!(
            "{} ({size}, {}, files {})",
            c.slug,
            ms(c.duration_ms),
            ms(c.migrate_ms)
        )
    };
    if !r.largest.is_empty() {
        let list: Vec<String> = r.largest.iter().map(cost).collect();
        println!("  largest  {}", list.join(", "));
    }
    if !r.slowest.is_empty() {
        let list: Vec<String> = r.slowest.iter().map(cost).collect();
        println!("  slowest  {}", list.join(", "));
    }
}

fn print_analysis(a: &crate::waves::analysis::AnalysisView) {
    println!();
    let rows: Vec<Vec<String>> = a
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.kind.clone(),
                format!("{}s", c.interval_seconds),
                c.runs.to_string(),
                format!("{}/{}", c.failures, c.failure_limit),
                format!("{}/{}", c.inconclusives, c.inconclusive_limit),
            ]
        })
        .collect();
    table(
        &[
            "CHECK",
            "TYPE",
            "EVERY",
            "RUNS",
            "FAILED/LIMIT",
            "INCONCLUSIVE/LIMIT",
        ],
        &rows,
    );
    if a.evaluations.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = a
        .evaluations
        .iter()
        .take(50)
        .map(|e| {
            vec![
                e.at.format("%H:%M:%S").to_string(),
                e.check.clone(),
                e.tenant.clone().unwrap_or_default(),
                e.value.clone().unwrap_or_default(),
                e.verdict.clone(),
                e.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["AT", "CHECK", "TENANT", "VALUE", "VERDICT", "DETAIL"],
        &rows,
    );
    if a.evaluations_total > 50 {
        println!(
            "({} measurements in all; -o json shows the last {})",
            a.evaluations_total,
            a.evaluations.len()
        );
    }
}

/// Live bars per phase until the wave reaches a final state.
pub(crate) async fn watch_wave(api: &ApiClient, id: &str) -> anyhow::Result<ExitCode> {
    let none: Option<&Value> = None;
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let header = multi.add(ProgressBar::new_spinner());
    let mut bars: BTreeMap<i32, ProgressBar> = BTreeMap::new();
    let mut last_state: Option<WaveState> = None;
    loop {
        let w: WaveView = api
            .call(Method::GET, &format!("/v1/waves/{}", encode(id)), none)
            .await?;
        for p in &w.phases {
            let bar = bars.entry(p.phase).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(p.total as u64));
                b.set_style(style.clone());
                b.set_prefix(p.name.clone());
                b
            });
            let c = &p.counts;
            bar.set_position((c.succeeded + c.failed + c.skipped) as u64);
            bar.set_message(format!(
                "ok {} failed {} running {}",
                c.succeeded, c.failed, c.running
            ));
        }
        let eta = w
            .eta_seconds
            .map(|s| format!(", eta ~{s}s"))
            .unwrap_or_default();
        header.set_message(format!(
            "wave {} {} → V{}{eta}",
            w.id, w.state, w.target_version
        ));
        if Some(w.state) != last_state {
            // Also as plain lines, for logs and terminals without bars.
            if multi.is_hidden() {
                eprintln!("wave {}: {}", w.id, w.state);
            }
            last_state = Some(w.state);
        }
        if matches!(
            w.state,
            WaveState::Completed | WaveState::Halted | WaveState::Aborted
        ) {
            header.finish_with_message(format!("wave {} {}", w.id, w.state));
            for b in bars.values() {
                b.finish();
            }
            if let Some(reason) = &w.halt_reason {
                eprintln!("{}: {reason}", w.state);
            }
            for f in &w.failures {
                eprintln!(
                    "  {} [{}]: {}",
                    f.slug,
                    f.kind.as_deref().unwrap_or("?"),
                    f.error.as_deref().unwrap_or("")
                );
            }
            if let Some(r) = &w.dry_run_report {
                print_dry_run(r);
                // A script gating a release on the dry run needs a failing exit status.
                return Ok(if r.would_fail > 0 {
                    ExitCode::FAILURE
                } else {
                    exit_for(w.state)
                });
            }
            println!(
                "wave {} {}: {} succeeded, {} failed, {} skipped",
                w.id, w.state, w.counts.succeeded, w.counts.failed, w.counts.skipped
            );
            return Ok(exit_for(w.state));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `drover fleet`.
pub async fn fleet(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let f: FleetReport = api.call(Method::GET, "/v1/fleet", none).await?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "latest version  {}",
        f.latest_version.map_or("-".into(), |v| format!("V{v}"))
    );
    println!("tenants         {} ({} behind)", f.tenants, f.behind);
    let rows: Vec<Vec<String>> = f
        .by_version
        .iter()
        .map(|v| {
            vec![
                v.version
                    .map_or("never migrated".into(), |v| format!("V{v}")),
                v.tenants.to_string(),
            ]
        })
        .collect();
    println!();
    table(&["VERSION", "TENANTS"], &rows);
    for (title, list) in [
        ("DRIFTED", &f.drifted),
        ("NEEDS ATTENTION", &f.needs_attention),
    ] {
        if !list.is_empty() {
            println!();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.slug.clone(),
                        i.issue["message"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            table(&[title, "ISSUE"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `drover migrations list`: the local files as this binary sees them.
pub fn migrations_list(dir: &std::path::Path, output: Output) -> anyhow::Result<ExitCode> {
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
