//! `/ui/webhooks`: every subscription (its URL without credentials, event types, format,
//! a state word) with its deliveries by state, the age of its oldest pending delivery and
//! its last failures. The secret reference is not shown: it names where the HMAC key is.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{self, Nav, Page};
use super::session::Session;
use super::ConsoleError;
use crate::events::webhooks::outbox::{self, DeliveryFailure as Failure};
use crate::events::webhooks::{self, display_url, WebhookView};
use crate::state::AppState;

/// Failed attempts listed per subscription, newest first.
const LAST_FAILURES: i64 = 5;

/// Delivery facts of one subscription beyond the API's counts.
#[derive(Default)]
struct Extra {
    /// Pending deliveries that failed at least once (waiting for their next attempt).
    retrying: i64,
    /// Seconds since the oldest pending delivery was written.
    oldest_pending_secs: Option<f64>,
    failures: Vec<Failure>,
}

async fn extras(s: &AppState) -> Result<HashMap<String, Extra>, ConsoleError> {
    let client = s.pool.get().await?;
    let mut out: HashMap<String, Extra> = HashMap::new();
    for p in outbox::pending_by_webhook(&**client).await? {
        let e = out.entry(p.webhook).or_default();
        e.retrying = p.retrying;
        e.oldest_pending_secs = p.oldest_pending_secs;
    }
    for f in outbox::last_failures(&**client, LAST_FAILURES).await? {
        out.entry(f.webhook.clone()).or_default().failures.push(f);
    }
    Ok(out)
}

/// `GET /ui/webhooks`.
pub async fn page(State(s): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let hooks = {
        let client = s.pool.get().await?;
        webhooks::list(&**client).await?
    };
    let mut extra = extras(&s).await?;
    let body = html! {
        h1 { "Webhooks" }
        @if hooks.is_empty() {
            p.muted { "No subscriptions. Create one with " code { "POST /v1/webhooks" } "." }
        } @else {
            (summary(&hooks, &extra))
            @for h in &hooks {
                (hook(h, extra.remove(&h.name).unwrap_or_default()))
            }
        }
    };
    Ok(Page::new(Nav::Webhooks, "Webhooks", body).render(&session))
}

/// A subscription's state in a word: dead deliveries need a person, retrying ones may
/// recover, anything else is fine.
fn state_word(h: &WebhookView, e: &Extra) -> &'static str {
    if h.deliveries.dead > 0 {
        "dead"
    } else if e.retrying > 0 {
        "retrying"
    } else {
        "ok"
    }
}

fn summary(hooks: &[WebhookView], extra: &HashMap<String, Extra>) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Subscription" }
                th scope="col" { "State" }
                th scope="col" .n { "Pending" }
                th scope="col" .n { "Of which retrying" }
                th scope="col" .n { "Delivered" }
                th scope="col" .n { "Dead" }
                th scope="col" { "Oldest pending" }
            } }
            tbody {
                @for h in hooks {
                    @let e = extra.get(&h.name);
                    @let none = Extra::default();
                    @let e = e.unwrap_or(&none);
                    tr {
                        th scope="row" { a href={"#hook-" (h.name)} { (h.name) } }
                        td { (layout::badge(state_word(h, e))) }
                        td.n { (h.deliveries.pending) }
                        td.n { (e.retrying) }
                        td.n { (h.deliveries.delivered) }
                        td.n { (h.deliveries.dead) }
                        td { (age(e.oldest_pending_secs)) }
                    }
                }
            }
        }
    }
}

/// The format's label; a stored name this drover does not know is shown as it is, marked
/// (its deliveries fail naming it).
fn format_label(name: &str) -> String {
    match webhooks::Format::named(name) {
        Some(f) => f.label.to_string(),
        None => format!("{name} (unknown to this drover)"),
    }
}

fn hook(h: &WebhookView, e: Extra) -> Markup {
    let heading = format!("hook-{}", h.name);
    html! {
        section.panel aria-labelledby=(heading) {
            h2 id=(heading) { (h.name) " " (layout::badge(state_word(h, &e))) }
            dl.facts {
                dt { "URL" } dd { code { (display_url(&h.url)) } }
                dt { "Events" } dd { @for t in &h.events { span.label { (t) } } }
                dt { "Format" } dd { (format_label(&h.format)) }
                dt { "Created" } dd { (layout::time(&h.created_at)) " by " (h.created_by) }
            }
            h3 { "Last failures" }
            @if e.failures.is_empty() {
                p.muted { "None." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Event" }
                        th scope="col" { "State" }
                        th scope="col" .n { "Attempts" }
                        th scope="col" .n { "HTTP status" }
                        th scope="col" { "Error" }
                        th scope="col" { "Next attempt (dead: when it died)" }
                    } }
                    tbody {
                        @for f in &e.failures {
                            tr {
                                td { (f.event_type) }
                                td { (layout::badge(if f.dead { "dead" } else { "retrying" })) }
                                td.n { (f.attempts) }
                                td.n { @if let Some(s) = f.status { (s) } @else { "—" } }
                                td { (f.error) }
                                td { (layout::time(&f.at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn age(secs: Option<f64>) -> Markup {
    match secs {
        None => html! { span.muted { "none pending" } },
        Some(s) => {
            let s = s.max(0.0) as u64;
            let text = match s {
                0..=119 => format!("{s} s"),
                120..=7199 => format!("{} min", s / 60),
                _ => format!("{} h", s / 3600),
            };
            html! { (text) }
        }
    }
}
