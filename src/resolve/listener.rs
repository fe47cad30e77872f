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
use std::time::Duration;

use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};
use tokio_util::sync::CancellationToken;

use super::Resolver;
use crate::db;

/// The channel the `tenants_notify_changed` trigger notifies.
pub const CHANNEL: &str = "drover_tenant_changed";

/// Runs until `shutdown` fires.
pub async fn run(
    resolver: Arc<Resolver>,
    url: SecretString,
    ca: Option<PathBuf>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let session = listen_once(&resolver, &url, ca.as_deref(), &shutdown);
        match tokio::select! { r = session => r, _ = shutdown.cancelled() => return } {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "tenant change listener disconnected")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One connection's lifetime; returns when the connection ends.
async fn listen_once(
    resolver: &Resolver,
    url: &SecretString,
    ca: Option<&std::path::Path>,
    shutdown: &CancellationToken,
) -> Result<(), db::DbError> {
    let target = db::parse_url(url, "DROVER_DATABASE_URL")?;
    let (cfg, tls) = target.prepare(ca)?;
    match tls {
        None => listen_with(resolver, &cfg, tokio_postgres::NoTls, shutdown).await,
        Some(tls) => listen_with(resolver, &cfg, tls, shutdown).await,
    }
}

async fn listen_with<T>(
    resolver: &Resolver,
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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for notifications to arrive; this drives it.
    let driver = tokio::spawn(async move {
        let mut messages = std::pin::pin!(futures_util::stream::poll_fn(
            move |cx| conn.poll_message(cx)
        ));
        use futures_util::StreamExt;
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().to_string());
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Anything could have changed while we were not listening.
    resolver.forget_all_tenants();
    tracing::info!("listening for tenant changes");
    loop {
        tokio::select! {
            slug = rx.recv() => match slug {
                Some(slug) => resolver.forget_tenant(&slug),
                None => break,
            },
            _ = shutdown.cancelled() => break,
        }
    }
    drop(client);
    match driver.await {
        Ok(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}
