//! The command line: argument definitions and dispatch. Daemon-side commands (`serve`,
//! `migrate-control`, `check`, `check-config`) run against the control DB directly; the
//! `tenants` commands talk to a running daemon over HTTP like any other client.
//!
//! Exit codes: 0 success, 1 failure (error printed as one line; for `apply`, also invalid
//! definitions, each problem on its own line), 2 usage error, 3 `drover check` found
//! inconsistencies.

mod apply;
mod client;
mod events;
mod lint;
mod output;
mod quickstart;
mod schedules;
mod servers;
mod sets;
mod tenants;
mod tokens;
mod waves;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, LogFormat};
use crate::db;
use crate::registry::Registry;

pub use tenants::TenantsCommand;
pub use waves::WavesCommand;

/// drover: tenant registry, DSN resolution and canary-first migration waves for
/// database-per-tenant PostgreSQL fleets.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file; DROVER_* environment variables override it.
    #[arg(long, short = 'c', global = true, env = "DROVER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// Where the daemon is and how to print its answers.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Base URL of a running drover daemon.
    #[arg(
        long,
        global = true,
        env = "DROVER_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    pub output: Output,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// See drover work in a minute: a throwaway PostgreSQL, 24 tenants, a canary-then-batch wave.
    ///
    /// Example: cargo run --release -- quickstart --exit
    Quickstart(quickstart::QuickstartArgs),
    /// Run the daemon (migrates the control schema first).
    ///
    /// Example: DROVER_DATABASE_URL=postgres://drover@localhost/drover DROVER_ADMIN_TOKEN=$(openssl rand -hex 32) drover serve
    Serve,
    /// Apply pending control-plane migrations and exit (safe to run from several places at once).
    MigrateControl,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
    /// Report registry inconsistencies; exits 3 when anything is found.
    ///
    /// Example: drover check --stuck-after 30m
    Check {
        /// How long a tenant may stay in provisioning before it is reported (default: config).
        #[arg(long, value_parser = config::parse_duration)]
        stuck_after: Option<Duration>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check what drover needs from its surroundings: the control DB (PostgreSQL 13+,
    /// gen_random_uuid(), pg_trgm), each provisioning server (reachable, CREATEDB and
    /// CREATEROLE), the secrets directory; each problem with what to do. Exits 3 when a
    /// check failed (warnings do not count).
    ///
    /// Example: drover doctor
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the DSN and connection parameters of an active tenant
    /// (token: DROVER_RESOLVER_TOKEN or DROVER_ADMIN_TOKEN).
    ///
    /// Example: psql "$(drover resolve acme -o json | jq -r .dsn)"
    Resolve {
        #[command(flatten)]
        client: ClientArgs,
        /// The tenant's slug.
        slug: String,
    },
    /// Start, watch and steer migration waves through a running daemon.
    Waves {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: Box<WavesCommand>,
    },
    /// Scheduled waves (cron expressions with a timezone and a wave template).
    Schedules {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: schedules::SchedulesCommand,
    },
    /// The fleet's event feed, newest first; --follow streams new events live.
    ///
    /// Example: drover events --type 'wave.*' --follow
    Events {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: events::EventsArgs,
    },
    /// Signed webhook subscriptions to fleet events.
    Webhooks {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: events::WebhooksCommand,
    },
    /// Schema versions across the fleet; drifted tenants and tenants needing attention.
    Fleet {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The tenant migration files: the local directory (DROVER_MIGRATIONS_DIR) as drover
    /// reads it, and the sets pushed to the control DB.
    Migrations {
        #[command(subcommand)]
        command: MigrationsCommand,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: Output,
    },
    /// Print a shell completion script.
    ///
    /// Example: drover completions bash > /etc/bash_completion.d/drover
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Make the registry match YAML tenant definitions: validate every file, print the plan, apply it.
    ///
    /// Example: drover apply -f tenants/ --dry-run
    Apply {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: apply::ApplyArgs,
    },
    /// Write every live tenant as a definition file (DIR/SLUG.yaml; secrets stay references).
    ///
    /// Example: drover export -o tenants/
    Export(apply::ExportArgs),
    /// Named API tokens with roles (viewer, resolver, operator, admin, publisher).
    ///
    /// Example: drover tokens create grafana --role viewer --expires-in 90d
    Tokens {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// Provisioning servers: tenants per server, capacity, reachability.
    ///
    /// Example: drover servers list
    Servers {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: servers::ServersCommand,
    },
    /// Manage tenants through a running daemon.
    Tenants {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: Box<TenantsCommand>,
    },
}

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

/// Exit code for `drover check` findings and failed `drover doctor` checks.
pub const EXIT_FINDINGS: u8 = 3;

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, without repeating text already shown.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(s.trim()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(s.trim());
    }
    out
}

fn init_tracing(config: Option<&Config>) {
    let (filter, format) = match config {
        Some(c) => (c.log_filter.clone(), c.log_format),
        None => ("warn".to_string(), LogFormat::Pretty),
    };
    let mut filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // At debug, tokio-postgres logs every statement's text and parameters: provisioning's
    // CREATE ROLE … PASSWORD '<SCRAM verifier>' and tenant data would reach the log. At
    // info it logs every server notice (`relation … already exists, skipping` once per
    // tenant of a wave), which tears the live progress bars. Capped at warn here, whatever
    // DROVER_LOG asks for (drover's own spans say which statement failed).
    if let Ok(cap) = "tokio_postgres=warn".parse() {
        filter = filter.add_directive(cap);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Serve => {
            let config = load()?;
            init_tracing(Some(&config));
            crate::app::serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "drover", &mut script);
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            Ok(ExitCode::SUCCESS)
        }
        Command::Quickstart(args) => {
            init_tracing(None);
            quickstart::run(args).await
        }
        Command::MigrateControl => {
            let config = load()?;
            init_tracing(Some(&config));
            let applied =
                db::migrate_control(config.require_database_url()?, config.ca_file.as_deref())
                    .await?;
            if applied.is_empty() {
                println!(
                    "control schema already at version {}",
                    db::control_head_version()
                );
            } else {
                println!("applied control migrations {applied:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => check_config(load),
        Command::Check { stuck_after, json } => {
            let config = load()?;
            init_tracing(None);
            check(&config, stuck_after, json).await
        }
        Command::Doctor { json } => {
            let config = load()?;
            init_tracing(None);
            doctor(&config, json).await
        }
        Command::Resolve { client, slug } => {
            init_tracing(None);
            tenants::resolve(&client, &slug).await
        }
        Command::Waves { client, command } => {
            init_tracing(None);
            match *command {
                WavesCommand::Pause { id } => waves::act(&client, "pause", &id).await,
                WavesCommand::Resume { id } => waves::act(&client, "resume", &id).await,
                WavesCommand::Abort { id } => waves::act(&client, "abort", &id).await,
                WavesCommand::Promote { id } => waves::act(&client, "promote", &id).await,
                other => waves::run(&client, other).await,
            }
        }
        Command::Schedules { client, command } => {
            init_tracing(None);
            match command {
                schedules::SchedulesCommand::Enable { name } => {
                    schedules::set_enabled(&client, &name, true).await
                }
                schedules::SchedulesCommand::Disable { name } => {
                    schedules::set_enabled(&client, &name, false).await
                }
                other => schedules::run(&client, other).await,
            }
        }
        Command::Events { client, args } => {
            init_tracing(None);
            events::run(&client, args).await
        }
        Command::Webhooks { client, command } => {
            init_tracing(None);
            events::webhooks(&client, command).await
        }
        Command::Fleet { client } => {
            init_tracing(None);
            waves::fleet(&client).await
        }
        Command::Migrations {
            command: MigrationsCommand::List { set, server },
            output,
        } => match set {
            Some(id) => sets::files(&server, &id, output).await,
            None => {
                let config = load()?;
                waves::migrations_list(&config.migrations_dir, output)
            }
        },
        Command::Migrations {
            command: MigrationsCommand::Push { dir, label, server },
            output,
        } => {
            let dir = match dir {
                Some(d) => d,
                None => load()?.migrations_dir,
            };
            sets::push(&server, &dir, label, output).await
        }
        Command::Migrations {
            command: MigrationsCommand::Sets { server },
            output,
        } => sets::list(&server, output).await,
        Command::Migrations {
            command: MigrationsCommand::Lint { dir, format, after },
            output,
        } => {
            let dir = match dir {
                Some(d) => d,
                None => load()?.migrations_dir,
            };
            // `-o json` before the subcommand means the same as `--format json` after it.
            let format = if output == Output::Json {
                output
            } else {
                format
            };
            lint::lint(&dir, after, format)
        }
        Command::Apply { client, args } => {
            init_tracing(None);
            apply::apply(&client, args).await
        }
        Command::Export(args) => {
            init_tracing(None);
            apply::export(&args).await
        }
        Command::Tenants { client, command } => {
            init_tracing(None);
            tenants::run(&client, *command).await
        }
        Command::Tokens { client, command } => {
            init_tracing(None);
            tokens::run(&client, command).await
        }
        Command::Servers { client, command } => {
            init_tracing(None);
            servers::run(&client, command).await
        }
    }
}

fn check_config(
    load: impl Fn() -> Result<Config, config::ConfigError>,
) -> anyhow::Result<ExitCode> {
    let config = match load() {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(e) = config.require_serve() {
        eprint!("{e}");
        return Ok(ExitCode::FAILURE);
    }
    let set = |b: bool| if b { "set" } else { "not set" };
    println!("configuration ok");
    println!(
        "  database_url              {}",
        set(config.database_url.is_some())
    );
    println!("  listen                    {}", config.listen);
    println!(
        "  admin_token               {}",
        set(config.admin_token.is_some())
    );
    println!(
        "  resolver_token            {}",
        set(config.resolver_token.is_some())
    );
    println!(
        "  migrations_dir            {}",
        config.migrations_dir.display()
    );
    println!(
        "  secrets_dir               {}",
        config
            .secrets
            .dir
            .as_ref()
            .map_or("not set".into(), |p| p.display().to_string())
    );
    println!(
        "  provision_servers         {}",
        if config.provision.servers.is_empty() {
            "not set".to_string()
        } else {
            config
                .provision
                .servers
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "  env_secret_prefix         {}",
        config.ref_scope.env_prefix()
    );
    println!(
        "  vault_allowed_prefixes    {}",
        config.ref_scope.vault_prefixes()
    );
    println!("  instance_id               {}", config.instance_id);
    println!("  pool_size                 {}", config.pool_size);
    println!(
        "  provisioning_stuck_after  {:?}",
        config.provisioning_stuck_after
    );
    println!("  shutdown_grace            {:?}", config.shutdown_grace);
    println!(
        "  prometheus_url            {}",
        config.prometheus_url.as_deref().unwrap_or("not set")
    );
    Ok(ExitCode::SUCCESS)
}

async fn check(
    config: &Config,
    stuck_after: Option<Duration>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let pool = db::control_pool(config.require_database_url()?, 2, config.ca_file.as_deref())?;
    let registry = Registry::new(pool.clone());
    let report = registry
        .health(stuck_after.unwrap_or(config.provisioning_stuck_after))
        .await?;
    pool.close();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.ok {
        println!("registry ok: no inconsistencies found");
    } else {
        for f in &report.findings {
            println!("{} ({}): {}", f.kind, f.slugs.len(), f.slugs.join(", "));
            println!("  {}", f.description);
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

/// Tenants whose secret reference the configured scopes refuse (they do not resolve):
/// after an upgrade that narrowed the scopes, the list of secrets to move.
async fn refs_in_scope(pool: &deadpool_postgres::Pool, config: &Config) -> crate::preflight::Check {
    use crate::preflight::{Check, Outcome};
    let registry = Registry::with_scope(pool.clone(), config.ref_scope.clone());
    let (outcome, message, fix) = match registry.refs_out_of_scope().await {
        Ok(found) if found.is_empty() => (
            Outcome::Ok,
            "every tenant's secret reference is inside the scopes".to_string(),
            None,
        ),
        Ok(found) => (
            Outcome::Failed,
            found
                .iter()
                .map(|(slug, r, rule)| format!("{slug} ({r}): {rule}"))
                .collect::<Vec<_>>()
                .join("; "),
            Some(format!(
                "move each secret under {} in the secrets directory (or to an allowed Vault path) and PATCH the tenant's db_secret_ref; see the README's Security model",
                config.ref_scope.file_prefix(crate::secrets::Purpose::Tenant)
            )),
        ),
        Err(e) => (
            Outcome::Failed,
            format!("cannot read the tenants: {e}"),
            Some("check DROVER_DATABASE_URL".to_string()),
        ),
    };
    Check {
        name: "secret_refs.scope".into(),
        outcome,
        message,
        fix,
    }
}

async fn doctor(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    use crate::preflight::Outcome;
    let pool = db::control_pool(config.require_database_url()?, 2, config.ca_file.as_deref())?;
    let mut checks = crate::preflight::run(&config.provision, &config.secrets, &pool).await;
    checks.push(refs_in_scope(&pool, config).await);
    pool.close();
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let mark = match c.outcome {
                Outcome::Ok => "ok  ",
                Outcome::Warning => "warn",
                Outcome::Failed => "FAIL",
            };
            println!("{mark} {}: {}", c.name, c.message);
            if let Some(fix) = &c.fix {
                println!("     fix: {fix}");
            }
        }
    }
    let failed = checks.iter().any(|c| c.outcome == Outcome::Failed);
    Ok(if failed {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
