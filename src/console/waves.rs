//! `/ui/waves` (the list, with state and progress) and `/ui/waves/{id}` (one wave, live).
//! Placeholder pages until the wave views land.

use axum::extract::Path;
use axum::response::Response;
use maud::html;

use super::layout::{Nav, Page};
use super::session::Session;

/// `GET /ui/waves`.
pub async fn list(session: Session) -> Response {
    Page::new(
        Nav::Waves,
        "Waves",
        html! { h1 { "Waves" } p { "Not built yet." } },
    )
    .render(&session)
}

/// `GET /ui/waves/{id}`.
pub async fn show(session: Session, Path(id): Path<String>) -> Response {
    Page::new(
        Nav::Waves,
        format!("wave {id}"),
        html! { h1 { "Wave " (id) } p { "Not built yet." } },
    )
    .render(&session)
}
