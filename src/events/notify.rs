//! The `events-notify` task: LISTEN `drover_events` on the control DB and wake every
//! stream and the webhook worker of this replica when an event committed anywhere.
//!
//! ```text
//!   connect ─► LISTEN drover_events ─► wake (we may have missed events)
//!      ▲                │
//!      │                ▼ notification ─► wake
//!      └── backoff 0.5 s → 10 s ◄── connection lost
//! ```
//!
//! A notification is only a hint: readers always re-read the tables, and poll on their own
//! (every second) so a lost connection delays them, never loses an event.

use std::path::PathBuf;

use secrecy::SecretString;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The channel the `events_after_insert` trigger notifies.
pub const CHANNEL: &str = "drover_events";

/// A counter bumped on every wake-up; readers wait for it to change.
#[derive(Clone)]
pub struct Wake(watch::Sender<u64>);

impl Default for Wake {
    fn default() -> Self {
        Wake(watch::channel(0).0)
    }
}

impl Wake {
    /// Wakes every subscriber.
    pub fn wake(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees the next wake-up.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Runs until `shutdown` fires.
pub async fn run(wake: Wake, url: SecretString, ca: Option<PathBuf>, shutdown: CancellationToken) {
    let on_notify = wake.clone();
    let listener = crate::listen::Listener {
        channel: CHANNEL,
        what: "events",
        // We may have missed events while we were not listening.
        on_listening: std::sync::Arc::new(move || wake.wake()),
        on_notify: std::sync::Arc::new(move |_| on_notify.wake()),
    };
    crate::listen::run(listener, url, ca, shutdown).await
}
