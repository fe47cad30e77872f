//! `GET /ui/waves`: the waves, newest first, a page at a time, each with its state (a word),
//! progress (finished of total, failed) and target version.

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use crate::console::layout::{self, Nav, Page};
use crate::console::session::Session;
use crate::console::ConsoleError;
use crate::state::AppState;
use crate::waves::overview::WaveSummary;

/// Waves on one page of the list.
const PAGE: i64 = 25;

/// `?before=<wave id>`: the page after that wave (keyset paging, stable while waves are
/// created).
#[derive(Deserialize)]
pub struct ListQuery {
    before: Option<String>,
}

/// The page of waves created before `before` (all when `None`), plus whether more follow.
async fn page_of(
    s: &AppState,
    before: Option<Uuid>,
) -> Result<(Vec<WaveSummary>, bool), ConsoleError> {
    let mut rows = s.waves.summaries(before, PAGE + 1).await?;
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    Ok((rows, more))
}

/// `GET /ui/waves`.
pub async fn list(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    // An unknown or malformed cursor is the first page, not an error: links get old.
    let before = q.before.as_deref().and_then(|b| b.parse::<Uuid>().ok());
    let (rows, more) = page_of(&s, before).await?;
    let body = html! {
        h1 { "Waves" }
        @if rows.is_empty() {
            p.muted { @if before.is_some() { "No older waves." } @else { "No waves yet." } }
        } @else {
            (table(&rows))
        }
        nav.pager aria-label="Pages" {
            @if before.is_some() { a href="/ui/waves" { "Newest" } }
            @if let (true, Some(last)) = (more, rows.last()) {
                a href={"/ui/waves?before=" (last.id)} rel="next" { "Older waves" }
            }
        }
    };
    Ok(Page::new(Nav::Waves, "Waves", body).render(&session))
}

fn table(rows: &[WaveSummary]) -> Markup {
    html! {
        table {
            caption.muted { "Newest first" }
            thead { tr {
                th scope="col" { "Wave" }
                th scope="col" { "State" }
                th scope="col" { "Progress (finished / total)" }
                th scope="col" .n { "Failed" }
                th scope="col" .n { "Target version" }
                th scope="col" { "Created" }
                th scope="col" { "Updated" }
            } }
            tbody {
                @for r in rows {
                    tr {
                        td {
                            a.mono href={"/ui/waves/" (r.id)} { (short(&r.id)) }
                            @if r.dry_run { " " span.label { "dry run" } }
                        }
                        td { (layout::badge(r.state.as_str())) }
                        td { (layout::progress(r.finished, r.total, "finished tenants")) }
                        td.n { (r.failed) }
                        td.n { (r.target_version) }
                        td { (layout::time(&r.created_at)) br; span.muted { "by " (r.created_by) } }
                        td { (layout::time(&r.updated_at)) }
                    }
                }
            }
        }
    }
}

/// The first block of a wave id: enough to tell waves apart on a page, the full id is in
/// the link and on the wave's page.
pub fn short(id: &Uuid) -> String {
    id.to_string()[..8].to_string()
}
