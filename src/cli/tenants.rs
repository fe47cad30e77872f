//! `drover tenants …`: the registry through the daemon's API.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::ApiClient;
use super::output::table;
use super::{ClientArgs, Output};
use crate::registry::{Event, NewTenant, Page, Tenant, TenantPatch, TenantStatus};
use crate::resolve::dsn::encode;

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List tenants (all pages unless --limit is given).
    ///
    /// Example: drover tenants list --status active --label plan=pro
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only tenants with these labels (key=value, repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Substring of the slug or the display name (case-insensitive).
        #[arg(long)]
        search: Option<String>,
        /// Tenants with this contact e-mail (case-insensitive, exact).
        #[arg(long)]
        email: Option<String>,
        /// Include soft-deleted tenants.
        #[arg(long)]
        include_deleted: bool,
        /// Show at most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one tenant.
    Get { slug: String },
    /// Register a tenant whose database already exists, or (--provision) have drover
    /// create its role and database, store the password and migrate it.
    ///
    /// Example: drover tenants create acme --display-name "Acme Corp" --db-host db1 --db-name t_acme --db-user t_acme --secret-ref file:tenants/acme --status active
    ///
    /// Example: drover tenants create acme --display-name "Acme Corp" --db-host db1 --db-name t_acme --db-user t_acme --secret-ref file:tenants/acme --provision --wait
    Create {
        slug: String,
        /// Default: the slug.
        #[arg(long)]
        display_name: Option<String>,
        /// Required unless --provision (then: the provisioning server's host).
        #[arg(long)]
        db_host: Option<String>,
        /// Default 5432 (with --provision: the provisioning server's port).
        #[arg(long)]
        db_port: Option<i32>,
        /// Required unless --provision (then: the provision_db_name template, t_<slug>).
        #[arg(long)]
        db_name: Option<String>,
        /// Required unless --provision (then: the provision_db_user template, t_<slug>).
        #[arg(long)]
        db_user: Option<String>,
        /// Secret reference for the password: env:VAR, file:path or vault:mount/path#field.
        /// Required unless --provision (then: the provision_secret_ref template).
        #[arg(long)]
        secret_ref: Option<String>,
        /// libpq option for the DSN, e.g. sslmode=verify-full (repeatable).
        #[arg(long = "db-option")]
        db_options: Vec<String>,
        /// key=value, repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Flag as a canary tenant for migration waves.
        #[arg(long)]
        canary: bool,
        /// With --provision: this [[provision_servers]] entry instead of placement by
        /// labels and load (`--server` is the daemon's address).
        #[arg(long = "provision-server")]
        provision_server: Option<String>,
        /// Initial status: provisioning (default) or active.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        billing_plan: Option<String>,
        #[arg(long)]
        contact_email: Option<String>,
        /// Create the role and database on DROVER_PROVISION_URL, write a generated password
        /// behind --secret-ref (file: or vault:) and migrate to the latest version.
        #[arg(long)]
        provision: bool,
        /// With --provision: wait until the tenant is active (or the job failed).
        #[arg(long, requires = "provision")]
        wait: bool,
    },
    /// Retry provisioning a tenant still in `provisioning` (reuses what an earlier attempt
    /// created).
    ///
    /// Example: drover tenants provision acme --wait
    Provision {
        slug: String,
        /// Wait until the tenant is active (or the job failed).
        #[arg(long)]
        wait: bool,
    },
    /// Change fields of a tenant (only the given ones).
    ///
    /// Example: drover tenants update acme --display-name "Acme Inc" --label plan=enterprise
    Update {
        slug: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        db_host: Option<String>,
        #[arg(long)]
        db_port: Option<i32>,
        #[arg(long)]
        db_name: Option<String>,
        #[arg(long)]
        db_user: Option<String>,
        #[arg(long)]
        secret_ref: Option<String>,
        /// Replace all DSN options with these (key=value, repeatable).
        #[arg(long = "db-option")]
        db_options: Option<Vec<String>>,
        /// Replace all labels with these (key=value, repeatable).
        #[arg(long = "label")]
        labels: Option<Vec<String>>,
        #[arg(long)]
        canary: Option<bool>,
        /// Only `active` (from provisioning); use suspend/resume/delete otherwise.
        #[arg(long)]
        status: Option<String>,
    },
    /// Suspend a tenant: resolution answers 423 with the reason.
    Suspend {
        slug: String,
        #[arg(long)]
        reason: String,
    },
    /// Make a suspended tenant active again.
    Resume { slug: String },
    /// Soft-delete a tenant (its database is kept unless --drop-database).
    ///
    /// Example: drover tenants delete acme --drop-database
    Delete {
        slug: String,
        /// Also drop the database and role drover provisioned, and remove the secret.
        #[arg(long)]
        drop_database: bool,
    },
    /// A tenant's events, newest first.
    Events {
        slug: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

fn labels_map(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => anyhow::bail!("expected key=value, got {p:?}"),
        })
        .collect()
}

