//! The command line: argument definitions and dispatch.
//!
//! - On this machine, against the configuration and the control DB ([`control`]): `serve`,
//!   `migrate-control`, `check-config`, `check`, `doctor`; `migrations` reads the local
//!   files or talks to the daemon about pushed sets ([`migrations`]).
//! - Clients of a running daemon over its HTTP API ([`client`]): `tenants`, `resolve`,
//!   `waves`, `schedules`, `events`, `webhooks`, `fleet`, `drift`, `apply`/`export`, `tokens`,
//!   `servers`; one file each. `quickstart` starts a daemon in-process and is its client.
//!
//! Exit codes: 0 success, 1 failure (error printed as one line; for `apply`, also invalid
//! definitions, each problem on its own line), 2 usage error, 3 `drover check` found
//! inconsistencies or a `drover doctor` check failed.

mod apply;
mod client;
mod control;
mod drift;
mod events;
mod fleet;
mod lint;
mod migrations;
mod output;
pub mod quickstart;
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

pub use migrations::MigrationsCommand;
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
    /// Schema versions across the fleet; tenants with history drift or schema drift, and
    /// tenants needing attention.
    Fleet {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Schema drift: the fleet grouped by what each tenant's schema really is, each group
    /// compared with the expected schema of its version.
    ///
    /// Example: drover drift scan --wait
    Drift {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: Option<drift::DriftCommand>,
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
        // On this machine, against the configuration and the control DB.
        Command::Serve => control::serve(load()?).await,
        Command::MigrateControl => control::migrate_control(load()?).await,
        Command::CheckConfig => control::check_config(load),
        Command::Check { stuck_after, json } => control::check(&load()?, stuck_after, json).await,
        Command::Doctor { json } => control::doctor(&load()?, json).await,
        Command::Migrations { command, output } => migrations::run(command, output, load).await,
        Command::Completions { shell } => completions(shell),
        // Clients of a daemon (quickstart starts its own).
        Command::Quickstart(args) => quiet(quickstart::run(args)).await,
        Command::Resolve { client, slug } => quiet(tenants::resolve(&client, &slug)).await,
        Command::Tenants { client, command } => quiet(tenants::run(&client, *command)).await,
        Command::Waves { client, command } => quiet(waves::run(&client, *command)).await,
        Command::Schedules { client, command } => quiet(schedules::run(&client, command)).await,
        Command::Events { client, args } => quiet(events::run(&client, args)).await,
        Command::Webhooks { client, command } => quiet(events::webhooks(&client, command)).await,
        Command::Fleet { client } => quiet(fleet::fleet(&client)).await,
        Command::Drift { client, command } => quiet(drift::run(&client, command)).await,
        Command::Apply { client, args } => quiet(apply::apply(&client, args)).await,
        Command::Export(args) => quiet(apply::export(&args)).await,
        Command::Tokens { client, command } => quiet(tokens::run(&client, command)).await,
        Command::Servers { client, command } => quiet(servers::run(&client, command)).await,
    }
}

/// Runs a client command with only warnings logged (to stderr, away from its output).
async fn quiet<F: std::future::Future>(command: F) -> F::Output {
    init_tracing(None);
    command.await
}

/// `drover completions SHELL`.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "drover", &mut script);
    // A closed pipe (`| head`) is the reader's choice, not an error.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
    Ok(ExitCode::SUCCESS)
}
