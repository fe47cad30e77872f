//! `/ui/tenants` (search, a keyset page at a time: fast at any fleet size) and
//! `/ui/tenants/{slug}` (one tenant: connection facts without the secret, labels, limits,
//! provisioning, its events and its waves), with Suspend / Resume for operators.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, badge, Nav, Page};
use super::session::{encode, Session};
use super::ConsoleError;
use crate::events::FilterParams;
use crate::registry::{ListFilter, Tenant, TenantStatus};
use crate::state::AppState;

/// Tenants per page.
const PAGE: i64 = 50;

/// Query of `GET /ui/tenants`; empty fields (a submitted form) mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    /// Substring of the slug or name; an address with `@` searches contact e-mails.
    q: Option<String>,
    status: Option<String>,
    version: Option<String>,
    /// `k=v[,k=v]`.
    label: Option<String>,
    cursor: Option<String>,
    page: Option<u32>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Search {
    fn filter(&self) -> Result<ListFilter, ConsoleError> {
        let q = given(&self.q);
        let (q, email) = match q {
            Some(q) if q.contains('@') => (None, Some(q.to_string())),
            other => (other.map(str::to_string), None),
        };
        let status = given(&self.status)
            .map(|s| s.parse::<TenantStatus>())
            .transpose()?;
        let schema_version = given(&self.version)
            .map(|v| {
                v.trim_start_matches('v')
                    .parse::<i32>()
                    .map_err(|_| ConsoleError::Invalid("version: expected a number".into()))
            })
            .transpose()?;
        Ok(ListFilter {
            status,
            label: given(&self.label).map(str::to_string),
            q,
            email,
            include_deleted: false,
            limit: Some(PAGE),
            cursor: given(&self.cursor).map(str::to_string),
            schema_version,
        })
    }

    /// The query string of this search on another page.
    fn href(&self, cursor: Option<&str>, page: u32) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("status", &self.status),
            ("version", &self.version),
            ("label", &self.label),
        ] {
            if let Some(v) = given(v) {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        if let Some(c) = cursor {
            parts.push(format!("cursor={}", encode(c)));
            parts.push(format!("page={page}"));
        }
        format!("/ui/tenants?{}", parts.join("&"))
    }
}

/// `GET /ui/tenants`.
pub async fn list(
    State(s): State<AppState>,
    session: Session,
    Query(search): Query<Search>,
) -> Result<Response, ConsoleError> {
    let filter = search.filter()?;
    let found = s.registry.list(&filter).await?;
    let page = search.page.unwrap_or(1).max(1);
    let first = (page as i64 - 1) * PAGE + 1;
    let body = html! {
        h1 { "Tenants" }
        (search_form(&search))
        @if found.items.is_empty() {
            p role="status" { "No tenant matches." }
        } @else {
            p role="status" .muted {
                "Showing " (first) "–" (first + found.items.len() as i64 - 1)
                @if found.next_cursor.is_some() { " (more on the next page)" }
            }
            (tenant_table(&found.items))
        }
        nav.pager aria-label="Pages" {
            @if page > 1 { a href=(search.href(None, 1)) { "First page" } }
            @if let Some(c) = &found.next_cursor {
                a rel="next" href=(search.href(Some(c), page + 1)) { "Next page" }
            }
        }
    };
    Ok(Page::new(Nav::Tenants, "Tenants", body).render(&session))
}

fn search_form(search: &Search) -> Markup {
    let statuses = ["provisioning", "active", "suspended", "deleting"];
    html! {
        form.search method="get" action="/ui/tenants" role="search" {
            div {
                label for="q" { "Slug, name or e-mail" }
                input #q type="search" name="q" value=[given(&search.q)] placeholder="acme or ops@acme.com";
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "any" }
                    @for st in statuses {
                        option value=(st) selected[given(&search.status) == Some(st)] { (st) }
                    }
                }
            }
            div {
                label for="version" { "Schema version" }
                input #version name="version" inputmode="numeric" size="6" value=[given(&search.version)];
            }
            div {
                label for="label" { "Label (k=v)" }
                input #label name="label" value=[given(&search.label)] placeholder="region=eu";
            }
            button type="submit" { "Search" }
        }
    }
}

