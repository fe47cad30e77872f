//! Optional HTTPS on the listener (`tls_cert_file` / `tls_key_file`), for deployments
//! without an ingress in front of drover. Plain HTTP stays the default.
//!
//! TLS handshakes run on their own tasks (the `https-accept` task spawns one per
//! connection, each bounded by [`HANDSHAKE_TIMEOUT`]), so a client that connects and says
//! nothing never holds up the next one; finished handshakes reach the server
//! ([`super::serve`]) through a bounded channel. A connection holds one of the listener's
//! slots from before it is accepted, through its handshake, until it closes. The accept
//! task ends with the server (when it drops the listener) or on shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::serve::{accept, take_slot, Accepted, Source};
use crate::tls::HttpsFiles;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// A PEM file is missing, unreadable or holds nothing usable.
    #[error("{key} {path}: {message}")]
    File {
        key: &'static str,
        path: String,
        message: String,
    },
    /// The certificate and key do not make a server configuration.
    #[error("tls_cert_file / tls_key_file: {0}")]
    Config(#[from] rustls::Error),
}

impl HttpsError {
    /// Never: the files will not fix themselves.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The acceptor for the configured certificate and key.
pub fn acceptor(files: &HttpsFiles) -> Result<TlsAcceptor, HttpsError> {
    let file_err = |key: &'static str, path: &Path, message: String| HttpsError::File {
        key,
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err("tls_cert_file", &files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("tls_cert_file", &files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(
            "tls_cert_file",
            &files.cert,
            "no PEM certificate in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_err("tls_key_file", &files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener that hands the server finished TLS connections.
pub struct HttpsListener {
    ready: mpsc::Receiver<Accepted<TlsStream<TcpStream>>>,
    _accept: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HttpsListener {
    /// Starts the `https-accept` task on `tcp`, accepting while `slots` has a free one.
    pub fn new(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        slots: Arc<Semaphore>,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let next = async {
                    let slot = take_slot(&slots).await;
                    let (stream, peer) = accept(&tcp).await;
                    (slot, stream, peer)
                };
                let (slot, stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = next => next,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(io)) => {
                            let _ = tx.send(Accepted { io, peer, slot }).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        HttpsListener {
            ready,
            _accept: AbortOnDrop(task),
        }
    }
}

impl Source for HttpsListener {
    type Io = TlsStream<TcpStream>;

    async fn next(&mut self) -> Accepted<Self::Io> {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended (shutdown): wait for the server to stop.
            None => std::future::pending().await,
        }
    }
}
