//! One LISTEN connection to the control DB, kept open for the daemon's lifetime: the
//! mechanism behind the `tenant-notify` and `events-notify` tasks.
//!
//! ```text
//!   connect ─► LISTEN <channel> ─► on_listening() (we may have missed notifications)
//!      ▲                │
//!      │                ▼ notification ─► on_notify(payload)
//!      └── backoff 0.5 s → 10 s ◄── connection lost
//! ```
//!
//! Stops when the shutdown token fires. A notification is a hint: what the callers keep
//! (caches, wake-ups) must tolerate the gaps while the connection is down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};
use tokio_util::sync::CancellationToken;

use crate::db;

/// What a listener does: its channel, a name for the logs, and the two callbacks.
pub struct Listener {
    /// A trusted identifier (a constant of the caller), never user input.
    pub channel: &'static str,
    /// What is listened for, in log lines ("tenant changes").
    pub what: &'static str,
    /// Called after every (re)connection.
    pub on_listening: Arc<dyn Fn() + Send + Sync>,
    /// Called with each notification's payload, on the connection's driver task.
    pub on_notify: Arc<dyn Fn(&str) + Send + Sync>,
}

/// Runs until `shutdown` fires.
pub async fn run(
    listener: Listener,
    url: SecretString,
    ca: Option<PathBuf>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let session = listen_once(&listener, &url, ca.as_deref(), &shutdown);
        match tokio::select! { r = session => r, _ = shutdown.cancelled() => return } {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "listener for {} disconnected", listener.what)
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One connection's lifetime; returns when the connection ends or at shutdown.
async fn listen_once(
    listener: &Listener,
    url: &SecretString,
    ca: Option<&Path>,
    shutdown: &CancellationToken,
) -> Result<(), db::DbError> {
    let target = db::parse_url(url, "DROVER_DATABASE_URL")?;
    let (cfg, tls) = target.prepare(ca)?;
    match tls {
        None => listen_with(listener, &cfg, tokio_postgres::NoTls, shutdown).await,
        Some(tls) => listen_with(listener, &cfg, tls, shutdown).await,
    }
}

async fn listen_with<T>(
    listener: &Listener,
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
    let on_notify = listener.on_notify.clone();
    // The connection must be polled for notifications to arrive; this drives it.
    let mut driver = tokio::spawn(async move {
        let mut messages = std::pin::pin!(futures_util::stream::poll_fn(
            move |cx| conn.poll_message(cx)
        ));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => on_notify(n.payload()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {}", listener.channel))
        .await?;
    (listener.on_listening)();
    tracing::info!("listening for {}", listener.what);
    let ended = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = &mut driver => Some(r),
    };
    // Dropping the client ends the connection, which ends the driver.
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
