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
    List(ListArgs),
    /// Show one tenant.
    Get { slug: String },
    /// Change a tenant's slug; the old one resolves to it (and stays reserved) for the
    /// daemon's rename_alias_ttl.
    ///
    /// Example: drover tenants rename acme acme-corp
    Rename { slug: String, new_slug: String },
    /// Register a tenant whose database already exists, or (--provision) have drover
    /// create its role and database, store the password and migrate it.
    ///
    /// Example: drover tenants create acme --display-name "Acme Corp" --db-host db1 --db-name t_acme --db-user t_acme --secret-ref file:tenants/acme --status active
    ///
    /// Example: drover tenants create acme --display-name "Acme Corp" --db-host db1 --db-name t_acme --db-user t_acme --secret-ref file:tenants/acme --provision --wait
    Create(Box<CreateArgs>),
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
    Update(Box<UpdateArgs>),
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

// The arguments of `drover tenants list` (plain comments: clap would take a doc comment
// here as the subcommand's help, which the variant above gives).
#[derive(Debug, clap::Args)]
pub struct ListArgs {
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
}

impl ListArgs {
    /// The query of one page: the filters, the cursor, and a page size that does not
    /// fetch past `--limit` (`have` tenants are already fetched).
    fn page_query(&self, cursor: Option<&str>, have: usize) -> String {
        let mut query = vec![(
            "include_deleted".to_string(),
            self.include_deleted.to_string(),
        )];
        if let Some(s) = &self.status {
            query.push(("status".into(), s.clone()));
        }
        if !self.labels.is_empty() {
            query.push(("label".into(), self.labels.join(",")));
        }
        if let Some(q) = &self.search {
            query.push(("q".into(), q.clone()));
        }
        if let Some(e) = &self.email {
            query.push(("email".into(), e.clone()));
        }
        if let Some(c) = cursor {
            query.push(("cursor".into(), c.to_string()));
        }
        let page_size = self.limit.map_or(500, |l| (l - have.min(l)).clamp(1, 500));
        query.push(("limit".into(), page_size.to_string()));
        query_string(&query)
    }
}

// The arguments of `drover tenants create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
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
    /// Secret reference for the password: env:VAR, file:path, vault:mount/path#field or aws-sm:NAME[#key].
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
    /// The tenant's portal (default: from the daemon's portal_url_template).
    #[arg(long)]
    portal_url: Option<String>,
    /// A trial: suspended once this time (RFC 3339) has passed.
    #[arg(long)]
    trial_ends_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Create the role and database on DROVER_PROVISION_URL, write a generated password
    /// behind --secret-ref (file:, vault: or aws-sm:) and migrate to the latest version.
    #[arg(long)]
    provision: bool,
    /// With --provision: wait until the tenant is active (or the job failed).
    #[arg(long, requires = "provision")]
    wait: bool,
    /// Check everything and show the names, the server and the steps; create nothing.
    #[arg(long, conflicts_with = "wait")]
    dry_run: bool,
}

impl CreateArgs {
    /// The `POST /v1/tenants` body; what is not given is left for the daemon to fill in
    /// (or to refuse).
    fn body(self) -> anyhow::Result<NewTenant> {
        Ok(NewTenant {
            slug: self.slug,
            display_name: self.display_name.unwrap_or_default(),
            db_name: self.db_name.unwrap_or_default(),
            db_host: self.db_host.unwrap_or_default(),
            db_port: self.db_port,
            db_user: self.db_user.unwrap_or_default(),
            db_secret_ref: self.secret_ref.unwrap_or_default(),
            db_options: labels_map(&self.db_options)?,
            labels: labels_map(&self.labels)?,
            canary: self.canary,
            status: parse_status(self.status)?,
            provision: self.provision,
            server: self.provision_server,
            billing_plan: self.billing_plan,
            contact_email: self.contact_email,
            app_version: None,
            maintenance_flag: false,
            portal_url: self.portal_url,
            trial_ends_at: self.trial_ends_at,
        })
    }
}

// The arguments of `drover tenants update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
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
    /// The tenant's portal; `--portal-url ''` goes back to the daemon's template.
    #[arg(long)]
    portal_url: Option<String>,
    /// When the trial ends (RFC 3339); `--trial-ends-at ''` converts the trial.
    #[arg(long)]
    trial_ends_at: Option<String>,
    /// Only `active` (from provisioning); use suspend/resume/delete otherwise.
    #[arg(long)]
    status: Option<String>,
}

