//! What the benches share: a knob read from the environment, and a throwaway cluster with
//! a migrated control database.

#![allow(dead_code)] // each bench uses part of it

pub mod daemon;

use drover::devcluster::{Cluster, ClusterOptions};
use secrecy::SecretString;

/// `name` from the environment as a number, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A throwaway cluster (stopped with this process) holding database `db`, with drover's
/// control schema migrated and a pool of `pool_size` connections to it.
pub async fn control_db(db: &str, pool_size: usize) -> (Cluster, deadpool_postgres::Pool) {
    let cluster = Cluster::start(ClusterOptions {
        stop_with_process: true,
        ..Default::default()
    })
    .expect("PostgreSQL starts");
    cluster
        .psql("postgres", &format!("CREATE DATABASE {db}"))
        .unwrap();
    let url = SecretString::from(cluster.url(db));
    drover::db::migrate_control(&url, None).await.unwrap();
    let pool = drover::db::control_pool(&url, pool_size, None).unwrap();
    (cluster, pool)
}
