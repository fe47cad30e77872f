//! `/ui/schedules`: schedules with their next fire times in their own timezone.
//! Placeholder page until the schedule view lands.

use axum::response::Response;
use maud::html;

use super::layout::{Nav, Page};
use super::session::Session;

/// `GET /ui/schedules`.
pub async fn page(session: Session) -> Response {
    Page::new(
        Nav::Schedules,
        "Schedules",
        html! { h1 { "Schedules" } p { "Not built yet." } },
    )
    .render(&session)
}
