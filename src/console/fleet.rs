//! `/ui/`: the fleet at a glance: tenants by status and by schema version (bar charts
//! drawn here), how many are behind the latest version, who needs a person (failed
//! provisioning, migration issues and history drift, registry health findings, halted
//! waves), how many tenants have schema drift (details on `/ui/drift`),
//! the active waves with their progress (kept live) and the next scheduled waves.

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::chart::{self, Bar};
use super::layout::{self, badge, Nav, Page};
use super::session::Session;
use super::ConsoleError;
use crate::registry::FleetReport;
use crate::state::AppState;
use crate::waves::redact::Audience;
use crate::waves::{WaveError, WaveView};

/// Rows of each "needs attention" list shown before "and N more".
const SHOWN: usize = 10;

/// `GET /ui/`. The reads run concurrently (each on its own pooled connection): the page
/// takes as long as the slowest, not their sum. The registry health check (a pass over
/// every tenant's last migration event) is not among them: it is its own page,
/// [`health`], which the script loads into this one after the first render.
pub async fn page(State(s): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let latest = s.catalog.newest_version().await.map_err(WaveError::from)?;
    let (fleet, statuses, provisioning, halted, active, mut schedules) = tokio::try_join!(
        async { s.registry.fleet(latest).await.map_err(ConsoleError::from) },
        async { s.registry.status_counts().await.map_err(ConsoleError::from) },
        async {
            s.registry
                .provisioning_failures(SHOWN as i64)
                .await
                .map_err(ConsoleError::from)
        },
        halted_waves(&s, session.audience()),
        active_waves(&s, session.audience()),
        async { s.schedules.list().await.map_err(schedule_error) },
    )?;
    schedules.retain(|x| x.enabled && x.next_fire_at.is_some());
    schedules.sort_by_key(|x| x.next_fire_at);
    schedules.truncate(5);

    let attention =
        provisioning.len() + fleet.needs_attention.len() + fleet.drifted.len() + halted.len();
    let schema_drifted = {
        let client = s.pool.get().await?;
        crate::drift::store::drifted_count(&**client).await?
    };
    let body = html! {
        h1 { "Fleet" }
        div.cards {
            div.card { div.muted { "Live tenants" } div.stat { (fleet.tenants) } }
            div.card {
                div.muted { "Behind the latest version" }
                div.stat { (fleet.behind) }
                div.muted { "latest: " (latest.map_or("none yet".to_string(), |v| format!("v{v}"))) }
            }
            div.card { div.muted { "Needing attention" } div.stat { (attention) } }
            div.card { div.muted { "Active waves" } div.stat { (active.len()) } }
            div.card { div.muted { a href="/ui/drift" { "Schema drift" } } div.stat { (schema_drifted) } }
            div.card { div.muted { "Trials ending this week" } div.stat { (fleet.trials_ending_this_week) } }
        }
        div.cards {
            section.panel.chart aria-labelledby="by-status" {
                h2 #by-status { "Tenants by status" }
                (chart::bars("Tenants by status", &statuses.iter().map(|(st, n)| Bar {
                    label: st.clone(), value: *n, class: "",
                }).collect::<Vec<_>>()))
            }
            section.panel.chart aria-labelledby="by-version" {
                h2 #by-version { "Live tenants by schema version" }
                (chart::bars("Live tenants by schema version", &version_bars(&fleet, latest)))
                p.muted { "Orange: behind the latest version. Grey: never migrated." }
            }
        }
        h2 { "Active waves" }
        (layout::live("fleet-waves", "/ui/", "type=wave.*", waves_table(&active)))
        h2 { "Needing attention" }
        (attention_list(&fleet, &provisioning, &halted))
        h2 { "Registry health" }
        div #fleet-health data-fragment="/ui/health" data-load="" aria-live="polite" {
            p { a href="/ui/health" { "Run the registry health check" } }
        }
        h2 { "Next scheduled waves" }
        @if schedules.is_empty() {
            p.muted { "No enabled schedule." }
        } @else {
            table {
                thead { tr { th { "Schedule" } th { "Next run (its timezone)" } th { "Cron" } } }
                tbody {
                    @for x in &schedules {
                        tr {
                            td { a href="/ui/schedules" { (x.name) } }
                            td { (x.next_fires.first().cloned().unwrap_or_default()) " " span.muted { (x.timezone) } }
                            td.mono { (x.cron) }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::new(Nav::Fleet, "Fleet", body).render(&session))
}

fn schedule_error(e: crate::schedule::store::ScheduleError) -> ConsoleError {
    let r = e.is_retryable();
    ConsoleError::internal("the schedule store", &e, r)
}

async fn halted_waves(s: &AppState, audience: Audience) -> Result<Vec<WaveView>, ConsoleError> {
    let mut out = Vec::new();
    for id in s.waves.halted(SHOWN as i64).await? {
        out.push(s.waves.view(id, audience).await?);
    }
    Ok(out)
}

async fn active_waves(s: &AppState, audience: Audience) -> Result<Vec<WaveView>, ConsoleError> {
    let mut out = Vec::new();
    for id in s.waves.active().await? {
        out.push(s.waves.view(id, audience).await?);
    }
    out.sort_by_key(|w| std::cmp::Reverse(w.created_at));
    Ok(out)
}

fn version_bars(fleet: &FleetReport, latest: Option<i32>) -> Vec<Bar> {
    fleet
        .by_version
        .iter()
        .map(|v| Bar {
            label: v.version.map_or("never".into(), |n| format!("v{n}")),
            value: v.tenants,
            class: match (v.version, latest) {
                (None, _) => "never",
                (Some(n), Some(l)) if n < l => "behind",
                _ => "",
            },
        })
        .collect()
}

/// Progress of each wave: done (succeeded, failed or skipped) of all targets.
pub fn waves_table(waves: &[WaveView]) -> Markup {
    html! {
        @if waves.is_empty() {
            p.muted { "No wave is running." }
        } @else {
            table {
                thead { tr { th { "Wave" } th { "State" } th { "Target" } th { "Progress" } th.n { "Failed" } } }
                tbody {
                    @for w in waves {
                        @let c = &w.counts;
                        @let total = c.pending + c.running + c.succeeded + c.failed + c.skipped;
                        tr {
                            td { a.mono href={"/ui/waves/" (w.id)} { (short(&w.id)) } @if w.dry_run { " (dry run)" } }
                            td { (badge(w.state.as_str())) }
                            td { "v" (w.target_version) }
                            td { (layout::progress(c.succeeded + c.failed + c.skipped, total, "targets done")) }
                            td.n { (c.failed) }
                        }
                    }
                }
            }
        }
    }
}

/// The first block of a UUID, enough to tell waves apart on a page.
pub fn short(id: &uuid::Uuid) -> String {
    id.to_string()[..8].to_string()
}

fn attention_list(
    fleet: &FleetReport,
    provisioning: &[crate::registry::ProvisioningFailure],
    halted: &[WaveView],
) -> Markup {
    let nothing = provisioning.is_empty()
        && fleet.needs_attention.is_empty()
        && fleet.drifted.is_empty()
        && halted.is_empty();
    html! {
        @if nothing {
            p { (badge("ok")) " Nothing needs attention." }
        } @else {
            table {
                thead { tr { th { "What" } th { "Where" } th { "Detail" } } }
                tbody {
                    @for p in provisioning {
                        tr {
                            td { (badge("failed")) " provisioning" }
                            td { a href={"/ui/tenants/" (p.slug)} { (p.slug) } }
                            td { "step " code { (p.step) } ": " (p.message) }
                        }
                    }
                    @for w in halted {
                        tr {
                            td { (badge("halted")) " wave" }
                            td { a.mono href={"/ui/waves/" (w.id)} { (short(&w.id)) } }
                            td { (w.halt_reason.clone().unwrap_or_default()) " (" (w.counts.failed) " failed)" }
                        }
                    }
                    @for i in fleet.needs_attention.iter().take(SHOWN) {
                        tr {
                            td { (badge("error")) " migration issue" }
                            td { a href={"/ui/tenants/" (i.slug)} { (i.slug) } }
                            td.mono { (issue_text(&i.issue)) }
                        }
                    }
                    @for i in fleet.drifted.iter().take(SHOWN) {
                        tr {
                            td { (badge("drift")) " history drift" }
                            td { a href={"/ui/tenants/" (i.slug)} { (i.slug) } }
                            td.mono { (issue_text(&i.issue)) }
                        }
                    }
                }
            }
            @let more = fleet.needs_attention.len().saturating_sub(SHOWN) + fleet.drifted.len().saturating_sub(SHOWN);
            @if more > 0 { p.muted { "and " (more) " more tenants with migration issues or history drift" } }
        }
    }
}

/// `GET /ui/health`: the registry health report (`GET /v1/registry/health`) as a page;
/// the fleet page loads its `#fleet-health` part.
pub async fn health(State(s): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let health = s.registry.health(s.config.provisioning_stuck_after).await?;
    let body = html! {
        h1 { "Registry health" }
        div #fleet-health {
            @if health.findings.is_empty() {
                p { (badge("ok")) " No inconsistency found." }
            } @else {
                table {
                    thead { tr { th { "Finding" } th { "Tenants" } th { "What to do" } } }
                    tbody {
                        @for f in &health.findings {
                            tr {
                                td { (badge("warn")) " " (f.kind) }
                                td {
                                    @for slug in f.slugs.iter().take(SHOWN) {
                                        a href={"/ui/tenants/" (slug)} { (slug) } " "
                                    }
                                    @if f.slugs.len() > SHOWN { "and " (f.slugs.len() - SHOWN) " more" }
                                }
                                td { (f.description) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::new(Nav::Fleet, "Registry health", body).render(&session))
}

fn issue_text(v: &serde_json::Value) -> String {
    match v
        .get("message")
        .or_else(|| v.get("kind"))
        .and_then(|m| m.as_str())
    {
        Some(m) => m.to_string(),
        None => v.to_string(),
    }
}
