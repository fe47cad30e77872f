//! `/ui/waves` (the list: [`list`]) and `/ui/waves/{id}` (one wave, live: [`detail`]).
//!
//! The wave page's moving part is one element kept current by the console script: it
//! re-fetches `/ui/waves/{id}/progress` whenever the session's event stream, filtered to
//! `wave=<id>` (the wave's own events and its tenants' `migrated`/`error` events), reports
//! something. Actions are POST forms to `/ui/waves/{id}/{pause|resume|abort|promote}`
//! that call [`crate::waves::WaveStore::act`], the function behind the API's wave actions,
//! with the session's token identity as the actor; success redirects (303) back to the
//! page with a status line, a refusal (wrong state) shows the page with the refusal.
//! Abort asks first: in the browser (`data-confirm`) and, for a form sent without that
//! answer (no script), on a confirmation page of its own.

mod detail;
mod list;

pub use list::list;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{self, post_form, Nav, Page};
use super::session::Session;
use super::ConsoleError;
use crate::state::AppState;
use crate::waves::Action;

/// The id of the element the script refreshes.
const LIVE_ID: &str = "wave-live";

fn wave_id(id: &str) -> Result<Uuid, ConsoleError> {
    id.parse()
        .map_err(|_| ConsoleError::NotFound(format!("no wave {id}")))
}

fn parse_action(a: &str) -> Option<Action> {
    detail::ACTIONS.into_iter().find(|x| x.as_str() == a)
}

/// `?done=<action>` after an action succeeded.
#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

/// A status line above the wave: what the session just did, or why it was refused.
enum Flash {
    Done(Action),
    Refused(String),
}

/// `GET /ui/waves/{id}`.
pub async fn show(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, ConsoleError> {
    let id = wave_id(&id)?;
    let flash = q.done.as_deref().and_then(parse_action).map(Flash::Done);
    page(&s, &session, id, flash).await
}

async fn page(
    s: &AppState,
    session: &Session,
    id: Uuid,
    flash: Option<Flash>,
) -> Result<Response, ConsoleError> {
    let d = detail::load(s, id, session.audience()).await?;
    let v = &d.view;
    let inner = detail::live(&d, session);
    // A finished wave never changes again: no stream held open for it.
    let live = if v.state.is_finished() {
        html! { div id=(LIVE_ID) { (inner) } }
    } else {
        layout::live(
            LIVE_ID,
            &format!("/ui/waves/{id}/progress"),
            &format!("wave={id}"),
            inner,
        )
    };
    let body = html! {
        p { a href="/ui/waves" { "← All waves" } }
        h1 {
            "Wave " span.mono { (list::short(&id)) }
            @if v.dry_run { " " span.label { "dry run" } }
        }
        @match &flash {
            Some(Flash::Done(a)) => p.notice role="status" { (done_text(*a)) },
            Some(Flash::Refused(m)) => p.error role="alert" { (m) },
            None => {},
        }
        dl.facts {
            dt { "Id" } dd.mono { (id) }
            dt { "Target version" } dd { (v.target_version) }
            dt { "Created" } dd { (layout::time(&v.created_at)) " by " (v.created_by) }
            @if let Some(dr) = v.exclude_failed_of {
                dt { "Quarantine from" } dd { a href={"/ui/waves/" (dr)} { "dry run " (list::short(&dr)) } }
            }
        }
        (live)
    };
    let status = match flash {
        Some(Flash::Refused(_)) => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    let title = format!("wave {}", list::short(&id));
    Ok((status, Page::new(Nav::Waves, title, body).render(session)).into_response())
}

fn done_text(a: Action) -> &'static str {
    match a {
        Action::Pause => "Paused. Tenants already running finish; no new ones start.",
        Action::Resume => "Resumed.",
        Action::Abort => "Aborted. Its pending tenants were skipped.",
        Action::Promote => "Promoted: the soak ended and the batches started.",
    }
}

/// `GET /ui/waves/{id}/progress`: the live part of the wave page alone.
pub async fn progress(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let d = detail::load(&s, wave_id(&id)?, session.audience()).await?;
    Ok(html! { div id=(LIVE_ID) { (detail::live(&d, &session)) } })
}

/// The form of a wave action (the guard has checked `csrf`).
#[derive(Deserialize)]
pub struct ActionForm {
    /// `yes` when the person confirmed (the script's dialog, or the confirmation page).
    confirmed: Option<String>,
}

/// `POST /ui/waves/{id}/{action}`.
pub async fn act(
    State(s): State<AppState>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    let a = parse_action(&action)
        .ok_or_else(|| ConsoleError::NotFound(format!("no wave action {action}")))?;
    session.require("POST", detail::route(a))?;
    let id = wave_id(&id)?;
    if a == Action::Abort && f.confirmed.as_deref() != Some("yes") {
        return Ok(confirm_abort(&session, id));
    }
    match s.waves.act(id, a, &session.actor()?).await {
        Ok(_) => {
            s.executor.poke();
            Ok(Redirect::to(&format!("/ui/waves/{id}?done={}", a.as_str())).into_response())
        }
        Err(e) => match ConsoleError::from(e) {
            ConsoleError::Refused(m) => page(&s, &session, id, Some(Flash::Refused(m))).await,
            other => Err(other),
        },
    }
}

/// The question a form sent without the script's confirmation gets.
fn confirm_abort(session: &Session, id: Uuid) -> Response {
    let body = html! {
        h1 { "Abort wave " span.mono { (list::short(&id)) } "?" }
        p { "Its pending tenants are skipped and the wave cannot be resumed. Tenants already migrated stay migrated." }
        (post_form(session, &format!("/ui/waves/{id}/abort"), None, html! {
            input type="hidden" name="confirmed" value="yes";
            button.danger type="submit" { "Abort the wave" }
        }))
        " "
        a href={"/ui/waves/" (id)} { "Cancel" }
    };
    Page::new(Nav::Waves, format!("abort wave {}", list::short(&id)), body).render(session)
}
