//! The console's stylesheet and script, compiled into the binary and served under a path
//! that carries a hash of their content: a page always names the current version, so the
//! browser may keep each one for a year without asking again.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The first 16 hex digits of SHA-256 of the assets: their version in URLs and their ETag.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(CSS.as_bytes());
    ctx.update(JS.as_bytes());
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
});

/// Where pages link the stylesheet.
pub fn css_href() -> String {
    format!("/ui/assets/{}/console.css", *VERSION)
}

/// Where pages load the script.
pub fn js_href() -> String {
    format!("/ui/assets/{}/console.js", *VERSION)
}

/// The assets' total size in bytes (page-weight measurements).
pub fn total_bytes() -> usize {
    CSS.len() + JS.len()
}

/// `GET /ui/assets/{version}/{file}`. An old version (a page from before an upgrade) still
/// gets the current file, but without the long cache.
pub async fn serve(Path((version, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return super::ConsoleError::NotFound("no such file".into()).into_response(),
    };
    let etag = format!("\"{}\"", *VERSION);
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, kind)], body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}
