//! What the page of one wave shows, read and drawn: the wave's view (the API's
//! `GET /v1/waves/{id}`), its failures grouped by error, its timeline, and the actions its
//! state and the session's role allow. [`live`] is the part the script keeps current.

use maud::{html, Markup};
use serde_json::Value;
use uuid::Uuid;

use crate::console::layout::{self, post_form};
use crate::console::session::{encode, Session};
use crate::console::ConsoleError;
use crate::state::AppState;
use crate::waves::analysis::AnalysisView;
pub use crate::waves::overview::FailureGroup;
use crate::waves::redact::Audience;
use crate::waves::state::operate;
use crate::waves::store::PhaseView;
use crate::waves::timeline::WaveEvent;
use crate::waves::{Action, WaveState, WaveView};

/// Error groups shown, and slugs listed per group (the count is always complete).
const GROUPS: i64 = 20;
const SLUGS_PER_GROUP: i32 = 20;
/// Measurements shown (newest first); the count of all is beside them.
const MEASUREMENTS: usize = 20;
/// Timeline events shown after the first.
const TIMELINE: usize = 50;

/// Every operator action, in the order the buttons appear.
pub const ACTIONS: [Action; 4] = [
    Action::Pause,
    Action::Resume,
    Action::Promote,
    Action::Abort,
];

/// Everything the page draws.
pub struct Detail {
    pub view: WaveView,
    /// The state a paused wave returns to (decides whether Promote applies).
    pub paused_from: Option<WaveState>,
    pub groups: Vec<FailureGroup>,
    pub timeline: Vec<WaveEvent>,
}

/// Reads the wave `id`, its errors as `audience` reads them; `NotFound` when there is none.
pub async fn load(s: &AppState, id: Uuid, audience: Audience) -> Result<Detail, ConsoleError> {
    let view = s.waves.view(id, audience).await?;
    let timeline = s.waves.events(id).await?;
    let paused_from = s.waves.paused_from(id).await?;
    let groups = s
        .waves
        .failure_groups(id, GROUPS, SLUGS_PER_GROUP, audience)
        .await?;
    Ok(Detail {
        view,
        paused_from,
        groups,
        timeline,
    })
}

impl Detail {
    /// The actions that apply in the wave's state and that the session may take.
    pub fn actions(&self, session: &Session) -> Vec<Action> {
        let v = &self.view;
        ACTIONS
            .into_iter()
            .filter(|a| operate(v.state, self.paused_from, v.current_phase, *a).is_some())
            .filter(|a| session.may("POST", route(*a)))
            .collect()
    }
}

/// The API route doing the same as the console's action: the role table is keyed by it.
pub fn route(a: Action) -> &'static str {
    match a {
        Action::Pause => "/v1/waves/{id}/pause",
        Action::Resume => "/v1/waves/{id}/resume",
        Action::Abort => "/v1/waves/{id}/abort",
        Action::Promote => "/v1/waves/{id}/promote",
    }
}

/// The part of the page that follows the wave: state, actions, phases, failures, analysis
/// and timeline.
pub fn live(d: &Detail, session: &Session) -> Markup {
    let v = &d.view;
    let finished = v.counts.succeeded + v.counts.failed + v.counts.skipped;
    html! {
        section.panel aria-labelledby="wave-status" {
            h2 id="wave-status" { "Status" }
            dl.facts {
                dt { "State" } dd.state { (layout::badge(v.state.as_str())) }
                dt { "Progress" } dd { (layout::progress(finished, v.counts.total(), "finished tenants")) }
                dt { "Tenants" } dd {
                    (v.counts.succeeded) " succeeded, " (v.counts.failed) " failed, "
                    (v.counts.running) " running, " (v.counts.pending) " pending, "
                    (v.counts.skipped) " skipped"
                }
                @if let Some(r) = &v.halt_reason { dt { "Reason" } dd { (r) } }
                @if let Some(t) = &v.soak_until { dt { "Soak until" } dd { (layout::time(t)) } }
                @if let Some(eta) = v.eta_seconds { dt { "Time left (rough)" } dd { (eta) " s" } }
                @if let Some(t) = &v.started_at { dt { "Started" } dd { (layout::time(t)) } }
                @if let Some(t) = &v.finished_at { dt { "Finished" } dd { (layout::time(t)) } }
                @if let (Some(by), Some(at)) = (&v.promoted_by, &v.promoted_at) {
                    dt { "Promoted" } dd { "by " (by) " at " (layout::time(at)) }
                }
            }
            (actions(d, session))
        }
        section aria-labelledby="wave-phases" {
            h2 id="wave-phases" { "Phases" }
            (phases(&v.phases, v.current_phase, v.state))
        }
        section aria-labelledby="wave-failures" {
            h2 id="wave-failures" { "Failures" }
            (failures(&d.groups, v.counts.failed))
        }
        @if let Some(a) = &v.analysis {
            section aria-labelledby="wave-analysis" {
                h2 id="wave-analysis" { "Canary analysis" }
                (analysis(a))
            }
        }
        section aria-labelledby="wave-timeline" {
            h2 id="wave-timeline" { "Timeline" }
            (timeline(&d.timeline))
        }
    }
}

