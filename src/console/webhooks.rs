//! `/ui/webhooks`: webhooks with their delivery state.
//! Placeholder page until the webhook view lands.

use axum::response::Response;
use maud::html;

use super::layout::{Nav, Page};
use super::session::Session;

/// `GET /ui/webhooks`.
pub async fn page(session: Session) -> Response {
    Page::new(
        Nav::Webhooks,
        "Webhooks",
        html! { h1 { "Webhooks" } p { "Not built yet." } },
    )
    .render(&session)
}
