//! The concurrency caps, measured on the tenant server while two replicas run one wave of
//! slow files: how many tenants are migrating at each instant (see `support`), overall and
//! per database host, never more than the wave allows, and as many as it allows (so the
//! measurement is known to see the migrations at all).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::{
    copy_of, db_name, register_many, replica, targets, two_replicas, wait_for_wave, LockSampler,
};
use crate::helpers::{
    connect, counted_migrations, server_host_port, wait_until, MigrationsDir, SecretsDir, WAVE_DONE,
};

// Pins: a claim that ignores `max_concurrency` (tried by hand: claiming up to the free
// slots; the two replicas then run 4 at once), or counts only its own replica's running
// tenants (each replica has 2 slots, so only the two together can reach 3). The host cap
// is set above it, or it would hide the global one (it defaults to max_concurrency).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_migrate_more_tenants_at_once_than_max_concurrency() {
    let (migrations, secrets) = (
        MigrationsDir::owned(&counted_migrations(0.3)),
        SecretsDir::new(),
    );
    let (a, b) = two_replicas(&migrations, &secrets, "2", &[]).await;
    let (host, _) = server_host_port();
    let tenants = register_many(&a, &secrets, "cc", 12, &host).await;
    let sampler = LockSampler::start(&tenants).await;

    let id = a
        .start_wave(json!({"max_concurrency": 3, "max_per_host": 10, "batch_size": 100}))
        .await;
    let wave = b.wait_for_wave_state(&id, WAVE_DONE).await;
    let seen = sampler.stop().await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(
        seen.peak(&tenants),
        3,
        "tenants migrating at once with max_concurrency 3"
    );
}

// Pins: a claim that ignores `max_per_host` (tried by hand: six at once on each host), or
// counts a host's running tenants in one replica only. Two hosts (two names of the test server), six tenants each, two per host
// allowed: each host reaches two at once and never three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_migrate_more_tenants_of_one_host_at_once_than_max_per_host() {
    let (migrations, secrets) = (
        MigrationsDir::owned(&counted_migrations(0.3)),
        SecretsDir::new(),
    );
    let (a, b) = two_replicas(&migrations, &secrets, "3", &[]).await;
    let (host, _) = server_host_port();
    let first = register_many(&a, &secrets, "ha", 6, &host).await;
    let second = register_many(&a, &secrets, "hb", 6, "localhost").await;
    let all: Vec<_> = first.iter().chain(&second).map(copy_of).collect();
    let sampler = LockSampler::start(&all).await;

    let id = a
        .start_wave(json!({"max_concurrency": 6, "max_per_host": 2, "batch_size": 100}))
        .await;
    let wave = b.wait_for_wave_state(&id, WAVE_DONE).await;
    let seen = sampler.stop().await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(seen.peak(&first), 2, "at once on {host}");
    assert_eq!(seen.peak(&second), 2, "at once on localhost");
    assert!(seen.peak(&all) <= 4);
}

// Pins: candidates read in slug order alone (tried by hand: `ORDER BY t.phase, t.slug` in
// the claim; the second host then starts only after three of the first host's tenants are
// done). Ten tenants on one host whose slugs sort first, two on another; max_concurrency 2
// and max_per_host 1, so the claim's window (four times max_concurrency) is eight
// tenants: in slug order all on the first host, which may run one at a time. Read with
// hosts interleaved, the second host starts next to the first host's first tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_slugs_sort_last_starts_beside_the_first_host_not_after_it() {
    let (migrations, secrets) = (
        MigrationsDir::owned(&counted_migrations(0.3)),
        SecretsDir::new(),
    );
    let app = replica(None, "interleave", &migrations, &secrets, &[]).await;
    let (host, _) = server_host_port();
    let first = register_many(&app, &secrets, "ia", 10, &host).await;
    let second = register_many(&app, &secrets, "ib", 2, "localhost").await;
    let all: Vec<_> = first.iter().chain(&second).map(copy_of).collect();
    let sampler = LockSampler::start(&all).await;

    let id = app
        .start_wave(
            json!({"max_concurrency": 2, "max_per_host": 1, "batch_size": 100,
                           "canary": {"count": 0}}),
        )
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let seen = sampler.stop().await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    let (first_names, second_names): (Vec<String>, Vec<String>) = (
        first.iter().map(db_name).collect(),
        second.iter().map(db_name).collect(),
    );
    let until = seen
        .0
        .iter()
        .position(|(_, s)| second_names.iter().any(|n| s.contains(n)))
        .expect("the second host's tenants were seen migrating");
    let first_host_before: std::collections::BTreeSet<&String> = seen.0[..until]
        .iter()
        .flat_map(|(_, s)| s.iter().filter(|n| first_names.contains(n)))
        .collect();
    assert!(
        first_host_before.len() < 2,
        "the first host's tenants migrated before the second host started: {first_host_before:?}"
    );
}

