//! Cloud secret stores, each against an emulator or a protocol fake of its service:
//! `aws-sm:` against moto; `gcp-sm:` and `azure-kv:` against local protocol fakes
//! (`fake_gcp`, `fake_azure`: each names the documentation it follows), driven by a real
//! `drover serve` through the clouds' own client crates. Each backend's tests are built
//! with its cargo feature only.

#![cfg_attr(
    not(all(feature = "gcp", feature = "azure")),
    allow(dead_code, unused_imports)
)]

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
#[cfg(feature = "azure")]
mod fake_azure;
#[cfg(feature = "gcp")]
mod fake_gcp;
#[cfg(feature = "gcp")]
mod gcp;

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

use crate::helpers::*;

pub(crate) const RESOLVER_TOKEN: &str = "test-resolver-token-0123456789abcdef";

/// A slug (and its database/role name) unique to one test.
pub(crate) fn names(prefix: &str) -> (String, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let slug = format!("{prefix}-{}-{n}", std::process::id());
    (slug.clone(), format!("ct_{}", slug.replace('-', "_")))
}

/// An admin role for `DROVER_PROVISION_URL` (CREATEDB, CREATEROLE); returns its URL.
pub(crate) async fn provisioner_url() -> String {
    let (_, name) = names("prov");
    let admin = connect(&db_url("postgres")).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN CREATEDB CREATEROLE PASSWORD 'prov-pw'"
        ))
        .await
        .unwrap();
    let (host, port) = server_host_port();
    format!("postgres://{name}:prov-pw@{host}:{port}/postgres")
}

/// A tenant body for an existing database `db` (role `db`) with `secret_ref`.
pub(crate) fn tenant_on(slug: &str, db: &str, secret_ref: &str) -> Value {
    let (host, port) = server_host_port();
    json!({
        "slug": slug, "display_name": format!("{slug} Ltd"),
        "db_name": db, "db_host": host, "db_port": port, "db_user": db,
        "db_secret_ref": secret_ref, "status": "active",
    })
}

/// Resolves `slug` with the resolver token: (status, body).
pub(crate) async fn resolve(daemon: &Daemon, slug: &str) -> (reqwest::StatusCode, Value) {
    let r = daemon.with_token(RESOLVER_TOKEN).resolve(slug).await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Whether a real client logs in with the DSN drover resolved.
pub(crate) async fn logs_in(resolved: &Value) -> bool {
    let Some(dsn) = resolved["dsn"].as_str() else {
        return false;
    };
    match tokio_postgres::connect(dsn, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    }
}

/// `drover_secret_cache_total{result="stale"}` from the daemon's /metrics.
pub(crate) async fn stale_serves(daemon: &Daemon) -> f64 {
    daemon
        .metrics_text()
        .await
        .lines()
        .find(|l| l.starts_with("drover_secret_cache_total{result=\"stale\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Puts the harness' SCRAM-only group on a role drover created.
pub(crate) async fn require_password(role: &str) {
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT drover_password_auth TO \"{role}\""
        ))
        .await
        .unwrap();
}

/// After a new version of `slug`'s secret was written and its role's password changed:
/// waits for resolution to serve a password that logs in (the cache refreshed from the new
/// version), and asserts it did and that `scheme` counted a rotation.
pub(crate) async fn new_version_is_served_and_counted(daemon: &Daemon, slug: &str, scheme: &str) {
    let rotated = wait_until(std::time::Duration::from_secs(15), || async {
        let (_, now) = resolve(daemon, slug).await;
        logs_in(&now).await
    })
    .await;
    let rotations = daemon
        .metric(&format!(
            "drover_secret_rotations_total{{scheme=\"{scheme}\"}}"
        ))
        .await;

    assert!(rotated, "the new version was never served");
    assert!(rotations >= 1.0, "no rotation counted: {rotations}");
}