impl UpdateArgs {
    /// The `PATCH /v1/tenants/{slug}` body: only the fields given.
    fn patch(self) -> anyhow::Result<TenantPatch> {
        Ok(TenantPatch {
            display_name: self.display_name,
            db_host: self.db_host,
            db_port: self.db_port,
            db_name: self.db_name,
            db_user: self.db_user,
            db_secret_ref: self.secret_ref,
            db_options: self.db_options.as_deref().map(labels_map).transpose()?,
            labels: self.labels.as_deref().map(labels_map).transpose()?,
            canary: self.canary,
            status: parse_status(self.status)?,
            portal_url: self.portal_url.map(|u| Some(u).filter(|u| !u.is_empty())),
            trial_ends_at: match self.trial_ends_at.as_deref() {
                None => None,
                Some("") => Some(None),
                Some(t) => Some(Some(t.parse().map_err(|e| {
                    anyhow::anyhow!(
                        "--trial-ends-at: expected RFC 3339 (2025-07-01T00:00:00Z): {e}"
                    )
                })?)),
            },
            ..TenantPatch::default()
        })
    }
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

/// A create's dry run: the tenant it would register, the checks, the steps.
fn print_plan(output: Output, plan: &Value) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    let t = &plan["tenant"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    println!("dry run: nothing was created");
    println!("slug       {}", text(&t["slug"]));
    println!(
        "database   {} (user {}) on {}:{}",
        text(&t["db_name"]),
        text(&t["db_user"]),
        text(&t["db_host"]),
        t["db_port"]
    );
    println!("secret     {}", text(&t["db_secret_ref"]));
    println!("server     {}", text(&plan["server"]));
    println!("portal     {}", text(&plan["portal_url"]));
    println!("checks:");
    for c in plan["checks"].as_array().into_iter().flatten() {
        println!("  ok  {}", text(c));
    }
    println!("steps:");
    for (i, step) in plan["steps"].as_array().into_iter().flatten().enumerate() {
        println!("  {}. {}", i + 1, text(step));
    }
    Ok(())
}

/// Runs one tenant command.
pub async fn run(args: &ClientArgs, cmd: TenantsCommand) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let none: Option<&Value> = None;
    let path = |slug: &str, rest: &str| format!("/v1/tenants/{}{rest}", encode(slug));
    let t: Tenant = match cmd {
        TenantsCommand::List(list) => {
            let all = list_all(&api, &list).await?;
            print_tenants(args.output, &all)?;
            return Ok(ExitCode::SUCCESS);
        }
        TenantsCommand::Events { slug, limit } => {
            let events = path(&slug, &format!("/events?limit={limit}"));
            let page: Page<Event> = api.call(Method::GET, &events, none).await?;
            print_events(args.output, &page.items)?;
            return Ok(ExitCode::SUCCESS);
        }
        TenantsCommand::Get { slug } => api.call(Method::GET, &path(&slug, ""), none).await?,
        TenantsCommand::Rename { slug, new_slug } => {
            let body = json!({ "slug": new_slug });
            api.call(Method::POST, &path(&slug, "/rename"), Some(&body))
                .await?
        }
        TenantsCommand::Create(create) if create.dry_run => {
            let plan: Value = api
                .call(
                    Method::POST,
                    "/v1/tenants?dry_run=true",
                    Some(&create.body()?),
                )
                .await?;
            print_plan(args.output, &plan)?;
            return Ok(ExitCode::SUCCESS);
        }
        TenantsCommand::Create(create) => {
            let wait = create.wait;
            let body = create.body()?;
            if wait {
                api.call_waiting(Method::POST, "/v1/tenants?wait=true", Some(&body))
                    .await?
            } else {
                api.call(Method::POST, "/v1/tenants", Some(&body)).await?
            }
        }
        TenantsCommand::Provision { slug, wait } => {
            let provision = path(&slug, "/provision");
            if wait {
                api.call_waiting(Method::POST, &format!("{provision}?wait=true"), none)
                    .await?
            } else {
                api.call(Method::POST, &provision, none).await?
            }
        }
        TenantsCommand::Update(update) => {
            let target = path(&update.slug, "");
            let patch = update.patch()?;
            api.call(Method::PATCH, &target, Some(&patch)).await?
        }
        TenantsCommand::Suspend { slug, reason } => {
            let body = json!({ "reason": reason });
            let suspend = path(&slug, "/suspend");
            api.call(Method::POST, &suspend, Some(&body)).await?
        }
        TenantsCommand::Resume { slug } => {
            api.call(Method::POST, &path(&slug, "/resume"), none)
                .await?
        }
        TenantsCommand::Delete {
            slug,
            drop_database,
        } => {
            let query = if drop_database {
                "?drop_database=true"
            } else {
                ""
            };
            api.call_waiting(Method::DELETE, &path(&slug, query), none)
                .await?
        }
    };
    print_tenant(args.output, &t)?;
    Ok(ExitCode::SUCCESS)
}

/// Every page of `drover tenants list`, up to `--limit` tenants.
async fn list_all(api: &ApiClient, list: &ListArgs) -> anyhow::Result<Vec<Tenant>> {
    let none: Option<&Value> = None;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let qs = list.page_query(cursor.as_deref(), all.len());
        let page: Page<Tenant> = api
            .call(Method::GET, &format!("/v1/tenants?{qs}"), none)
            .await?;
        all.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() || list.limit.is_some_and(|l| all.len() >= l) {
            return Ok(all);
        }
    }
}

/// A tenant's events as JSON or one row each.
fn print_events(output: Output, events: &[Event]) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(events)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
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
    Ok(())
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
