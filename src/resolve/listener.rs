//! The `tenant-notify` task: LISTEN on the control DB and drop changed tenants from the
//! resolution cache, so a suspend made through any replica takes effect everywhere at once.
//!
//! ```text
//!   connect ─► LISTEN drover_tenant_changed ─► clear cache (we may have missed changes)
//!      ▲                │
//!      │                ▼ notification(slug) ─► invalidate(slug)
//!      └── backoff 0.5 s → 10 s ◄── connection lost
//! ```
//!
//! Runs for the daemon's lifetime; stops when the shutdown token fires. While it is
//! disconnected the cache TTL bounds how stale a tenant row can be.

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::Resolver;

/// The channel the `tenants_notify_changed` trigger notifies.
pub const CHANNEL: &str = "drover_tenant_changed";

/// Runs until `shutdown` fires.
pub async fn run(
    resolver: Arc<Resolver>,
    url: SecretString,
    ca: Option<PathBuf>,
    shutdown: CancellationToken,
) {
    let (on_listening, on_notify) = (resolver.clone(), resolver);
    let listener = crate::listen::Listener {
        channel: CHANNEL,
        what: "tenant changes",
        // Anything could have changed while we were not listening.
        on_listening: Arc::new(move || on_listening.forget_all_tenants()),
        on_notify: Arc::new(move |slug| on_notify.forget_tenant(slug)),
    };
    crate::listen::run(listener, url, ca, shutdown).await
}
