//! `drover apply -f DIR` and `drover export -o DIR`: tenants as code through the daemon's
//! API. The files are read and validated locally first (every problem reported, nothing
//! sent while there is one); the plan comes from comparing them with the live tenants
//! (`GET /v1/tenants`); each step is one idempotent request (`PUT /v1/tenants/{slug}`,
//! `DELETE` for `--prune`, `POST /v1/tenants` with `provision: true` for `--provision`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::ApiClient;
use super::{ClientArgs, Output};
use crate::manifest::{self, Action, Definition, Item, ManifestError, Plan, Problem};
use crate::registry::{Page, Tenant, TenantStatus};
use crate::resolve::dsn::encode;

/// Options of `drover apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// A definition file, or a directory read recursively (*.yaml, *.yml); repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Soft-delete live tenants that have no definition.
    #[arg(long)]
    pub prune: bool,
    /// Create new tenants by provisioning their role and database (`provision: true`).
    #[arg(long)]
    pub provision: bool,
}

/// Options of `drover export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Base URL of a running drover daemon.
    #[arg(long, env = "DROVER_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Directory to write `<slug>.yaml` files into (created when missing).
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub dir: PathBuf,
}

/// Every live tenant, all pages.
async fn live_tenants(api: &ApiClient) -> anyhow::Result<Vec<Tenant>> {
    let none: Option<&Value> = None;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/tenants?limit=1000".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        let page: Page<Tenant> = api.call(Method::GET, &path, none).await?;
        all.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(all);
        }
    }
}

fn print_problems(output: Output, problems: &[Problem], what: &str) {
    if output == Output::Json {
        println!("{}", json!({ "problems": problems, "applied": false }));
    } else {
        for p in problems {
            eprintln!("{p}");
        }
    }
    eprintln!(
        "error: {} problem(s) {what}; nothing was applied",
        problems.len()
    );
}

