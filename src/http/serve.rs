//! The listener: accepts connections (plain TCP, or TLS through [`super::https`]) and
//! serves the router on each with hyper's HTTP/1 server, within two limits a slow or
//! greedy client cannot get around.
//!
//! ```text
//!  take a slot (http_max_connections) ──► accept ──► [TLS handshake] ──► serve the router
//!      │ none free: nothing is accepted; new clients wait in the kernel's queue      │
//!      └──────────────────── the slot is freed when the connection closes ◄──────────┘
//!  headers: each request's must arrive within http_header_timeout, or the connection is
//!           closed (an idle keep-alive connection is waiting for headers: it ends too)
//!  stop:    nothing more is accepted; every connection finishes its request and closes
//! ```
//!
//! Handlers see the peer's address as axum's `ConnectInfo<SocketAddr>`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::add_extension::AddExtension;

/// An accepted connection, holding one of the listener's slots until it is dropped.
pub struct Accepted<I> {
    pub io: I,
    pub peer: SocketAddr,
    pub slot: OwnedSemaphorePermit,
}

/// Where connections come from.
pub trait Source: Send {
    /// The connection's stream.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection, once a slot is free.
    fn next(&mut self) -> impl Future<Output = Accepted<Self::Io>> + Send;
}

/// Plain TCP.
pub struct Plain {
    tcp: TcpListener,
    slots: Arc<Semaphore>,
}

impl Plain {
    /// Accepts on `tcp` while `slots` has a free one.
    pub fn new(tcp: TcpListener, slots: Arc<Semaphore>) -> Self {
        Plain { tcp, slots }
    }
}

impl Source for Plain {
    type Io = TcpStream;

    async fn next(&mut self) -> Accepted<TcpStream> {
        let slot = take_slot(&self.slots).await;
        let (io, peer) = accept(&self.tcp).await;
        Accepted { io, peer, slot }
    }
}

/// Waits for a free slot. The semaphore is never closed.
pub async fn take_slot(slots: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    match slots.clone().acquire_owned().await {
        Ok(slot) => slot,
        Err(_) => std::future::pending().await,
    }
}

/// The next TCP connection; failures (out of file descriptors and the like) pause rather
/// than spin.
pub async fn accept(tcp: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match tcp.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `router` on the connections of `source` until `stop` completes, then lets every
/// open connection finish its request and waits for them. A client that has not sent a
/// request's headers within `header_timeout` is disconnected (an idle keep-alive too).
pub async fn serve<S: Source>(
    mut source: S,
    router: Router,
    header_timeout: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let conn = tokio::select! {
            conn = source.next() => conn,
            () = &mut stop => break,
        };
        let Accepted { io, peer, slot } = conn;
        let service =
            TowerToHyperService::new(AddExtension::new(router.clone(), ConnectInfo(peer)));
        let served = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            // A client that goes away or sends nothing in time is its own business.
            if let Err(e) = served.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    // Dropping the source stops accepting (and the TLS handshake task).
    drop(source);
    graceful.shutdown().await;
}