fn actions(d: &Detail, session: &Session) -> Markup {
    let id = d.view.id;
    let allowed = d.actions(session);
    html! {
        @if !allowed.is_empty() {
            div.actions role="group" aria-label="Wave actions" {
                @for a in allowed {
                    @let to = format!("/ui/waves/{id}/{}", a.as_str());
                    @match a {
                        Action::Abort => (post_form(session, &to,
                            Some("Abort this wave? Its pending tenants are skipped and it cannot be resumed."),
                            html! { button.danger type="submit" { "Abort" } })),
                        Action::Pause => (post_form(session, &to, None,
                            html! { button type="submit" { "Pause" } })),
                        Action::Resume => (post_form(session, &to, None,
                            html! { button type="submit" { "Resume" } })),
                        Action::Promote => (post_form(session, &to, None,
                            html! { button.secondary type="submit" { "Promote (end the soak now)" } })),
                    }
                    " "
                }
            }
        }
    }
}

fn phases(phases: &[PhaseView], current: i32, state: WaveState) -> Markup {
    html! {
        @if phases.is_empty() {
            p.muted { "No tenants in this wave." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Phase" }
                    th scope="col" { "Progress (finished / total)" }
                    th scope="col" .n { "Succeeded" }
                    th scope="col" .n { "Failed" }
                    th scope="col" .n { "Running" }
                    th scope="col" .n { "Pending" }
                    th scope="col" .n { "Skipped" }
                } }
                tbody {
                    @for p in phases {
                        @let c = &p.counts;
                        tr {
                            th scope="row" {
                                (p.name)
                                @if p.phase == current && !state.is_finished() { " " span.label { "current" } }
                            }
                            td { (layout::progress(c.succeeded + c.failed + c.skipped, p.total, &format!("{} finished", p.name))) }
                            td.n { (c.succeeded) }
                            td.n { (c.failed) }
                            td.n { (c.running) }
                            td.n { (c.pending) }
                            td.n { (c.skipped) }
                        }
                    }
                }
            }
        }
    }
}

