//! Access control (docs/design.md#access-model): the route → role table, named tokens (shown
//! once, stored as hashes, revoked everywhere within 2 s, expiring), actors that come from the
//! token, and secret references that cannot reach drover's own secrets.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use drover::access::ROUTE_ROLES;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    db_url, drover_cmd, fresh_control_database, spawn_app, tenant_body, wait_until, SecretsDir,
    TestApp, ADMIN_TOKEN,
};

const RESOLVER_TOKEN: &str = "test-resolver-token-0123456789abcdef";

/// Path parameters that name nothing on a fresh daemon, so no request changes anything.
fn sample_path(route: &str) -> String {
    route
        .replace("{slug}", "acme")
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "nobody")
}

#[test]
fn every_route_of_the_router_is_in_the_access_table_and_nothing_else() {
    // The document lists exactly the router's routes (both come from one `routes!` list).
    let served = crate::openapi::documented_routes();
    let table: BTreeSet<(String, String)> = ROUTE_ROLES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();

    assert_eq!(table.len(), ROUTE_ROLES.len(), "ROUTE_ROLES has duplicates");
    assert_eq!(
        served,
        table,
        "the router (its document) vs access::ROUTE_ROLES:\n only routed: {:?}\n only in the table: {:?}",
        served.difference(&table).collect::<Vec<_>>(),
        table.difference(&served).collect::<Vec<_>>(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_exactly_the_routes_the_table_grants_it_and_gets_403_naming_the_role_elsewhere(
) {
    let app = TestApp::builder()
        .env("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN)
        .spawn()
        .await;
    let mut callers: Vec<(String, &str)> = Vec::new();
    for role in ["viewer", "resolver", "operator", "admin", "publisher"] {
        callers.push((app.issue_token(&format!("as-{role}"), role).await, role));
    }
    callers.push((ADMIN_TOKEN.to_string(), "admin"));
    callers.push((RESOLVER_TOKEN.to_string(), "resolver"));

    let mut checked = 0;
    for (method, route, needed) in ROUTE_ROLES {
        let needed = needed.roles();
        if needed.is_empty() {
            continue;
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        for (token, role) in &callers {
            let mut req = app.req_as(token, m.clone(), &sample_path(route));
            if matches!(*method, "POST" | "PUT" | "PATCH") {
                req = req.json(&json!({}));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            // An event stream that was let in never ends: its status is the answer.
            let body: Value = if status.is_success() && route.ends_with("/stream") {
                Value::Null
            } else {
                resp.json().await.unwrap_or(Value::Null)
            };
            let role: drover::access::Role = role.parse().unwrap();

            if needed.iter().any(|n| role.grants(*n)) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role} on {method} {route}: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} on {method} {route}");
                assert_eq!(body["error"]["code"], "forbidden");
                assert_eq!(body["error"]["required_role"], needed[0].as_str());
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(needed[0].as_str()),
                    "{body}"
                );
            }
            checked += 1;
        }
    }

    assert!(checked > 150, "only {checked} requests checked");
    assert_eq!(app.tenant_rows("true").await, 0, "nothing was changed");
    assert!(
        app.metric("drover_auth_failures_total{reason=\"forbidden\"}")
            .await
            > 0.0
    );
}

#[tokio::test]
async fn a_token_is_shown_once_stored_only_as_a_hash_and_records_its_last_use() {
    let app = spawn_app().await;

    let created = app.create_token("grafana", "viewer", Some("90d")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let duplicate = app.create_token("grafana", "admin", None).await;
    let read = app.with_token(&token).get("/v1/tenants").await;
    let listed = app.list_tokens_text().await;
    let stored: String = app
        .control_db()
        .await
        .query_one(
            "SELECT row_to_json(t)::text AS row FROM control_plane.access_tokens t",
            &[],
        )
        .await
        .unwrap()
        .get("row");

    assert_eq!(body["name"], "grafana");
    assert_eq!(body["role"], "viewer");
    assert!(token.starts_with("drv_") && token.len() > 60, "{token}");
    assert!(body["expires_at"].is_string());
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(read.status(), StatusCode::OK);
    assert!(!listed.contains(&token), "the list never shows the token");
    assert!(!listed.contains(&token[4..]), "nor its random part");
    assert!(
        !stored.contains(&token[4..]),
        "the control DB holds only a hash"
    );
    let list: Value = serde_json::from_str(&listed).unwrap();
    let item = &list["items"][0];
    assert_eq!(item["name"], "grafana");
    assert_eq!(item["created_by"], "root");
    assert!(item["last_used_at"].is_string(), "{item}");
    assert!(item.get("token").is_none() && item.get("token_hash").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_is_refused_on_another_within_two_seconds() {
    let control = fresh_control_database().await;
    let a = TestApp::builder().control_db(&control).spawn().await;
    let b = TestApp::builder().control_db(&control).spawn().await;
    let token = a.issue_token("ci", "operator").await;
    let on_b = |t: String| {
        let b = &b;
        async move { b.with_token(&t).get("/v1/waves").await.status() }
    };
    assert_eq!(on_b(token.clone()).await, StatusCode::OK, "b knows it");

    let revoked = a.revoke_token("ci").await;
    let at = Instant::now();
    let refused_on_b = wait_until(Duration::from_secs(5), || {
        let t = token.clone();
        let on_b = &on_b;
        async move { on_b(t).await == StatusCode::UNAUTHORIZED }
    })
    .await;
    let took = at.elapsed();

    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(refused_on_b, "replica b still accepts a revoked token");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let on_a = a.with_token(&token).get("/v1/waves").await;
    assert_eq!(
        on_a.status(),
        StatusCode::UNAUTHORIZED,
        "the revoking replica refuses at once"
    );
    assert_eq!(a.revoke_token("ci").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_token_is_refused_with_a_message_saying_so() {
    let app = spawn_app().await;
    let short = app.create_token("short", "viewer", Some("1s")).await;
    let short: Value = short.json().await.unwrap();
    let long = app.issue_token("long", "viewer").await;
    assert_eq!(
        app.with_token(&long).get("/v1/fleet").await.status(),
        StatusCode::OK
    );

    // One expires by itself; the other is made to expire in the control DB while this
    // replica has it cached.
    app.control_db()
        .await
        .execute(
            "UPDATE control_plane.access_tokens SET expires_at = now() - interval '1 second' WHERE name = 'long'",
            &[],
        )
        .await
        .unwrap();
    let status = |t: String| {
        let app = &app;
        async move {
            let r = app.with_token(&t).get("/v1/fleet").await;
            (r.status(), r.text().await.unwrap())
        }
    };
    let both_refused = wait_until(Duration::from_secs(5), || async {
        status(short["token"].as_str().unwrap().to_string()).await.0 == StatusCode::UNAUTHORIZED
            && status(long.clone()).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;

    assert!(both_refused, "an expired token is still accepted");
    let (_, text) = status(long.clone()).await;
    assert!(text.contains("expired"), "{text}");
    assert!(!text.contains(&long), "the token is never echoed");
    assert!(
        app.metric("drover_auth_failures_total{reason=\"expired\"}")
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn the_actor_is_the_tokens_name_and_x_drover_actor_only_lands_as_on_behalf_of() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;
    let ops = app.issue_token("ops", "operator").await;

    let suspended = app
        .req_as(&ops, Method::POST, "/v1/tenants/acme/suspend")
        .header("X-Drover-Actor", "ceo@victim.example")
        .json(&json!({"reason": "unpaid"}))
        .send()
        .await
        .unwrap();
    let events: Value = app.get_json("/v1/tenants/acme/events").await;

    assert_eq!(suspended.status(), StatusCode::OK);
    let newest = &events["items"][0];
    assert_eq!(newest["event_type"], "suspended");
    assert_eq!(newest["actor"], "token:ops");
    assert_eq!(newest["payload"]["on_behalf_of"], "ceo@victim.example");
    let created = &events["items"][1];
    assert_eq!(created["actor"], "root");
    assert!(created["payload"].get("on_behalf_of").is_none());
}

/// References no tenant may use, whatever the request: drover's own variables, the host's,
/// Vault paths outside the allowed prefix, escapes and encodings.
const HOSTILE_REFS: &[&str] = &[
    "env:DROVER_ADMIN_TOKEN",
    "env:DROVER_RESOLVER_TOKEN",
    "env:DROVER_DATABASE_URL",
    "env:DROVER_VAULT_TOKEN",
    "env:DROVER_PROVISION_URL",
    "env:PATH",
    "env:HOME",
    "env:AWS_SECRET_ACCESS_KEY",
    "env:GOOGLE_APPLICATION_CREDENTIALS",
    "env:tenant_lower_case",
    "vault:secret/drover#admin_token",
    "vault:sys/tenants/acme#password",
    "vault:secret/tenantsx/acme#password",
    "vault:secret/tenants#password",
    "vault:secret/tenants/../drover#token",
    "file:../etc/passwd",
    "file:/etc/passwd",
    "file:tenants/%2e%2e/x",
    "file:tenants/..%2fx",
    "file:admin-token",
];

#[tokio::test]
async fn hostile_secret_refs_are_422_naming_the_rule_on_every_write_path_and_nothing_is_written() {
    let secrets = SecretsDir::new();
    secrets.put("admin-token", ADMIN_TOKEN);
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_ADMIN_TOKEN_REF", "file:admin-token"),
            ("DROVER_PROVISION_URL", &db_url("postgres")),
        ])
        .spawn()
        .await;
    app.create_tenant(&tenant_body("good")).await;
    let (tenants_before, events_before) = (app.tenant_rows("true").await, app.event_rows().await);

    for bad in HOSTILE_REFS {
        let mut body = tenant_body("evil");
        body["db_secret_ref"] = json!(bad);
        let mut provisioned = body.clone();
        provisioned["provision"] = json!(true);
        provisioned.as_object_mut().unwrap().remove("status");
        let definition = json!({
            "apiVersion": "drover.dev/v1", "kind": "Tenant",
            "metadata": { "name": "evil", "displayName": "Evil Inc." },
            "spec": {
                "database": { "host": "db1", "port": 5432, "name": "t_evil", "user": "u_evil", "secretRef": bad },
                "status": "active",
            },
        });
        let answers = [
            ("POST", app.create_tenant(&body).await),
            ("POST provision", app.create_tenant(&provisioned).await),
            (
                "PUT",
                app.req(Method::PUT, "/v1/tenants/evil")
                    .json(&definition)
                    .send()
                    .await
                    .unwrap(),
            ),
            (
                "PATCH",
                app.patch_tenant("good", &json!({ "db_secret_ref": bad }))
                    .await,
            ),
        ];
        for (what, resp) in answers {
            assert_eq!(
                resp.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{what} {bad}"
            );
            let err: Value = resp.json().await.unwrap();
            let message = err["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("db_secret_ref") || message.contains("secretRef"),
                "{what} {bad}: {message}"
            );
            if bad.starts_with("env:") {
                assert!(message.contains("TENANT_"), "{what} {bad}: {message}");
            }
            if bad.starts_with("vault:secret/tenantsx") {
                assert!(message.contains("vault_allowed_prefixes"), "{message}");
            }
        }
    }

    assert_eq!(app.tenant_rows("true").await, tenants_before);
    assert_eq!(app.event_rows().await, events_before);
    let good: Value = app.get_tenant("good").await.json().await.unwrap();
    assert_eq!(good["db_secret_ref"], "file:tenants/good");
}

#[tokio::test]
async fn drover_apply_with_a_hostile_ref_fails_and_registers_nothing() {
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("drover-test-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("evil.yaml"),
        "apiVersion: drover.dev/v1\nkind: Tenant\nmetadata:\n  name: evil\n  displayName: Evil\nspec:\n  database:\n    \
         host: db1\n    port: 5432\n    name: t_evil\n    user: u_evil\n    secretRef: env:DROVER_ADMIN_TOKEN\n",
    )
    .unwrap();
    let mut cmd = drover_cmd();
    cmd.env("DROVER_SERVER", app.base())
        .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["apply", "-f", dir.to_str().unwrap()]);

    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("TENANT_"), "{stderr}");
    assert!(!stderr.contains(ADMIN_TOKEN));
    assert_eq!(app.tenant_rows("true").await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_ref_planted_in_the_control_db_is_refused_at_resolve_time_and_counted() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", "pw");
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    app.create_tenant(&tenant_body("acme")).await;
    app.control_db()
        .await
        .execute(
            "UPDATE control_plane.tenants SET db_secret_ref = 'env:DROVER_ADMIN_TOKEN' WHERE slug = 'acme'",
            &[],
        )
        .await
        .unwrap();
    let before = app
        .metric("drover_secret_refs_refused_total{scheme=\"env\"}")
        .await;

    let resp = app.get("/v1/resolve/acme").await;

    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
    assert!(text.contains("secret_ref_refused"), "{text}");
    assert!(text.contains("TENANT_"), "the rule is named: {text}");
    assert!(!text.contains(ADMIN_TOKEN), "never resolved: {text}");
    let after = app
        .metric("drover_secret_refs_refused_total{scheme=\"env\"}")
        .await;
    assert_eq!(after, before + 1.0);
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens_and_uses_a_named_one_from_drover_token() {
    let app = spawn_app().await;
    let run = |app: &TestApp, token: &str, args: &[&str]| {
        let mut cmd = drover_cmd();
        cmd.env("DROVER_SERVER", app.base())
            .env("DROVER_ADMIN_TOKEN", token)
            .args(args);
        cmd
    };
    let out = |mut cmd: std::process::Command| async move {
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };

    let created = out(run(
        &app,
        ADMIN_TOKEN,
        &["tokens", "create", "dash", "--role", "viewer"],
    ))
    .await;
    let token = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let mut as_viewer = drover_cmd();
    as_viewer
        .env("DROVER_SERVER", app.base())
        .env("DROVER_TOKEN", &token)
        .args(["tenants", "list"]);
    let listed_tenants = out(as_viewer).await;
    let listed = out(run(&app, ADMIN_TOKEN, &["tokens", "list"])).await;
    let revoked = out(run(&app, ADMIN_TOKEN, &["tokens", "revoke", "dash"])).await;

    assert!(created.status.success(), "{created:?}");
    assert!(token.starts_with("drv_"), "{token}");
    assert!(String::from_utf8_lossy(&created.stderr).contains("not shown again"));
    assert!(listed_tenants.status.success(), "{listed_tenants:?}");
    let list = String::from_utf8_lossy(&listed.stdout);
    assert!(list.contains("dash") && list.contains("viewer"), "{list}");
    assert!(!list.contains(&token));
    assert!(revoked.status.success(), "{revoked:?}");
    assert!(app.list_tokens_text().await.contains("\"items\":[]"));
}
