//! The wave timeline (docs/design.md#wave-timeline): one event per state change, with its
//! actor, through `GET /v1/waves/{id}/events` and `drover waves show`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    counted_migrations_dir, drover_cmd, wait_until, wave_app, SecretsDir, ADMIN_TOKEN, WAVE_DONE,
};

fn types(timeline: &[(String, String, Value)]) -> Vec<&str> {
    timeline.iter().map(|(t, _, _)| t.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_wave_tells_canary_soak_batches_and_completion_in_order() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "tl", 7, 2).await;

    let id = app
        .start_wave(json!({"batch_size": 2, "soak_seconds": 0}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let timeline = app.wave_events(&id).await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(
        types(&timeline),
        [
            "created",
            "canary_started",
            "canary_passed",
            "soak_started",
            "soak_passed",
            "batch_started",
            "batch_started",
            "batch_started",
            "completed"
        ]
    );
    let batches: Vec<&Value> = timeline
        .iter()
        .filter(|(t, _, _)| t == "batch_started")
        .map(|(_, _, p)| &p["batch"])
        .collect();
    assert_eq!(batches, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(timeline[0].1, wave["created_by"].as_str().unwrap());
    assert_eq!(timeline[0].2["tenants"], 7);
    assert!(
        timeline[1..].iter().all(|(_, actor, _)| actor == "drover"),
        "the engine moved every step: {timeline:?}"
    );

    let (server, wave_id) = (app.base(), id.clone());
    let shown = tokio::task::spawn_blocking(move || {
        drover_cmd()
            .env("DROVER_SERVER", server)
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["waves", "show", &wave_id])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{stdout}");
    let timeline_at = stdout.find("timeline").expect("a timeline section");
    let lines: Vec<&str> = stdout[timeline_at..].lines().skip(1).collect();
    assert_eq!(lines.len(), 9, "{stdout}");
    assert!(
        lines[5].contains("batch_started") && lines[5].contains("batch=1"),
        "{stdout}"
    );
    assert!(
        lines[8].contains("completed") && lines[8].contains("drover"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_wave_records_why_who_resumed_it_and_who_aborted_it() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "th", 4, 1).await;
    crate::helpers::plant_widgets_clash(&tenants[0].url).await;
    let id = app
        .start_wave(json!({"batch_size": 3, "soak_seconds": 0}))
        .await;
    app.wait_for_wave_state(&id, &["halted"]).await;

    let resumed = app.wave_action(&id, "resume", "alice").await;
    assert_eq!(resumed["state"], "canary", "{resumed:#}");
    app.wait_for_wave_state(&id, &["halted"]).await;
    let aborted = app.wave_action(&id, "abort", "bob").await;
    let timeline = app.wave_events(&id).await;

    assert_eq!(aborted["state"], "aborted");
    assert_eq!(
        types(&timeline),
        [
            "created",
            "canary_started",
            "halted",
            "resumed",
            "halted",
            "aborted"
        ]
    );
    let reason = timeline[2].2["reason"].as_str().unwrap();
    assert!(
        reason.contains("th-000") && reason.contains("42P07"),
        "{reason}"
    );
    assert_eq!(
        timeline[3].2,
        json!({"from": "halted", "to": "canary", "on_behalf_of": "alice"})
    );
    assert_eq!(
        timeline[3].1, "root",
        "the token's identity, never the header"
    );
    assert_eq!(timeline[5].1, "root");
    assert_eq!(timeline[5].2["on_behalf_of"], "bob");
    assert_eq!(timeline[4].1, "drover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_soak_starts_over_on_resume_and_a_promote_rolls_the_batches() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "tp", 4, 1).await;
    let id = app
        .start_wave(json!({"batch_size": 3, "soak_seconds": 3600}))
        .await;
    app.wait_for_wave_state(&id, &["soaking"]).await;

    let paused = app.wave_action(&id, "pause", "alice").await;
    let resumed = app.wave_action(&id, "resume", "alice").await;
    // Resuming clears the soak timer; the engine's next step starts it over (its own
    // `soak_started` event), so promote only once the timer runs again.
    let soak_restarted = wait_until(Duration::from_secs(30), || async {
        app.get_wave(&id).await["soak_until"].is_string()
    })
    .await;
    app.wave_action(&id, "promote", "bob").await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let timeline = app.wave_events(&id).await;

    assert_eq!(paused["state"], "paused");
    assert_eq!(resumed["state"], "soaking");
    assert!(soak_restarted, "the soak runs again");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(
        types(&timeline),
        [
            "created",
            "canary_started",
            "canary_passed",
            "soak_started",
            "paused",
            "resumed",
            "soak_started",
            "promoted",
            "batch_started",
            "completed"
        ]
    );
    assert_eq!(
        timeline[4].2,
        json!({"from": "soaking", "on_behalf_of": "alice"})
    );
    assert_eq!(
        timeline[5].2,
        json!({"from": "paused", "to": "soaking", "on_behalf_of": "alice"})
    );
    assert_eq!(timeline[7].2["on_behalf_of"], "bob", "{timeline:?}");
    assert_eq!(timeline[6].1, "drover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_of_an_unknown_wave_is_404() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;

    let resp = app
        .get("/v1/waves/00000000-0000-0000-0000-000000000000/events")
        .await;

    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
}
