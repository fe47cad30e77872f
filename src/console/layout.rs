//! The frame every console page shares: `<head>` (title starting with `drover`, the one
//! stylesheet and script), the navigation, who is logged in and the logout button; plus
//! small pieces pages reuse (state badges with text, times, forms with the CSRF field).

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::assets;
use super::session::Session;

/// The top-level pages, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Fleet,
    Tenants,
    Waves,
    Drift,
    Schedules,
    Webhooks,
}

impl Nav {
    const ALL: [Nav; 6] = [
        Nav::Fleet,
        Nav::Tenants,
        Nav::Waves,
        Nav::Drift,
        Nav::Schedules,
        Nav::Webhooks,
    ];

    fn label(self) -> &'static str {
        match self {
            Nav::Fleet => "Fleet",
            Nav::Tenants => "Tenants",
            Nav::Waves => "Waves",
            Nav::Drift => "Schema drift",
            Nav::Schedules => "Schedules",
            Nav::Webhooks => "Webhooks",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Nav::Fleet => "/ui/",
            Nav::Tenants => "/ui/tenants",
            Nav::Waves => "/ui/waves",
            Nav::Drift => "/ui/drift",
            Nav::Schedules => "/ui/schedules",
            Nav::Webhooks => "/ui/webhooks",
        }
    }
}

/// One page: its title (after `drover · `), the navigation entry it belongs to, and its
/// main content.
pub struct Page {
    pub title: String,
    pub nav: Nav,
    pub body: Markup,
}

impl Page {
    /// A page under `nav` titled `title`.
    pub fn new(nav: Nav, title: impl Into<String>, body: Markup) -> Page {
        Page {
            title: title.into(),
            nav,
            body,
        }
    }

    /// The whole HTML document for `session`.
    pub fn render(self, session: &Session) -> Response {
        document(
            &self.title,
            html! {
                header.top {
                    a.brand href="/ui/" { "drover" }
                    nav aria-label="Main" {
                        ul {
                            @for n in Nav::ALL {
                                li {
                                    @if n == self.nav {
                                        a href=(n.href()) aria-current="page" { (n.label()) }
                                    } @else {
                                        a href=(n.href()) { (n.label()) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span { (session.identity) " (" (session.role.as_str()) ")" }
                        (post_form(session, "/ui/logout", None, html! {
                            button.link type="submit" { "Log out" }
                        }))
                    }
                }
                main id="main" { (self.body) }
            },
        )
        .into_response()
    }
}

/// A complete document around `content`: the head every page has.
pub fn document(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "drover · " (title) }
                link rel="stylesheet" href=(assets::css_href());
                script type="module" src=(assets::js_href()) {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (content)
            }
        }
    }
}

/// A page without navigation (errors, and the login page before there is a session).
pub fn bare(title: &str, message: &str) -> Markup {
    document(
        title,
        html! {
            main id="main" .narrow {
                h1 { (title) }
                p { (message) }
                p { a href="/ui/" { "Back to the console" } }
            }
        },
    )
}

/// A POST form to `action` carrying the session's CSRF token; `confirm` makes the script
/// ask first (the form still works without the script).
pub fn post_form(session: &Session, action: &str, confirm: Option<&str>, inner: Markup) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            input type="hidden" name="csrf" value=(session.csrf);
            (inner)
        }
    }
}

/// A state shown as a word in a coloured badge: the colour is never the only signal.
pub fn badge(state: &str) -> Markup {
    let tone = match state {
        "active" | "completed" | "succeeded" | "delivered" | "ok" => "good",
        "failed" | "halted" | "aborted" | "dead" | "error" => "bad",
        "suspended" | "paused" | "provisioning" | "pending" | "retrying" | "deleting" | "drift"
        | "warn" => "warn",
        "canary" | "soaking" | "rolling" | "running" => "busy",
        _ => "plain",
    };
    html! { span class={"badge " (tone)} { (state) } }
}

/// A time as `2026-01-31 12:00:00 UTC`, in a `<time>` element.
pub fn time(t: &DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// A progress bar with its numbers as text beside it.
pub fn progress(done: i64, total: i64, label: &str) -> Markup {
    let pct = if total > 0 {
        (done as f64 * 100.0 / total as f64).clamp(0.0, 100.0)
    } else {
        0.0
    };
    html! {
        span.progress {
            progress max=(total.max(1)) value=(done) aria-label=(label) { (format!("{pct:.0}%")) }
            span.num { (done) " / " (total) " (" (format!("{pct:.0}")) "%)" }
        }
    }
}

/// A section that the script keeps current: it re-fetches `fragment` (an HTML page or
/// fragment holding an element with the same `id`) whenever the console's event stream,
/// filtered by `stream_query` (the `/v1/events/stream` filters, e.g. `wave=<id>`), reports
/// an event.
pub fn live(id: &str, fragment: &str, stream_query: &str, inner: Markup) -> Markup {
    let types: Vec<String> = crate::events::TENANT_TYPES
        .iter()
        .map(|t| format!("tenant.{t}"))
        .chain(
            crate::events::WAVE_TYPES
                .iter()
                .map(|t| format!("wave.{t}")),
        )
        .collect();
    html! {
        div id=(id) data-fragment=(fragment) data-stream=(format!("/ui/stream?{stream_query}"))
            data-stream-types=(types.join(" ")) aria-live="polite" {
            (inner)
        }
    }
}

/// Raw, already-safe markup (SVG the server drew from numbers).
pub fn trusted(svg: String) -> PreEscaped<String> {
    PreEscaped(svg)
}