fn failures(groups: &[FailureGroup], failed: i64) -> Markup {
    html! {
        @if groups.is_empty() {
            p.muted { "No tenant failed." }
        } @else {
            p { (failed) @if failed == 1 { " tenant" } @else { " tenants" } " failed, by error:" }
            table {
                thead { tr {
                    th scope="col" { "Error" }
                    th scope="col" .n { "Tenants" }
                    th scope="col" { "Which" }
                } }
                tbody {
                    @for g in groups {
                        tr {
                            td {
                                @if let Some(k) = &g.kind { span.label { (k) } " " }
                                code.error-text { (g.error) }
                            }
                            td.n { (g.count) }
                            td {
                                @for s in &g.slugs {
                                    a href={"/ui/tenants/" (encode(s))} { (s) } " "
                                }
                                @if g.count > g.slugs.len() as i64 {
                                    span.muted { "and " (g.count - g.slugs.len() as i64) " more" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn analysis(a: &AnalysisView) -> Markup {
    html! {
        table {
            caption.muted { "Checks, counted over the current soak" }
            thead { tr {
                th scope="col" { "Check" }
                th scope="col" { "Type" }
                th scope="col" { "Query and condition" }
                th scope="col" .n { "Runs" }
                th scope="col" .n { "Failed (limit)" }
                th scope="col" .n { "Inconclusive (limit)" }
                th scope="col" { "Next run" }
            } }
            tbody {
                @for c in &a.checks {
                    tr {
                        th scope="row" { (c.name) }
                        td { (c.kind) }
                        td { code { (c.query) } @if let Some(cond) = &c.success_condition { br; "pass when " code { (cond) } } }
                        td.n { (c.runs) }
                        td.n { (c.failures) " (" (c.failure_limit) ")" }
                        td.n { (c.inconclusives) " (" (c.inconclusive_limit) ")" }
                        td { @if let Some(t) = &c.next_run_at { (layout::time(t)) } @else { "—" } }
                    }
                }
            }
        }
        h3 { "Measurements" }
        @if a.evaluations.is_empty() {
            p.muted { "None yet." }
        } @else {
            p.muted { "The newest " (a.evaluations.len().min(MEASUREMENTS)) " of " (a.evaluations_total) "." }
            table {
                thead { tr {
                    th scope="col" { "At" }
                    th scope="col" { "Check" }
                    th scope="col" { "Tenant" }
                    th scope="col" { "Value" }
                    th scope="col" { "Verdict" }
                    th scope="col" { "Detail" }
                } }
                tbody {
                    @for e in a.evaluations.iter().take(MEASUREMENTS) {
                        tr {
                            td { (layout::time(&e.at)) }
                            td { (e.check) }
                            td { @if let Some(t) = &e.tenant { a href={"/ui/tenants/" (encode(t))} { (t) } } }
                            td { @if let Some(v) = &e.value { code { (v) } } }
                            td { (layout::badge(verdict_word(&e.verdict))) }
                            td { @if let Some(d) = &e.detail { (d) } }
                        }
                    }
                }
            }
        }
    }
}

/// A verdict in the words the badges colour (`pass` is good, `fail` bad).
fn verdict_word(v: &str) -> &str {
    match v {
        "pass" => "ok",
        "fail" => "failed",
        other => other,
    }
}

fn timeline(events: &[WaveEvent]) -> Markup {
    // A wave of many small batches has an event per batch: the page keeps its weight by
    // showing how it began and the newest events.
    let hidden = events.len().saturating_sub(TIMELINE + 1);
    let shown = events.iter().take(1).chain(events.iter().skip(1 + hidden));
    html! {
        @if hidden > 0 {
            p.muted { "The first event and the newest " (TIMELINE) "; " (hidden) " between them are not shown (" code { "drover waves show" } " lists all)." }
        }
        ol.timeline {
            @for e in shown {
                li {
                    (layout::time(&e.created_at)) " "
                    strong { (e.event_type) } " by " span.mono { (e.actor) }
                    @let p = payload_text(&e.payload);
                    @if !p.is_empty() { " — " (p) }
                }
            }
        }
    }
}

/// A payload as `key: value, ...` (strings unquoted), empty for `{}`.
fn payload_text(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_payload_reads_as_words_and_an_empty_one_as_nothing() {
        assert_eq!(payload_text(&json!({})), "");
        assert_eq!(payload_text(&json!({"batch": 2})), "batch: 2");
        assert_eq!(
            payload_text(&json!({"from": "rolling", "reason": "budget"})),
            "from: rolling, reason: budget"
        );
    }

    #[test]
    fn a_long_timeline_shows_its_first_event_and_the_newest_ones() {
        let events: Vec<WaveEvent> = (0..120)
            .map(|i| WaveEvent {
                id: i,
                event_type: if i == 0 { "created" } else { "batch_started" }.into(),
                actor: "drover".into(),
                payload: json!({ "batch": i }),
                created_at: chrono::Utc::now(),
            })
            .collect();

        let html = timeline(&events).into_string();
        let short = timeline(&events[..10]).into_string();

        assert_eq!(html.matches("<li>").count(), TIMELINE + 1);
        assert!(html.contains("created") && html.contains("batch: 119"));
        assert!(!html.contains("batch: 69<") && html.contains("batch: 70<"));
        assert!(html.contains("69 between them are not shown"), "{html}");
        assert_eq!(short.matches("<li>").count(), 10);
        assert!(!short.contains("not shown"));
    }

    #[test]
    fn every_action_maps_to_the_api_route_that_the_role_table_knows() {
        for a in ACTIONS {
            assert_eq!(route(a), format!("/v1/waves/{{id}}/{}", a.as_str()));
            assert_ne!(
                crate::access::needed_role("POST", route(a)).roles(),
                crate::access::needed_role("GET", "/v1/waves").roles(),
                "{a:?} needs more than reading"
            );
        }
    }
}