fn tenant_table(items: &[Tenant]) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Slug" } th { "Name" } th { "Status" } th.n { "Schema" } th { "Labels" } th { "Contact" }
            } }
            tbody {
                @for t in items {
                    tr {
                        td { a href={"/ui/tenants/" (encode(&t.slug))} { (t.slug) } @if t.canary { " (canary)" } }
                        td { (t.display_name) }
                        td { (badge(t.status.as_str())) }
                        td.n { (t.schema_version.map_or("never".into(), |v| format!("v{v}"))) }
                        td { (labels(t)) }
                        td { (t.contact_email.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

fn labels(t: &Tenant) -> Markup {
    html! { @for (k, v) in &t.labels { span.label { (k) "=" (v) } } }
}

/// `GET /ui/tenants/{slug}`.
pub async fn show(
    State(s): State<AppState>,
    session: Session,
    Path(slug): Path<String>,
) -> Result<Response, ConsoleError> {
    let t = s.registry.get(&slug).await?;
    let limits = s.registry.limits(&t.slug).await?;
    let events = {
        let client = s.pool.get().await?;
        let params = FilterParams {
            tenant: Some(t.slug.clone()),
            limit: Some(50),
            ..Default::default()
        };
        crate::events::feed::list(&**client, &params).await?
    };
    let waves = s.waves.of_tenant(t.id, 50, session.audience()).await?;
    let drift = crate::drift::cohorts::tenant(&s.pool, t.id).await?;
    let body = html! {
        h1 { (t.display_name) " " span.muted.mono { (t.slug) } " " (badge(t.status.as_str())) }
        (actions(&session, &t))
        div.cards {
            section.panel aria-labelledby="conn" {
                h2 #conn { "Connection" }
                dl.facts {
                    dt { "Host" } dd.mono { (t.db_host) }
                    dt { "Port" } dd.mono { (t.db_port) }
                    dt { "Database" } dd.mono { (t.db_name) }
                    dt { "User" } dd.mono { (t.db_user) }
                    dt { "Password" } dd { "from a " code { (secret_scheme(&t.db_secret_ref)) } " secret reference (never shown)" }
                    @for (k, v) in &t.db_options { dt { (k) } dd.mono { (v) } }
                    dt { "Server" } dd { (t.server.clone().unwrap_or_else(|| "(registered, not placed)".into())) }
                }
            }
            section.panel aria-labelledby="facts" {
                h2 #facts { "Tenant" }
                dl.facts {
                    dt { "Schema version" } dd { (t.schema_version.map_or("never migrated".into(), |v| format!("v{v}"))) }
                    dt { "App version" } dd { (t.app_version.clone().unwrap_or_default()) }
                    dt { "Canary" } dd { (if t.canary { "yes" } else { "no" }) }
                    dt { "Plan" } dd { (t.billing_plan.clone().unwrap_or_default()) }
                    dt { "Contact" } dd { (t.contact_email.clone().unwrap_or_default()) }
                    @if let Some(end) = &t.trial_ends_at { dt { "Trial ends" } dd { (layout::time(end)) } }
                    dt { "Portal" } dd { @if let Some(u) = &t.portal_url { a href=(u) rel="noopener noreferrer" { (u) } } @else { "none" } }
                    dt { "Labels" } dd { (labels(&t)) }
                    @if let Some(r) = &t.suspended_reason { dt { "Suspended because" } dd { (r) } }
                    dt { "Created" } dd { (layout::time(&t.created_at)) }
                    dt { "Updated" } dd { (layout::time(&t.updated_at)) }
                }
            }
            section.panel aria-labelledby="prov" {
                h2 #prov { "Provisioning and limits" }
                dl.facts {
                    dt { "Provisioned" } dd { @if let Some(at) = &t.provisioned_at { (layout::time(at)) } @else { "no" } }
                    @if let Some(e) = &t.provisioning_error {
                        dt { "Last failure" }
                        dd { (badge("failed")) " step " code { (e.step) } ": " (e.message)
                            " (" (if e.retryable { "retried automatically" } else { "needs a person" }) ", " (layout::time(&e.at)) ")" }
                    }
                    dt { "Max DB size" } dd { (limits.max_db_size_mb.map_or("no limit".into(), |v| format!("{v} MB"))) }
                    dt { "Max users" } dd { (limits.max_users.map_or("no limit".into(), |v| v.to_string())) }
                    dt { "Max attachments" } dd { (limits.max_attachments_gb.map_or("no limit".into(), |v| format!("{v} GB"))) }
                    @if let Some(n) = &limits.notes { dt { "Notes" } dd { (n) } }
                }
            }
        }
        (super::drift::tenant_section(drift.as_ref()))
        h2 { "Waves" }
        (waves_table(&waves))
        h2 { "Events" }
        @if events.items.is_empty() { p.muted { "No events." } }
        ol.timeline reversed {
            @for e in &events.items {
                li {
                    (layout::time(&e.created_at)) " " strong { (e.event_type) } " by " code { (e.actor) }
                    @if let Some(w) = e.wave_id { " in wave " a.mono href={"/ui/waves/" (w)} { (super::fleet::short(&w)) } }
                    @if !is_empty(&e.payload) { " " span.mono.muted { (e.payload) } }
                }
            }
        }
    };
    Ok(Page::new(Nav::Tenants, format!("tenant {}", t.slug), body).render(&session))
}

fn is_empty(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

/// `file:`, `env:`, `vault:`: where the password lives, without saying which one.
fn secret_scheme(r: &str) -> &str {
    r.split_once(':').map_or("unknown", |(scheme, _)| scheme)
}

fn waves_table(waves: &[crate::waves::overview::TenantWave]) -> Markup {
    html! {
        @if waves.is_empty() {
            p.muted { "Not in any wave yet." }
        } @else {
            table {
                thead { tr { th { "Wave" } th { "Wave state" } th { "This tenant" } th { "Versions" } th.n { "Attempts" } th { "Error" } } }
                tbody {
                    @for w in waves {
                        tr {
                            td { a.mono href={"/ui/waves/" (w.wave_id)} { (super::fleet::short(&w.wave_id)) }
                                " to v" (w.target_version) @if w.dry_run { " (dry run)" } br; span.muted { (layout::time(&w.created_at)) } }
                            td { (badge(&w.wave_state)) }
                            td { (badge(&w.state)) " phase " (w.phase) }
                            td { (w.from_version.map_or("–".into(), |v| format!("v{v}"))) " → " (w.to_version.map_or("–".into(), |v| format!("v{v}"))) }
                            td.n { (w.attempts) }
                            td { (w.error.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// Suspend (with a reason) or Resume, for roles the API grants them to.
fn actions(session: &Session, t: &Tenant) -> Markup {
    let base = format!("/ui/tenants/{}", encode(&t.slug));
    html! {
        @if t.status == TenantStatus::Active && session.may("POST", "/v1/tenants/{slug}/suspend") {
            (layout::post_form(session, &format!("{base}/suspend"), Some("Suspend this tenant? Resolution will refuse it until resumed."), html! {
                label for="reason" { "Reason " }
                input #reason name="reason" required maxlength="500";
                " "
                button.danger type="submit" { "Suspend" }
            }))
        }
        @if t.status == TenantStatus::Suspended && session.may("POST", "/v1/tenants/{slug}/resume") {
            (layout::post_form(session, &format!("{base}/resume"), None, html! {
                button type="submit" { "Resume" }
            }))
        }
    }
}

/// Form of Suspend.
#[derive(Deserialize)]
pub struct SuspendForm {
    reason: String,
}

/// `POST /ui/tenants/{slug}/suspend`: the registry's suspend, as `POST
/// /v1/tenants/{slug}/suspend` does it, with the session's identity as the actor.
pub async fn suspend(
    State(s): State<AppState>,
    session: Session,
    Path(slug): Path<String>,
    Form(f): Form<SuspendForm>,
) -> Result<Response, ConsoleError> {
    session.require("POST", "/v1/tenants/{slug}/suspend")?;
    let t = s
        .registry
        .suspend(&slug, &f.reason, &session.actor()?)
        .await?;
    Ok(Redirect::to(&format!("/ui/tenants/{}", encode(&t.slug))).into_response())
}

/// `POST /ui/tenants/{slug}/resume`.
pub async fn resume(
    State(s): State<AppState>,
    session: Session,
    Path(slug): Path<String>,
) -> Result<Response, ConsoleError> {
    session.require("POST", "/v1/tenants/{slug}/resume")?;
    let t = s.registry.resume(&slug, &session.actor()?).await?;
    Ok(Redirect::to(&format!("/ui/tenants/{}", encode(&t.slug))).into_response())
}
