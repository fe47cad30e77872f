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
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};
use tokio_util::sync::CancellationToken;

use crate::db;

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
    let mut backoff = Duration::from_millis(500);
    loop {
        let session = listen_once(&wake, &url, ca.as_deref(), &shutdown);
        match tokio::select! { r = session => r, _ = shutdown.cancelled() => return } {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "event listener disconnected")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(
    wake: &Wake,
    url: &SecretString,
    ca: Option<&std::path::Path>,
    shutdown: &CancellationToken,
) -> Result<(), db::DbError> {
    let target = db::parse_url(url, "DROVER_DATABASE_URL")?;
    let (cfg, tls) = target.prepare(ca)?;
    match tls {
        None => listen_with(wake, &cfg, tokio_postgres::NoTls, shutdown).await,
        Some(tls) => listen_with(wake, &cfg, tls, shutdown).await,
    }
}

async fn listen_with<T>(
    wake: &Wake,
    cfg: &tokio_postgres::Config,
    tls: T,
    shutdown: &CancellationToken,
) -> Result<(), db::DbError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut conn) = cfg.connect(tls).await?;
    let driver_wake = wake.clone();
    // The connection must be polled for notifications to arrive; this drives it.
    let driver = tokio::spawn(async move {
        let mut messages = std::pin::pin!(futures_util::stream::poll_fn(
            move |cx| conn.poll_message(cx)
        ));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(_)) => driver_wake.wake(),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    wake.wake();
    tracing::info!("listening for events");
    let mut driver = driver;
    let ended = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = &mut driver => Some(r),
    };
    drop(client);
    let result = match ended {
        Some(r) => r,
        None => driver.await,
    };
    match result {
        Ok(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}