fn parse_status(s: Option<String>) -> anyhow::Result<Option<TenantStatus>> {
    s.map(|s| {
        s.parse::<TenantStatus>()
            .map_err(|e| anyhow::anyhow!("--{e}"))
    })
    .transpose()
}

fn print_tenants(output: Output, tenants: &[Tenant]) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(tenants)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.slug.clone(),
                t.status.to_string(),
                t.schema_version.map_or("-".into(), |v| v.to_string()),
                format!("{}:{}/{}", t.db_host, t.db_port, t.db_name),
                if t.canary { "yes".into() } else { "".into() },
                t.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                t.display_name.clone(),
                provisioning_error(t),
            ]
        })
        .collect();
    table(
        &[
            "SLUG",
            "STATUS",
            "VERSION",
            "DATABASE",
            "CANARY",
            "LABELS",
            "NAME",
            "PROVISIONING ERROR",
        ],
        &rows,
    );
    Ok(())
}

/// The last provisioning failure in one short cell: `step: message` (cut at 60 characters;
/// `drover tenants get` shows it whole).
fn provisioning_error(t: &Tenant) -> String {
    let Some(e) = &t.provisioning_error else {
        return String::new();
    };
    let retry = if e.retryable { " (retryable)" } else { "" };
    let text = format!("{}: {}", e.step, e.message);
    let cut: String = text.chars().take(60).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("{cut}{more}{retry}")
}

fn print_tenant(output: Output, t: &Tenant) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(t)?);
        return Ok(());
    }
    let v = serde_json::to_value(t)?;
    if let Value::Object(map) = v {
        for (k, v) in map {
            let shown = match v {
                Value::Null => "-".to_string(),
                Value::String(s) => s,
                other => other.to_string(),
            };
            println!("{k:<18} {shown}");
        }
    }
    Ok(())
}

