//! Whether each provisioning server's admin connection answers, as `GET /v1/servers`
//! reports it: learnt in the background, never by the request, so a viewer polling the
//! list costs no connection to any server.
//!
//! ```text
//!  server-probe task: every PROBE_EVERY (5 s) ──► connect + SELECT 1 on every server at
//!                     once, each within REACH_TIMEOUT (2 s) ──► record the answers
//!  a provisioning job's own admin connection ──► records its answer too (newer news)
//!  GET /v1/servers ──► the last answer of each, with when it was seen (waits for the
//!                      first round after start-up)
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Provisioner, Server};

/// How often every server is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How long a probe waits for a server: one dead server must not hold up the round.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// One server's last answer.
#[derive(Debug, Clone)]
pub struct Reach {
    /// Why it did not answer; `None`: it did.
    pub error: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The last answer of each server, in configuration order.
pub struct Reachability {
    last: Mutex<Vec<Option<Reach>>>,
    /// Whether a whole round has been recorded since start-up.
    probed: watch::Sender<bool>,
}

impl Reachability {
    /// Nothing known yet about `servers` servers.
    pub fn new(servers: usize) -> Self {
        Reachability {
            last: Mutex::new(vec![None; servers]),
            probed: watch::Sender::new(false),
        }
    }

    /// Records what server `i` just answered.
    pub fn record(&self, i: usize, error: Option<String>) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = last.get_mut(i) {
            *slot = Some(Reach {
                error,
                at: Utc::now(),
            });
        }
    }

    /// The last answers; right after start-up, waits for the first round (at most a
    /// little longer than one probe).
    pub async fn current(&self) -> Vec<Option<Reach>> {
        let mut probed = self.probed.subscribe();
        let first = probed.wait_for(|done| *done);
        let _ = tokio::time::timeout(REACH_TIMEOUT + Duration::from_secs(1), first).await;
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Connects to `server` as its admin role and runs `SELECT 1`, within [`REACH_TIMEOUT`].
/// An external server is not probed (drover has no connection to it): never an error.
async fn probe(server: &Server, default_ca: Option<&std::path::Path>) -> Option<String> {
    let mut target = server.admin()?.clone();
    target.config.connect_timeout(REACH_TIMEOUT);
    let ca = server.ca_file.as_deref().or(default_ca);
    let attempt = async {
        let client = target.connect(ca).await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| crate::db::describe(&e))
    };
    tokio::time::timeout(REACH_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REACH_TIMEOUT:?}")))
        .err()
}

impl Provisioner {
    /// Probes every server at once and records the answers.
    pub async fn probe_servers(&self) {
        let rounds = self
            .servers
            .iter()
            .map(|s| probe(s, self.default_ca.as_deref()));
        let answers = futures_util::future::join_all(rounds).await;
        for (i, error) in answers.into_iter().enumerate() {
            self.reach.record(i, error);
        }
        self.reach.probed.send_replace(true);
    }

    /// Records the answer of a connection made for other reasons (a provisioning job's).
    pub(super) fn heard_from(&self, server: &Server, error: Option<String>) {
        if let Some(i) = self.servers.iter().position(|s| s.name == server.name) {
            self.reach.record(i, error);
        }
    }
}

/// The `server-probe` task: a round every [`PROBE_EVERY`] until `shutdown` fires.
pub async fn run(provisioner: Arc<Provisioner>, shutdown: CancellationToken) {
    if provisioner.servers.is_empty() {
        provisioner.reach.probed.send_replace(true);
        // A supervised task that returns before shutdown counts as a failure.
        shutdown.cancelled().await;
        return;
    }
    loop {
        tokio::select! {
            _ = provisioner.probe_servers() => {}
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(PROBE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