/// `drover apply`.
pub async fn apply(client: &ClientArgs, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let loaded = match manifest::load(&args.paths) {
        Ok(l) => l,
        Err(ManifestError::Invalid(problems)) => {
            print_problems(client.output, &problems, "in the tenant definitions");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let api = ApiClient::new(&client.server)?;
    let live = live_tenants(&api).await?;
    let plan = manifest::plan(
        &loaded,
        &live,
        manifest::Options {
            prune: args.prune,
            provision: args.provision,
        },
    );
    if !plan.problems.is_empty() {
        print_problems(client.output, &plan.problems, "against the registry");
        return Ok(ExitCode::FAILURE);
    }
    if client.output == Output::Table {
        print_plan(&plan, loaded.len());
    }
    if args.dry_run || !plan.has_changes() {
        if client.output == Output::Json {
            println!("{}", json!({ "plan": plan, "applied": false }));
        } else if args.dry_run {
            println!("Dry run: nothing applied.");
        } else {
            println!("Nothing to do.");
        }
        return Ok(ExitCode::SUCCESS);
    }

    let mut results = Vec::new();
    let mut failed = 0;
    for item in plan.items.iter().filter(|i| i.action != Action::Unchanged) {
        match step(&api, item, args.provision).await {
            Ok(done) => {
                if client.output == Output::Table {
                    println!("{done} {}", item.slug);
                }
                results.push(json!({ "slug": item.slug, "action": item.action, "ok": true }));
            }
            Err(e) => {
                failed += 1;
                let message = super::one_line(&e);
                eprintln!("error: {} ({:?}): {message}", item.slug, item.action);
                results.push(json!({
                    "slug": item.slug, "action": item.action, "ok": false, "error": message,
                }));
                if unreachable(&e) {
                    eprintln!("error: the daemon is unreachable; stopped (run apply again: it is idempotent)");
                    break;
                }
            }
        }
    }
    if client.output == Output::Json {
        println!(
            "{}",
            json!({ "plan": plan, "applied": true, "results": results })
        );
    } else {
        let ok = |a| {
            results
                .iter()
                .filter(|r| r["action"] == json!(a) && r["ok"] == true)
                .count()
        };
        println!(
            "Applied: {} created, {} updated, {} deleted, {} unchanged{}.",
            ok(Action::Create),
            ok(Action::Update),
            ok(Action::Delete),
            plan.count(Action::Unchanged),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether `e` means the daemon cannot be reached at all (every further step would fail
/// the same way, each after a timeout).
fn unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect() || r.is_timeout())
    })
}

/// Applies one step; returns the past tense to print.
async fn step(api: &ApiClient, item: &Item, provision: bool) -> anyhow::Result<&'static str> {
    let path = format!("/v1/tenants/{}", encode(&item.slug));
    let definition = || {
        item.definition
            .as_ref()
            .context("internal: a create or update without its definition")
    };
    match item.action {
        Action::Create if provision => {
            let body = definition()?.provision_request();
            let t: Tenant = api.call(Method::POST, "/v1/tenants", Some(&body)).await?;
            // POST takes no limits; the declared ones follow right after.
            if let Some(limits) = &definition()?.spec.limits {
                let _: crate::registry::TenantLimits = api
                    .call(
                        Method::PUT,
                        &format!("{path}/limits"),
                        Some(&limits.to_registry()),
                    )
                    .await?;
            }
            Ok(if t.status == TenantStatus::Provisioning {
                "provisioning"
            } else {
                "created"
            })
        }
        Action::Create | Action::Update => {
            let _: Tenant = api.call(Method::PUT, &path, Some(definition()?)).await?;
            Ok(if item.action == Action::Create {
                "created"
            } else {
                "updated"
            })
        }
        Action::Delete => {
            let none: Option<&Value> = None;
            let _: Tenant = api.call(Method::DELETE, &path, none).await?;
            Ok("deleted")
        }
        Action::Unchanged => Ok("unchanged"),
    }
}

/// The plan for people: one line per change, field diffs under updates, a summary.
fn print_plan(plan: &Plan, definitions: usize) {
    for item in &plan.items {
        let (sign, verb) = match item.action {
            Action::Create => ('+', "create"),
            Action::Update => ('~', "update"),
            Action::Delete => ('-', "delete"),
            Action::Unchanged => continue,
        };
        match &item.source {
            Some(s) => println!("{sign} {verb} {}  ({})", item.slug, s.file),
            None => println!("{sign} {verb} {}", item.slug),
        }
        for c in &item.changes {
            println!("    {c}");
        }
    }
    if !plan.untracked.is_empty() {
        println!(
            "Not in the files, kept (--prune deletes them): {}",
            plan.untracked.join(", ")
        );
    }
    if !plan.deleting.is_empty() {
        println!(
            "Not in the files, already being deleted: {}",
            plan.deleting.join(", ")
        );
    }
    let s = if definitions == 1 { "" } else { "s" };
    println!(
        "Plan ({definitions} definition{s}): {} to create, {} to update, {} to delete, {} unchanged.",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete),
        plan.count(Action::Unchanged),
    );
}

/// `drover export`.
pub async fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.server)?;
    let live = live_tenants(&api).await?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut written = Vec::new();
    for t in &live {
        if t.status == TenantStatus::Deleting {
            eprintln!(
                "note: {} is being deleted; not exported (a definition cannot declare that)",
                t.slug
            );
            continue;
        }
        let path = args.dir.join(format!("{}.yaml", t.slug));
        let text = yaml_serde::to_string(&Definition::from_tenant(t))
            .with_context(|| format!("cannot write {} as YAML", t.slug))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    warn_strays(&args.dir, &written);
    println!(
        "Wrote {} definitions to {}.",
        written.len(),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Other definition files in the export directory would be applied too.
fn warn_strays(dir: &Path, written: &[PathBuf]) {
    let Ok(files) = manifest::definition_files(dir) else {
        return;
    };
    for f in files.iter().filter(|f| !written.contains(f)) {
        eprintln!(
            "warning: {} is not from this export; `drover apply -f {}` would apply it too",
            f.display(),
            dir.display()
        );
    }
}