fn accounts_migrations() -> MigrationsDir {
    MigrationsDir::new(&[
        ("V1__accounts.sql", "CREATE TABLE accounts (id int);"),
        (
            "V2__accounts_note.sql",
            "ALTER TABLE accounts ADD COLUMN note text;",
        ),
    ])
}

async fn attempts(api: &crate::helpers::ApiClient, id: &str) -> i64 {
    targets(api, id)
        .await
        .values()
        .map(|t| t["attempts"].as_i64().unwrap())
        .sum()
}

// Pins: a claim that caps a host at `max_per_host` but not at its lowered adaptive limit
// (tried by hand: three at once under a limit of 1), or keeps the limit in one replica's
// memory. Every tenant's table is locked, so each
// attempt times out, the host's limit falls to 1 and stays there (no clean finish raises
// it); once the attempts claimed before the fall are over, no two tenants of the host run
// at once however many are due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_limit_congestion_lowered_to_one_never_runs_two_tenants_at_once() {
    let (migrations, secrets) = (accounts_migrations(), SecretsDir::new());
    let (a, b) = two_replicas(
        &migrations,
        &secrets,
        "4",
        &[("DROVER_RETRY_BACKOFF", "20ms")],
    )
    .await;
    let (host, _) = server_host_port();
    let tenants = register_many(&a, &secrets, "al", 6, &host).await;
    let first = a
        .start_wave(json!({"target_version": 1, "max_concurrency": 6}))
        .await;
    assert_eq!(
        b.wait_for_wave_state(&first, WAVE_DONE).await["state"],
        "completed"
    );
    let mut holders = Vec::new();
    for t in &tenants {
        let c = connect(&t.url).await;
        // Held until the client is dropped (its connection closes, the transaction ends).
        c.batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        holders.push(c);
    }
    let sampler = LockSampler::start(&tenants).await;

    let id = a
        .start_wave(
            json!({"max_concurrency": 4, "max_per_host": 4, "batch_size": 100,
            "lock_timeout_ms": 60, "max_attempts": 100, "max_failures": 100,
            "lock_retries": {"attempts": 1, "first_lock_timeout_ms": 20, "first_pause_ms": 0}}),
        )
        .await;
    // Claims made while the limit was higher may still be starting; once at most one
    // target runs under a limit of 1, every later claim waits for it to be recorded.
    wait_for_wave(&a, &id, "lowered the host's limit to 1", |w: &Value| {
        w["hosts"][0]["limit"] == 1 && w["counts"]["running"].as_i64() <= Some(1)
    })
    .await;
    let from = Instant::now();
    let attempts_then = attempts(&a, &id).await;
    let busy = wait_until(Duration::from_secs(60), || async {
        attempts(&a, &id).await >= attempts_then + 12
    })
    .await;
    let limit_now = a.get_wave(&id).await["hosts"][0]["limit"].clone();
    // Once the tables are free the tenants succeed and the limit rightly grows again.
    let seen = sampler.stop().await;
    drop(holders);
    let wave = b.wait_for_wave_state(&id, WAVE_DONE).await;

    assert!(busy, "too few attempts while the limit was low");
    assert_eq!(
        limit_now, 1,
        "the limit stayed at 1 while every attempt failed"
    );
    assert_eq!(
        seen.peak_since(&tenants, from),
        1,
        "tenants of the host migrating at once under a limit of 1"
    );
    assert_eq!(wave["state"], "completed", "{wave:#}");
}

// Pins: a replica that opens its next tenant's connection only once a slot frees (no
// connect ahead: one slot then never holds two tenant locks), or one that connects ahead
// past the wave's cap (three at once). One slot, max_concurrency 2: while the slot runs a
// tenant, the next one is claimed, connected and locked, and never a third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_slot_connects_its_next_tenant_ahead_within_max_concurrency() {
    let (migrations, secrets) = (
        MigrationsDir::owned(&counted_migrations(0.3)),
        SecretsDir::new(),
    );
    let app = replica(
        None,
        "ahead",
        &migrations,
        &secrets,
        &[("DROVER_WORKER_SLOTS", "1")],
    )
    .await;
    let (host, _) = server_host_port();
    let tenants = register_many(&app, &secrets, "ah", 5, &host).await;
    let sampler = LockSampler::start(&tenants).await;

    let id = app
        .start_wave(json!({"max_concurrency": 2, "max_per_host": 10, "batch_size": 100}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let seen = sampler.stop().await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(
        seen.peak(&tenants),
        2,
        "tenant locks held at once by one slot with max_concurrency 2"
    );
}
