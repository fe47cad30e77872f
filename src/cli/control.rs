//! The commands that run on this machine against the configuration and the control DB,
//! not through a daemon: `serve`, `migrate-control`, `check-config`, `check`, `doctor`.

use std::process::ExitCode;
use std::time::Duration;

use super::{init_tracing, EXIT_FINDINGS};
use crate::config::{self, Config};
use crate::db;
use crate::registry::Registry;

/// `drover serve`: the daemon, until SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    init_tracing(Some(&config));
    crate::app::serve(config).await?;
    Ok(ExitCode::SUCCESS)
}

/// `drover migrate-control`.
pub async fn migrate_control(config: Config) -> anyhow::Result<ExitCode> {
    init_tracing(Some(&config));
    let applied =
        db::migrate_control(config.require_database_url()?, config.ca_file.as_deref()).await?;
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

/// `drover check-config`: every problem, or the settings with secrets shown as set or not.
pub fn check_config(
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

/// `drover check`: the registry health report.
pub async fn check(
    config: &Config,
    stuck_after: Option<Duration>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    init_tracing(None);
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

/// `drover doctor`: the preflight checks.
pub async fn doctor(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    use crate::preflight::Outcome;
    init_tracing(None);
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
