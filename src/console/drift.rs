//! `/ui/drift`: schema drift, the fleet grouped into cohorts (tenants sharing a version
//! and a schema), each with its differences from the expected schema of its version; and
//! the tenant page's schema drift section. Not history drift (an applied migration edited
//! or missing), which the fleet page lists as needing attention.

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{badge, time, Nav, Page};
use super::session::Session;
use super::ConsoleError;
use crate::drift::cohorts::{self, Difference, Reference, TenantDrift};
use crate::drift::DriftError;
use crate::state::AppState;

impl From<DriftError> for ConsoleError {
    fn from(e: DriftError) -> Self {
        match e {
            DriftError::Db(db) => db.into(),
            DriftError::Registry(r) => r.into(),
            other => {
                let r = other.is_retryable();
                ConsoleError::internal("schema drift", &other, r)
            }
        }
    }
}

/// `GET /ui/drift`.
pub async fn page(State(s): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let report = cohorts::report(&s.pool).await?;
    let body = html! {
        h1 { "Schema drift" }
        p.muted {
            "Tenants grouped by what their schema really is. Expected schemas: "
            (reference_words(report.reference))
            @if let Some(at) = &report.scanned_at { ". Newest fingerprint " (time(at)) }
            "."
        }
        @if report.cohorts.is_empty() {
            p { "No fingerprints yet: they are taken after every migration and by a scan (" code { "drover drift scan" } ")." }
        } @else {
            table {
                thead { tr { th { "Version" } th.n { "Tenants" } th { "Schema" } th { "Tenants (first 20)" } th { "Differences" } } }
                tbody {
                    @for c in &report.cohorts {
                        tr {
                            td { (c.version.map_or("none".into(), |v| format!("v{v}"))) }
                            td.n { (c.tenants) }
                            td { @if c.expected { (badge("ok")) " expected" } @else { (badge("warn")) " drifted" }
                                 " " span.mono.muted { (&c.fingerprint[..12.min(c.fingerprint.len())]) } }
                            td { @for (i, slug) in c.slugs.iter().enumerate() {
                                @if i > 0 { ", " }
                                a href={"/ui/tenants/" (slug)} { (slug) }
                            } }
                            td { (differences(&c.differences)) }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::new(Nav::Drift, "Schema drift", body).render(&session))
}

fn reference_words(r: Reference) -> &'static str {
    match r {
        Reference::Replay => "the migration set replayed on the scratch database",
        Reference::Majority => {
            "the schema most tenants at each version share (no drift_scratch_url)"
        }
    }
}

/// A list of differences, or "none".
pub fn differences(list: &[Difference]) -> Markup {
    html! {
        @if list.is_empty() { span.muted { "none" } } @else {
            ul {
                @for d in list {
                    li { strong { (format!("{:?}", d.kind).to_lowercase()) } " " code { (d.object) } " " span.mono.muted { (d.detail) } }
                }
            }
        }
    }
}

/// The tenant page's section.
pub fn tenant_section(drift: Option<&TenantDrift>) -> Markup {
    html! {
        h2 { "Schema drift" }
        @match drift {
            None => p.muted { "No fingerprint yet (taken after its next migration or scan)." },
            Some(d) => {
                p {
                    @if d.drifted { (badge("warn")) " differs from the expected schema of " } @else { (badge("ok")) " as expected at " }
                    (d.version.map_or("no version".into(), |v| format!("v{v}")))
                    " (" (reference_words(d.reference)) "), fingerprinted " (time(&d.scanned_at))
                }
                @if d.drifted { (differences(&d.differences)) }
            }
        }
    }
}
