//! `/ui/tenants` (search) and `/ui/tenants/{slug}` (one tenant).

use axum::extract::Path;
use axum::response::Response;
use maud::html;

use super::layout::{Nav, Page};
use super::session::Session;

/// `GET /ui/tenants`.
pub async fn list(session: Session) -> Response {
    Page::new(Nav::Tenants, "Tenants", html! { h1 { "Tenants" } }).render(&session)
}

/// `GET /ui/tenants/{slug}`.
pub async fn show(session: Session, Path(slug): Path<String>) -> Response {
    Page::new(
        Nav::Tenants,
        format!("tenant {slug}"),
        html! { h1 { (slug) } },
    )
    .render(&session)
}
