//! Bad input on every documented operation that takes a body: a body of the wrong type, an
//! unknown field and a body over the limit each get a clear 4xx naming the problem, and
//! nothing is written to the control DB. The operations come from `/openapi.json`, so a
//! new route with a body is covered without an edit here.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_TOKEN};
use crate::openapi::{document, operations, sample_path};

/// Rows per control table, counted in one statement (table names come from the catalog).
/// The replica's own liveness rows (`replicas`, `leader`) are left out: its background
/// tasks write them a moment after the port answers, whatever the requests do.
async fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    app.control_db()
        .await
        .query(
            "SELECT table_name::text AS name, \
                    (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', \
                        table_schema, table_name), false, true, '')))[1]::text::bigint AS n \
             FROM information_schema.tables \
             WHERE table_schema = 'control_plane' AND table_type = 'BASE TABLE' \
               AND table_name NOT IN ('replicas', 'leader')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("name"), r.get("n")))
        .collect()
}

async fn send(app: &TestApp, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let resp = app
        .http
        .request(method, format!("{}{path}", app.base()))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_with_a_body_refuses_a_wrong_type_an_unknown_field_and_a_huge_body_writing_nothing(
) {
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MAX_BODY_BYTES", "4096"),
            ("DROVER_MAX_SET_BYTES", "8192"),
        ])
        .spawn()
        .await;
    let with_body: Vec<(String, String)> = operations(&document())
        .into_iter()
        .filter(|(_, _, op)| !op["requestBody"].is_null())
        // The provisioning callback takes only a single-use token drover sent to an
        // external provisioner; without it every body is 401 before it is read (the
        // access matrix pins that), and its bodies are tried in `external::`.
        .filter(|(_, _, op)| !op["security"].to_string().contains("callbackToken"))
        .map(|(m, p, _)| (m, p))
        .collect();
    assert!(with_body.len() >= 11, "{with_body:?}");
    let before = row_counts(&app).await;

    let mut wrong = Vec::new();
    for (method, template) in &with_body {
        let path = sample_path(template);
        let limit = if template.starts_with("/v1/migration-sets") {
            8192
        } else {
            4096
        };

        let (status, body) = send(&app, method, &path, br#""a string""#.to_vec()).await;
        if !(status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST)
            || !body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("invalid type"))
        {
            wrong.push(format!("{method} {template} wrong type: {status} {body}"));
        }

        let unknown = serde_json::to_vec(&json!({"zz_not_a_field": 1})).unwrap();
        let (status, body) = send(&app, method, &path, unknown).await;
        if !status.is_client_error()
            || !body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("zz_not_a_field"))
        {
            wrong.push(format!(
                "{method} {template} unknown field: {status} {body}"
            ));
        }

        let huge = format!(r#"{{"x": "{}"}}"#, "a".repeat(limit + 1)).into_bytes();
        let (status, body) = send(&app, method, &path, huge).await;
        if status != StatusCode::PAYLOAD_TOO_LARGE
            || !body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("max_body_bytes"))
        {
            wrong.push(format!("{method} {template} huge body: {status} {body}"));
        }
    }

    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        row_counts(&app).await,
        before,
        "a refused request wrote something"
    );
}
