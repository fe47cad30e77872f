//! `/ui/`: the fleet at a glance.

use axum::response::Response;
use maud::html;

use super::layout::{Nav, Page};
use super::session::Session;

/// `GET /ui/`.
pub async fn page(session: Session) -> Response {
    Page::new(Nav::Fleet, "Fleet", html! { h1 { "Fleet" } }).render(&session)
}
