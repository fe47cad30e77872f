//! Who may call what, written down a second time from the README's role table ("Access
//! control") rather than read from the table the router uses (`access::ROUTE_ROLES`): a
//! test that takes its expected answers from the code under test agrees with any change to
//! it. Here a route whose role changed (an operator minting tokens, a publisher starting
//! waves) disagrees with this file and fails.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_TOKEN};

const RESOLVER_TOKEN: &str = "pins-resolver-token-0123456789abcdef";

const ROLES: [&str; 5] = ["viewer", "resolver", "operator", "admin", "publisher"];

/// Every route that changes something, with the roles the README's table lets call it:
/// operators start and steer waves and schedules, start schema drift scans and
/// suspend/resume tenants; admins do
/// everything; publishers push migration sets and nothing else; viewers and resolvers
/// change nothing.
const WRITES: &[(&str, &str, &[&str])] = &[
    ("POST", "/v1/tenants", &["admin"]),
    ("PUT", "/v1/tenants/{slug}", &["admin"]),
    ("PATCH", "/v1/tenants/{slug}", &["admin"]),
    ("DELETE", "/v1/tenants/{slug}", &["admin"]),
    ("POST", "/v1/tenants/{slug}/suspend", &["operator", "admin"]),
    ("POST", "/v1/tenants/{slug}/resume", &["operator", "admin"]),
    ("POST", "/v1/tenants/{slug}/provision", &["admin"]),
    ("POST", "/v1/tenants/{slug}/rename", &["admin"]),
    // The README: the callback token only; no role's API token.
    ("POST", "/v1/tenants/{slug}/provisioning", &[]),
    ("PUT", "/v1/tenants/{slug}/limits", &["admin"]),
    ("POST", "/v1/waves", &["operator", "admin"]),
    ("POST", "/v1/waves/{id}/pause", &["operator", "admin"]),
    ("POST", "/v1/waves/{id}/resume", &["operator", "admin"]),
    ("POST", "/v1/waves/{id}/abort", &["operator", "admin"]),
    ("POST", "/v1/waves/{id}/promote", &["operator", "admin"]),
    ("POST", "/v1/schedules", &["operator", "admin"]),
    ("PATCH", "/v1/schedules/{name}", &["operator", "admin"]),
    ("DELETE", "/v1/schedules/{name}", &["operator", "admin"]),
    (
        "POST",
        "/v1/schedules/{name}/trigger",
        &["operator", "admin"],
    ),
    ("POST", "/v1/drift/scans", &["operator", "admin"]),
    ("POST", "/v1/migration-sets", &["publisher", "admin"]),
    ("DELETE", "/v1/migration-sets/{id}", &["admin"]),
    ("POST", "/v1/tokens", &["admin"]),
    ("DELETE", "/v1/tokens/{name}", &["admin"]),
    ("POST", "/v1/webhooks", &["admin"]),
    ("DELETE", "/v1/webhooks/{name}", &["admin"]),
    ("POST", "/v1/webhooks/{name}/test", &["admin"]),
];

/// Routes that take no API token at all (an external provisioner's callback token): every
/// role is refused there with 401, not 403.
const CALLBACK_ONLY: &[&str] = &["/v1/tenants/{slug}/provisioning"];

/// Who may read `path`, by the README's rule: viewers (and so operators and admins) read
/// every `GET` under `/v1` but resolution; resolution is the resolver's (and admin's);
/// publishers read migration sets and nothing else.
fn readers(path: &str) -> &'static [&'static str] {
    if path.starts_with("/v1/resolve/") {
        &["resolver", "admin"]
    } else if path.starts_with("/v1/migration-sets") {
        &["viewer", "operator", "admin", "publisher"]
    } else {
        &["viewer", "operator", "admin"]
    }
}

/// Path parameters that name nothing on a fresh daemon, so an allowed call changes nothing.
fn sample_path(route: &str) -> String {
    route
        .replace("{slug}", "acme")
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "nobody")
}

/// The routes the router serves under `/v1` (from its generated document).
fn served_v1() -> BTreeSet<(String, String)> {
    crate::openapi::documented_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/"))
        .collect()
}

// Pins: a route that changes state added to the router without a decision here (the
// matrix below would silently not cover it).
#[test]
fn every_route_that_changes_state_has_a_row_in_the_readme_role_matrix() {
    let writes: BTreeSet<(String, String)> = served_v1()
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .collect();
    let matrix: BTreeSet<(String, String)> = WRITES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();

    assert_eq!(
        writes,
        matrix,
        "routed but not in the matrix: {:?}; in the matrix but not routed: {:?}",
        writes.difference(&matrix).collect::<Vec<_>>(),
        matrix.difference(&writes).collect::<Vec<_>>()
    );
}

// Pins: any change of who may call a route, e.g. `POST /v1/tokens` needing operator
// instead of admin (tried by hand: an operator then gets 422 instead of 403 and this
// fails), a publisher allowed to start waves, a viewer allowed to resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_call_exactly_the_routes_the_readme_role_table_grants_it() {
    let app = TestApp::builder()
        .env("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN)
        .spawn()
        .await;
    let mut callers: Vec<(String, &str)> = Vec::new();
    for role in ROLES {
        callers.push((app.issue_token(&format!("pin-{role}"), role).await, role));
    }
    callers.push((ADMIN_TOKEN.to_string(), "admin"));
    callers.push((RESOLVER_TOKEN.to_string(), "resolver"));
    let mut matrix: Vec<(String, String, &[&str])> = WRITES
        .iter()
        .map(|(m, p, who)| (m.to_string(), p.to_string(), *who))
        .collect();
    for (m, p) in served_v1().into_iter().filter(|(m, _)| m == "GET") {
        let who = readers(&p);
        matrix.push((m, p, who));
    }

    let mut wrong = Vec::new();
    for (method, route, allowed) in &matrix {
        for (token, role) in &callers {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let mut req = app.req_as(token, m, &sample_path(route));
            if method != "GET" && method != "DELETE" {
                req = req.json(&json!({}));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            // An event stream that let the caller in never ends: its status is the answer.
            let body: Value = if status.is_success() && route.ends_with("/stream") {
                Value::Null
            } else {
                resp.json().await.unwrap_or(Value::Null)
            };
            let may = allowed.contains(role);
            let refused = if CALLBACK_ONLY.contains(&route.as_str()) {
                status == StatusCode::UNAUTHORIZED && body["error"]["code"] == "unauthorized"
            } else {
                status == StatusCode::FORBIDDEN && body["error"]["code"] == "forbidden"
            };
            let let_in = status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED;
            if (may && !let_in) || (!may && !refused) {
                wrong.push(format!("{role} {method} {route}: {status} {body}"));
            }
        }
    }

    assert!(
        wrong.is_empty(),
        "differs from the README:\n{}",
        wrong.join("\n")
    );
    assert!(matrix.len() > 40, "only {} routes checked", matrix.len());
    assert_eq!(app.tenant_rows("true").await, 0, "nothing was created");
    let tokens: Value = app.get_json("/v1/tokens").await;
    assert_eq!(tokens["items"].as_array().unwrap().len(), ROLES.len());
    let waves: Vec<Value> = app.get_json("/v1/waves").await;
    assert!(waves.is_empty(), "{waves:?}");
}