/// Runs one tenant command.
pub async fn run(args: &ClientArgs, cmd: TenantsCommand) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    match cmd {
        TenantsCommand::List {
            status,
            labels,
            search,
            email,
            include_deleted,
            limit,
        } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = vec![("include_deleted".to_string(), include_deleted.to_string())];
                if let Some(s) = &status {
                    query.push(("status".into(), s.clone()));
                }
                if !labels.is_empty() {
                    query.push(("label".into(), labels.join(",")));
                }
                if let Some(q) = &search {
                    query.push(("q".into(), q.clone()));
                }
                if let Some(e) = &email {
                    query.push(("email".into(), e.clone()));
                }
                if let Some(c) = &cursor {
                    query.push(("cursor".into(), c.clone()));
                }
                let page_size = limit.map_or(500, |l| (l - all.len().min(l)).clamp(1, 500));
                query.push(("limit".into(), page_size.to_string()));
                let qs = query_string(&query);
                let page: Page<Tenant> = api
                    .call(Method::GET, &format!("/v1/tenants?{qs}"), none)
                    .await?;
                all.extend(page.items);
                cursor = page.next_cursor;
                if cursor.is_none() || limit.is_some_and(|l| all.len() >= l) {
                    break;
                }
            }
            print_tenants(args.output, &all)?;
        }
        TenantsCommand::Get { slug } => {
            let t: Tenant = api
                .call(Method::GET, &format!("/v1/tenants/{}", encode(&slug)), none)
                .await?;
            print_tenant(args.output, &t)?;
        }
        TenantsCommand::Create {
            slug,
            display_name,
            db_host,
            db_port,
            db_name,
            db_user,
            secret_ref,
            db_options,
            labels,
            canary,
            provision_server,
            status,
            billing_plan,
            contact_email,
            provision,
            wait,
        } => {
            let body = NewTenant {
                slug,
                display_name: display_name.unwrap_or_default(),
                db_name: db_name.unwrap_or_default(),
                db_host: db_host.unwrap_or_default(),
                db_port,
                db_user: db_user.unwrap_or_default(),
                db_secret_ref: secret_ref.unwrap_or_default(),
                db_options: labels_map(&db_options)?,
                labels: labels_map(&labels)?,
                canary,
                status: parse_status(status)?,
                provision,
                server: provision_server,
                billing_plan,
                contact_email,
                app_version: None,
                maintenance_flag: false,
            };
            let t: Tenant = if wait {
                api.call_waiting(Method::POST, "/v1/tenants?wait=true", Some(&body))
                    .await?
            } else {
                api.call(Method::POST, "/v1/tenants", Some(&body)).await?
            };
            print_tenant(args.output, &t)?;
        }
        TenantsCommand::Provision { slug, wait } => {
            let path = format!("/v1/tenants/{}/provision", encode(&slug));
            let t: Tenant = if wait {
                api.call_waiting(Method::POST, &format!("{path}?wait=true"), none)
                    .await?
            } else {
                api.call(Method::POST, &path, none).await?
            };
            print_tenant(args.output, &t)?;
        }
        TenantsCommand::Update {
            slug,
            display_name,
            db_host,
            db_port,
            db_name,
            db_user,
            secret_ref,
            db_options,
            labels,
            canary,
            status,
        } => {
            let patch = TenantPatch {
                display_name,
                db_host,
                db_port,
                db_name,
                db_user,
                db_secret_ref: secret_ref,
                db_options: db_options.as_deref().map(labels_map).transpose()?,
                labels: labels.as_deref().map(labels_map).transpose()?,
                canary,
                status: parse_status(status)?,
                ..TenantPatch::default()
            };
            let t: Tenant = api
                .call(
                    Method::PATCH,
                    &format!("/v1/tenants/{}", encode(&slug)),
                    Some(&patch),
                )
                .await?;
            print_tenant(args.output, &t)?;
        }
        TenantsCommand::Suspend { slug, reason } => {
            let body = json!({ "reason": reason });
            let t: Tenant = api
                .call(
                    Method::POST,
                    &format!("/v1/tenants/{}/suspend", encode(&slug)),
                    Some(&body),
                )
                .await?;
            print_tenant(args.output, &t)?;
        }
        TenantsCommand::Resume { slug } => {
            let t: Tenant = api
                .call(
                    Method::POST,
                    &format!("/v1/tenants/{}/resume", encode(&slug)),
                    none,
                )
                .await?;
            print_tenant(args.output, &t)?;
        }
        TenantsCommand::Delete {
            slug,
            drop_database,
        } => {
            let mut path = format!("/v1/tenants/{}", encode(&slug));
            if drop_database {
                path.push_str("?drop_database=true");
            }
            let t: Tenant = api.call_waiting(Method::DELETE, &path, none).await?;
            print_tenant(args.output, &t)?;
        }
        TenantsCommand::Events { slug, limit } => {
            let page: Page<Event> = api
                .call(
                    Method::GET,
                    &format!("/v1/tenants/{}/events?limit={limit}", encode(&slug)),
                    none,
                )
                .await?;
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&page.items)?);
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|e| {
                        vec![
                            e.created_at.to_rfc3339(),
                            e.event_type.clone(),
                            e.actor.clone(),
                            e.payload.to_string(),
                        ]
                    })
                    .collect();
                table(&["TIME", "EVENT", "ACTOR", "PAYLOAD"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `k=v&k2=v2`, percent-encoded.
fn query_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `drover resolve SLUG`.
pub async fn resolve(args: &ClientArgs, slug: &str) -> anyhow::Result<ExitCode> {
    let api = ApiClient::with_token_from(
        &args.server,
        &[
            "DROVER_RESOLVER_TOKEN",
            "DROVER_TOKEN",
            "DROVER_ADMIN_TOKEN",
        ],
    )?;
    let none: Option<&Value> = None;
    let v: Value = api
        .call(Method::GET, &format!("/v1/resolve/{}", encode(slug)), none)
        .await?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for key in [
            "slug",
            "host",
            "port",
            "dbname",
            "user",
            "schema_version",
            "dsn",
        ] {
            let shown = match &v[key] {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("{key:<15} {shown}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
