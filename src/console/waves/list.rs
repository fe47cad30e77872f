//! `GET /ui/waves`: the waves, newest first, a page at a time, each with its state (a word),
//! progress (finished of total, failed) and target version.

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::console::layout::{self, Nav, Page};
use crate::console::session::Session;
use crate::console::ConsoleError;
use crate::waves::WaveState;

/// Waves on one page of the list.
const PAGE: i64 = 25;

/// One row of the list.
struct Row {
    id: Uuid,
    state: WaveState,
    target_version: i32,
    dry_run: bool,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    total: i64,
    finished: i64,
    failed: i64,
}

/// `?before=<wave id>`: the page after that wave (keyset paging, stable while waves are
/// created).
#[derive(Deserialize)]
pub struct ListQuery {
    before: Option<String>,
}

/// The page of waves created before `before` (all when `None`), plus whether more follow.
async fn page_of(s: &AppState, before: Option<Uuid>) -> Result<(Vec<Row>, bool), ConsoleError> {
    // Progress from one aggregate per wave over its targets (index on wave_id first).
    const SQL: &str = "SELECT w.id, w.state, w.target_version, w.dry_run, w.created_by, \
           w.created_at, w.updated_at, coalesce(c.total, 0) AS total, \
           coalesce(c.finished, 0) AS finished, coalesce(c.failed, 0) AS failed \
         FROM control_plane.waves w \
         LEFT JOIN LATERAL (SELECT count(*) AS total, \
             count(*) FILTER (WHERE t.state IN ('succeeded', 'failed', 'skipped')) AS finished, \
             count(*) FILTER (WHERE t.state = 'failed') AS failed \
           FROM control_plane.wave_targets t WHERE t.wave_id = w.id) c ON true \
         WHERE $1::uuid IS NULL OR (w.created_at, w.id) < \
           (SELECT b.created_at, b.id FROM control_plane.waves b WHERE b.id = $1) \
         ORDER BY w.created_at DESC, w.id DESC LIMIT $2";
    let client = s.pool.get().await?;
    let rows = client.query(SQL, &[&before, &(PAGE + 1)]).await?;
    let more = rows.len() as i64 > PAGE;
    let rows = rows
        .iter()
        .take(PAGE as usize)
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok(Row {
                id: r.try_get("id")?,
                state: state
                    .parse()
                    .map_err(
                        |e: crate::waves::state::UnknownState| ConsoleError::Internal {
                            message: e.to_string(),
                            retryable: false,
                        },
                    )?,
                target_version: r.try_get("target_version")?,
                dry_run: r.try_get("dry_run")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                total: r.try_get("total")?,
                finished: r.try_get("finished")?,
                failed: r.try_get("failed")?,
            })
        })
        .collect::<Result<Vec<_>, ConsoleError>>()?;
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

fn table(rows: &[Row]) -> Markup {
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
