//! The test harness, by what each part provides:
//! - `database`: one throwaway PostgreSQL cluster per test binary, a fresh database per
//!   test, tenant databases and what tests read back from them;
//! - `apps`: `TestApp`, the daemon in-process on port 0 (`spawn_app()`, `TestApp::builder()`);
//! - `processes`: `Daemon`, a real `drover serve` process; the CLI binary; Prometheus;
//! - `openbao`: a real OpenBao dev server for the `vault:` secret backend;
//! - `moto`: moto's AWS Secrets Manager emulator for the `aws-sm:` secret backend;
//! - `nginx`: a real nginx ending TLS in front of a daemon;
//! - `files`: temporary secrets and migrations directories;
//! - `api`: `ApiClient`, one helper per endpoint, which `TestApp` and `Daemon` both deref to.

mod api;
mod apps;
mod database;
mod files;
#[cfg(feature = "aws")]
mod moto;
mod nginx;
mod openbao;
mod processes;

use std::time::Duration;

pub use api::*;
pub use apps::*;
pub use database::*;
pub use files::*;
#[cfg(feature = "aws")]
pub use moto::*;
pub use nginx::*;
pub use openbao::*;
pub use processes::*;

/// A test that cannot run here: a failure when the CI switch `require` (a
/// `DROVER_REQUIRE_*` variable) is `1`, else a loud line straight on stderr (the harness
/// hides a test's `eprintln!` unless it fails, and a silent skip looks like a pass).
pub fn skip_unless_required(require: &str, why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    assert!(
        std::env::var(require).map_or(true, |v| v.trim() != "1"),
        "{test}: {why}, and {require}=1 says it must run"
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n*** {test}: skipping: {why}\n*** (set {require}=1 to make this a failure)\n")
            .as_bytes(),
    );
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
