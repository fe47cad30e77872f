//! `GET /openapi.json`: the document lists exactly what the router serves, is structurally
//! valid OpenAPI 3.0, matches real responses, and survives schemathesis.
//!
//! The schemathesis run needs python3 with venv (`.ci/schemathesis` installs the pinned
//! version into `target/tools/schemathesis` on first use). Without it the test prints a
//! loud "skipping" line and passes, unless `DROVER_REQUIRE_SCHEMATHESIS=1` (CI), which makes
//! that a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use drover::http::openapi::{spec, PUBLIC_PATHS, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, tenant_body, wait_until, SecretsDir, TestApp, ADMIN_TOKEN};

/// Sample values for path parameters.
fn sample_path(path: &str) -> String {
    path.replace("{slug}", "acme")
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "nightly")
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The (method, path) pairs `src/http/mod.rs` registers, read from its source: every
/// `.route("PATH", get(..).post(..))`, prefixed with the `.nest("PREFIX", ..)` of the
/// `let NAME = Router::new()` it belongs to. (axum does not expose its route table.)
pub(crate) fn routes_in_router_source() -> BTreeSet<(String, String)> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs");
    let src: String = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("read {file}: {e}"))
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");

    // `.nest("/v1", admin.merge(resolver))` → {admin: "/v1", resolver: "/v1"}.
    let mut prefix_of: BTreeMap<String, String> = BTreeMap::new();
    for (_, rest) in calls(&src, ".nest(") {
        let prefix = &rest[..rest.find('"').expect("closing quote of the nest prefix")];
        let args = balanced(&rest[prefix.len()..]);
        for word in args.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !word.is_empty() {
                prefix_of.insert(word.to_string(), prefix.to_string());
            }
        }
    }

    let mut routes = BTreeSet::new();
    for (at, rest) in calls(&src, ".route(") {
        let path = &rest[..rest.find('"').expect("closing quote of the route path")];
        let args = balanced(&rest[path.len()..]);
        // The router this route is added to: the nearest `Router::new()` before it, and the
        // `let NAME =` in front of that, if any.
        let before = &src[..at];
        let router_at = before
            .rfind("Router::new()")
            .expect("a route outside Router::new()");
        let binding = before[..router_at]
            .trim_end()
            .strip_suffix('=')
            .and_then(|s| {
                s.rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .find(|w| !w.is_empty())
            });
        let prefix = binding
            .and_then(|b| prefix_of.get(b).cloned())
            .unwrap_or_default();
        let mut methods = 0;
        for m in METHODS {
            let call = format!("{}(", m.to_ascii_lowercase());
            for (i, _) in args.match_indices(&call) {
                let prev = args[..i].chars().next_back();
                if prev.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                    routes.insert((m.to_string(), format!("{prefix}{path}")));
                    methods += 1;
                }
            }
        }
        assert!(methods > 0, "no method found for route {path}: {args}");
    }
    routes
}

/// Every `NAME("` in `src` (whitespace allowed before the quote): its offset and the text
/// after the quote.
fn calls<'a>(src: &'a str, name: &str) -> Vec<(usize, &'a str)> {
    src.match_indices(name)
        .filter_map(|(at, _)| {
            let rest = src[at + name.len()..].trim_start();
            rest.strip_prefix('"').map(|r| (at, r))
        })
        .collect()
}

/// The text of a parenthesised argument list starting at the first `(` or `,` of `s`, up to
/// its closing parenthesis.
fn balanced(s: &str) -> &str {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    s
}

/// Whether the router serves `GET /metrics`. The route comes with a parallel change; until
/// it is in `src/http/mod.rs`, its documentation may run ahead of the router (this one path
/// only, and only while the router's source lacks it). Drop this once `/metrics` has landed.
fn metrics_routed() -> bool {
    routes_in_router_source().contains(&("GET".to_string(), "/metrics".to_string()))
}

fn documented_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    let mut documented = documented_routes();
    assert_eq!(documented.len(), ROUTES.len(), "ROUTES has duplicates");

    // The router's source: a route added without documentation (or documentation of a
    // route that is gone) fails here.
    let served = routes_in_router_source();
    if !metrics_routed() {
        documented.remove(&("GET".to_string(), "/metrics".to_string()));
    }
    assert_eq!(
        served,
        documented,
        "src/http/mod.rs routes vs openapi::ROUTES:\n only in the router: {:?}\n only documented: {:?}",
        served.difference(&documented).collect::<Vec<_>>(),
        documented.difference(&served).collect::<Vec<_>>(),
    );

    // The live server, on a fresh daemon where the sample slug, wave and schedule do not
    // exist (so no request changes anything): with the admin token every documented
    // (method, path) reaches its handler (neither 405 nor the router's own 404, whose code
    // is `not_found`), and every other method on those paths is 405. Without a token the
    // protected paths answer 401 (axum's route_layer covers the whole path, wrong methods
    // too, so that alone would not prove the method).
    let app = spawn_app().await;
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    for path in paths {
        if path == "/metrics" && !metrics_routed() {
            continue;
        }
        let url = format!("{}{}", app.base(), sample_path(path));
        for method in METHODS {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let resp = app
                .http
                .request(m.clone(), &url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            // The event stream's answer never ends: its status is the proof.
            let body: Value = if path.ends_with("/stream") && status.is_success() {
                Value::Null
            } else {
                resp.json().await.unwrap_or(Value::Null)
            };
            if documented.contains(&(method.to_string(), path.to_string())) {
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED
                        && body["error"]["code"] != "not_found",
                    "{method} {path} is documented but answers {status} {body}"
                );
                let anonymous = app.http.request(m, &url).send().await.unwrap().status();
                if PUBLIC_PATHS.contains(&path) {
                    assert_eq!(anonymous, status, "{method} {path} without a token");
                } else {
                    assert_eq!(
                        anonymous,
                        StatusCode::UNAUTHORIZED,
                        "{method} {path} without a token"
                    );
                }
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not documented but answers {status} {body}"
                );
            }
        }
    }

    // An undocumented path is the JSON 404 pointing at the document.
    for path in [
        "/v1/nope",
        "/v2/tenants",
        "/openapi.yaml",
        "/v1/tenants/acme/nope",
    ] {
        let resp = app.req(Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/openapi.json"));
    }
}

#[tokio::test]
async fn openapi_json_needs_no_token() {
    let app = spawn_app().await;

    let resp = app
        .http
        .get(format!("{}/openapi.json", app.base()))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let served: Value = resp.json().await.unwrap();
    assert_eq!(served, spec());
    // A wrong token does not matter either.
    let resp = app
        .http
        .get(format!("{}/openapi.json", app.base()))
        .bearer_auth("wrong-token-wrong-token-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

// -------------------------------------------------------------------------------------
// Structural validity.

/// Follows a local `$ref` (`#/components/...`).
fn resolve_ref<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// `v`, or what its `$ref` points at.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(
            doc,
            resolve_ref(doc, r).unwrap_or_else(|| panic!("dangling $ref {r}")),
        ),
        None => v,
    }
}

fn collect_refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((
                        at.to_string(),
                        x.as_str().unwrap_or("<not a string>").into(),
                    ));
                } else {
                    collect_refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Every schema object in the document (walking properties, items, allOf/oneOf/anyOf and
/// additionalProperties), with where it is.
fn walk_schemas<'a>(s: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((at.clone(), s));
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            walk_schemas(p, format!("{at}.{k}"), out);
        }
    }
    if let Some(items) = s.get("items") {
        walk_schemas(items, format!("{at}[]"), out);
    }
    if let Some(ap) = s.get("additionalProperties").filter(|v| v.is_object()) {
        walk_schemas(ap, format!("{at}{{*}}"), out);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for (i, sub) in s
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            walk_schemas(sub, format!("{at}/{key}/{i}"), out);
        }
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((method.to_ascii_uppercase(), path.clone(), op));
        }
    }
    ops
}

#[test]
fn the_document_is_valid_openapi_3() {
    let doc = spec();
    let mut problems: Vec<String> = Vec::new();

    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0."));
    assert_eq!(doc["info"]["title"], "drover");
    assert!(!doc["info"]["version"].as_str().unwrap().is_empty());

    // Every $ref resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, "", &mut refs);
    assert!(refs.len() > 50, "suspiciously few $refs: {}", refs.len());
    for (at, r) in &refs {
        if !r.starts_with("#/components/") || resolve_ref(&doc, r).is_none() {
            problems.push(format!("{at}: $ref {r} does not resolve"));
        }
    }

    // Every component schema is used.
    let used: BTreeSet<&str> = refs.iter().map(|(_, r)| r.as_str()).collect();
    for section in ["schemas", "parameters", "responses", "headers"] {
        for name in doc["components"][section].as_object().unwrap().keys() {
            let r = format!("#/components/{section}/{name}");
            if !used.contains(r.as_str()) {
                problems.push(format!("{r} is never used"));
            }
        }
    }

    // Paths and operations.
    let ops = operations(&doc);
    assert_eq!(ops.len(), ROUTES.len());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = BTreeSet::new();
    let mut params_of_op: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path, op) in &ops {
        let at = format!("{method} {path}");
        if !path.starts_with('/') {
            problems.push(format!("{at}: path does not start with /"));
        }
        if op.get("x-undocumented").is_some() {
            problems.push(format!(
                "{at}: no operation written for this route in openapi.rs"
            ));
            continue;
        }
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        if id.is_empty() || !ids.insert(id.clone()) {
            problems.push(format!("{at}: missing or duplicate operationId {id:?}"));
        }
        for tag in op["tags"].as_array().into_iter().flatten() {
            if !tags.contains(tag.as_str().unwrap_or_default()) {
                problems.push(format!("{at}: unknown tag {tag}"));
            }
        }
        if op["summary"].as_str().unwrap_or_default().is_empty() {
            problems.push(format!("{at}: no summary"));
        }

        // Path parameters: exactly the template's.
        let template: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .map(|s| s.split('}').next().unwrap().to_string())
            .collect();
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| deref(&doc, p))
            .collect();
        let declared: BTreeSet<String> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                if p["required"] != true {
                    problems.push(format!("{at}: path parameter {} not required", p["name"]));
                }
                p["name"].as_str().unwrap().to_string()
            })
            .collect();
        if template != declared {
            problems.push(format!(
                "{at}: path parameters {declared:?}, template has {template:?}"
            ));
        }
        let mut seen = BTreeSet::new();
        for p in &params {
            let key = format!("{}:{}", p["in"], p["name"]);
            if !seen.insert(key.clone()) {
                problems.push(format!("{at}: parameter {key} twice"));
            }
            if !["path", "query", "header"].contains(&p["in"].as_str().unwrap_or_default()) {
                problems.push(format!("{at}: parameter {key} in an unexpected place"));
            }
            if p.get("schema").is_none() {
                problems.push(format!("{at}: parameter {key} has no schema"));
            }
        }
        params_of_op.insert(
            id.clone(),
            params
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect(),
        );

        // Security: known schemes; public paths say so explicitly.
        let security = op.get("security").unwrap_or(&doc["security"]);
        for req in security.as_array().unwrap() {
            for name in req.as_object().unwrap().keys() {
                if !schemes.contains_key(name) {
                    problems.push(format!("{at}: unknown security scheme {name}"));
                }
            }
        }
        let public = security.as_array().unwrap().is_empty();
        if public != PUBLIC_PATHS.contains(&path.as_str()) {
            problems.push(format!("{at}: public is {public} in the document"));
        }
        if !public && op["responses"].get("401").is_none() {
            problems.push(format!("{at}: a protected operation without 401"));
        }

        // Responses: at least one success; every error status has the error schema.
        let responses = op["responses"].as_object().unwrap();
        if !responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{at}: no success response"));
        }
        for (status, r) in responses {
            let r = deref(&doc, r);
            if r["description"].as_str().unwrap_or_default().is_empty() {
                problems.push(format!("{at} {status}: no description"));
            }
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &r["content"]["application/json"]["schema"];
                let is_error = |s: &Value| s["$ref"] == "#/components/schemas/Error";
                let ok = is_error(schema)
                    || schema["oneOf"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(is_error))
                    || path == "/readyz";
                if !ok {
                    problems.push(format!("{at} {status}: not the error schema"));
                }
            }
            if status == "503" && path != "/readyz" && r["headers"].get("Retry-After").is_none() {
                problems.push(format!("{at} 503: no Retry-After header"));
            }
        }

        // Request bodies of deny_unknown_fields types are closed.
        if let Some(body) = op.get("requestBody") {
            let schema = deref(&doc, &body["content"]["application/json"]["schema"]);
            if schema["additionalProperties"] != false {
                problems.push(format!("{at}: request body schema is not closed"));
            }
        }
    }

    // Links name real operations and their parameters.
    for (method, path, op) in &ops {
        for (status, r) in op["responses"].as_object().unwrap() {
            for (name, link) in r["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap_or_default();
                match params_of_op.get(target) {
                    None => problems.push(format!(
                        "{method} {path} {status}: link {name} to unknown operation {target}"
                    )),
                    Some(params) => {
                        for p in link["parameters"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, _)| k)
                        {
                            if !params.contains(p) {
                                problems.push(format!(
                                    "{method} {path} {status}: link {name}: {target} has no parameter {p}"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    // Schemas: `required` names real properties, types are OpenAPI 3.0 types, formats fit.
    let mut all = Vec::new();
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        walk_schemas(s, name.clone(), &mut all);
    }
    for (_, _, op) in &ops {
        for r in op["responses"].as_object().unwrap().values() {
            for (mt, c) in r["content"].as_object().into_iter().flatten() {
                walk_schemas(
                    &c["schema"],
                    format!("{} {mt}", op["operationId"]),
                    &mut all,
                );
            }
        }
    }
    for (at, s) in all {
        if s.get("$ref").is_some() && s.as_object().unwrap().len() > 1 {
            problems.push(format!("{at}: $ref with siblings (ignored in OpenAPI 3.0)"));
        }
        if let Some(t) = s.get("type") {
            let t = t.as_str().unwrap_or("<not a string>");
            if !["object", "array", "string", "integer", "number", "boolean"].contains(&t) {
                problems.push(format!("{at}: type {t} is not an OpenAPI 3.0 type"));
            }
            if t == "array" && s.get("items").is_none() {
                problems.push(format!("{at}: array without items"));
            }
            match s.get("format").and_then(Value::as_str) {
                None => {}
                Some("int32" | "int64") if t == "integer" => {}
                Some("double") if t == "number" => {}
                Some("uuid" | "date-time") if t == "string" => {}
                Some(f) => problems.push(format!("{at}: format {f} on type {t}")),
            }
        }
        if let Some(e) = s.get("enum") {
            let nullable = s["nullable"] == true;
            for v in e.as_array().unwrap() {
                if v.is_null() && !nullable {
                    problems.push(format!("{at}: null in the enum of a non-nullable schema"));
                }
            }
            if nullable && !e.as_array().unwrap().contains(&Value::Null) {
                problems.push(format!("{at}: nullable enum without null"));
            }
        }
        if let Some(req) = s.get("required") {
            for r in req.as_array().unwrap() {
                if s["properties"].get(r.as_str().unwrap()).is_none() {
                    problems.push(format!("{at}: required {r} is not a property"));
                }
            }
        }
    }

    // Examples fit their schemas.
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        if let Some(example) = s.get("example") {
            validate(&doc, s, example, &format!("{name} example"), &mut problems);
        }
    }
    for (name, p) in doc["components"]["parameters"].as_object().unwrap() {
        if let Some(example) = p["schema"].get("example") {
            validate(
                &doc,
                &p["schema"],
                example,
                &format!("parameter {name} example"),
                &mut problems,
            );
        }
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// -------------------------------------------------------------------------------------
// Real responses against the document.

/// Validates `v` against an OpenAPI 3.0 schema (the subset the document uses). In strict
/// mode, properties the schema does not list are errors too: the published document lets
/// clients ignore unknown fields, but drover's own answers must be fully documented.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = deref(doc, schema);
    if v.is_null() {
        if s["nullable"] != true && !s.as_object().unwrap().is_empty() {
            errors.push(format!("{at}: null, but the schema is not nullable"));
        }
        return;
    }
    if let Some(all) = s["allOf"].as_array() {
        for sub in all {
            validate(doc, sub, v, at, errors);
        }
    }
    if let Some(one) = s["oneOf"].as_array() {
        let passing = one
            .iter()
            .filter(|sub| {
                let mut e = Vec::new();
                validate(doc, sub, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if passing != 1 {
            errors.push(format!("{at}: matches {passing} of oneOf, not 1: {v}"));
        }
    }
    if let Some(e) = s["enum"].as_array() {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} not in {e:?}"));
        }
    }
    let Some(t) = s["type"].as_str() else { return };
    let type_ok = match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => false,
    };
    if !type_ok {
        errors.push(format!("{at}: expected {t}, got {v}"));
        return;
    }
    if let Some(n) = v.as_i64() {
        if s["format"] == "int32" && i32::try_from(n).is_err() {
            errors.push(format!("{at}: {n} does not fit int32"));
        }
        if s["minimum"].as_i64().is_some_and(|m| n < m)
            || s["maximum"].as_i64().is_some_and(|m| n > m)
        {
            errors.push(format!("{at}: {n} out of range"));
        }
    }
    if let Some(x) = v.as_str() {
        match s["format"].as_str() {
            Some("uuid") if x.parse::<uuid::Uuid>().is_err() => {
                errors.push(format!("{at}: {x:?} is not a uuid"))
            }
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(x).is_err() => {
                errors.push(format!("{at}: {x:?} is not an RFC 3339 date-time"))
            }
            _ => {}
        }
        let len = x.chars().count() as u64;
        if s["minLength"].as_u64().is_some_and(|m| len < m)
            || s["maxLength"].as_u64().is_some_and(|m| len > m)
        {
            errors.push(format!("{at}: {x:?} has the wrong length"));
        }
    }
    if let Some(items) = v.as_array() {
        for (i, x) in items.iter().enumerate() {
            validate(doc, &s["items"], x, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(obj) = v.as_object() {
        for r in s["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: required {r} missing"));
            }
        }
        let props = s["properties"].as_object();
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(doc, ps, x, &format!("{at}.{k}"), errors),
                None => match &s["additionalProperties"] {
                    Value::Object(ap) => validate(
                        doc,
                        &Value::Object(ap.clone()),
                        x,
                        &format!("{at}.{k}"),
                        errors,
                    ),
                    // A free-form object (`{"type": "object"}` with no properties).
                    Value::Null if props.is_none() => {}
                    _ => errors.push(format!("{at}: property {k:?} is not documented")),
                },
            }
        }
    }
}

/// Checks one real response against the document: the status is documented for the
/// operation and the JSON body (if the response declares one) matches its schema.
async fn check(
    doc: &Value,
    method: &str,
    template: &str,
    resp: reqwest::Response,
    expect: StatusCode,
) -> Value {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let at = format!("{method} {template} → {status}");
    assert_eq!(status, expect, "{at}: {text}");
    let op = &doc["paths"][template][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let r = op["responses"]
        .get(status.as_str())
        .unwrap_or_else(|| panic!("{at}: status not documented; body {text}"));
    let r = deref(doc, r);
    for name in r["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        assert!(
            headers.contains_key(name.as_str()),
            "{at}: header {name} missing"
        );
    }
    let Some(content) = r["content"].as_object() else {
        assert!(text.is_empty(), "{at}: undocumented body {text}");
        return Value::Null;
    };
    let ct = headers["content-type"].to_str().unwrap();
    let (media, c) = content.iter().next().unwrap();
    assert!(
        ct.starts_with(media.as_str()),
        "{at}: content type {ct}, documented {media}"
    );
    if media != "application/json" {
        return Value::Null;
    }
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{at}: {e}: {text}"));
    let mut errors = Vec::new();
    validate(doc, &c["schema"], &body, "body", &mut errors);
    assert!(
        errors.is_empty(),
        "{at}:\n{}\nbody: {body:#}",
        errors.join("\n")
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_match_the_document() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", "s3cret");
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MAX_BODY_BYTES", "4096"),
        ])
        .spawn()
        .await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &doc;
    let get = |p: &str| app.req(Method::GET, p).send();
    let send = |m: Method, p: &str, b: Value| app.req(m, p).json(&b).send();

    // Operations.
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/openapi.json", 200),
        ("/metrics", 200),
    ] {
        if path == "/metrics" && !metrics_routed() {
            continue;
        }
        let resp = app
            .http
            .get(format!("{}{path}", app.base()))
            .send()
            .await
            .unwrap();
        check(d, "GET", path, resp, StatusCode::from_u16(status).unwrap()).await;
    }

    // Tenants.
    let t = "/v1/tenants";
    let mut acme = tenant_body("acme");
    acme["db_options"] = json!({ "sslmode": "require" });
    acme["billing_plan"] = json!("pro");
    check(
        d,
        "POST",
        t,
        send(Method::POST, t, acme.clone()).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    check(
        d,
        "POST",
        t,
        send(Method::POST, t, acme).await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let mut gamma = tenant_body("gamma");
    gamma["status"] = json!("provisioning");
    check(
        d,
        "POST",
        t,
        send(Method::POST, t, gamma).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    check(
        d,
        "POST",
        t,
        send(Method::POST, t, tenant_body("beta")).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    check(
        d,
        "POST",
        t,
        send(Method::POST, t, json!({ "slug": "x" })).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut bad = tenant_body("delta");
    bad["db_port"] = json!(0);
    let body = check(
        d,
        "POST",
        t,
        send(Method::POST, t, bad).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["error"]["field"], "db_port");
    let mut provision = tenant_body("delta");
    provision["provision"] = json!(true);
    check(
        d,
        "POST",
        t,
        send(Method::POST, t, provision).await.unwrap(),
        StatusCode::NOT_IMPLEMENTED,
    )
    .await;
    let raw = |ct: Option<&str>, b: String| {
        let mut r = app.req(Method::POST, t).body(b);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    check(
        d,
        "POST",
        t,
        raw(Some("application/json"), "{nope".into()).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    check(
        d,
        "POST",
        t,
        raw(None, "{}".into()).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    let big = format!("{{\"slug\": \"{}\"}}", "a".repeat(10_000));
    check(
        d,
        "POST",
        t,
        raw(Some("application/json"), big).await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let unauth = app
        .http
        .get(format!("{}{t}", app.base()))
        .send()
        .await
        .unwrap();
    check(d, "GET", t, unauth, StatusCode::UNAUTHORIZED).await;
    let page = check(
        d,
        "GET",
        t,
        get("/v1/tenants?limit=1&label=plan=pro&include_deleted=true")
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(page["next_cursor"].is_string());
    check(
        d,
        "GET",
        t,
        get("/v1/tenants?limit=abc").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let one = "/v1/tenants/{slug}";
    check(
        d,
        "GET",
        one,
        get("/v1/tenants/ACME").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        one,
        get("/v1/tenants/nope").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let patch = json!({ "contact_email": "ops@acme.example", "app_version": null, "labels": { "plan": "pro" } });
    check(
        d,
        "PATCH",
        one,
        send(Method::PATCH, "/v1/tenants/acme", patch)
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let r = send(
        Method::PATCH,
        "/v1/tenants/acme",
        json!({ "status": "active", "nope": 1 }),
    )
    .await
    .unwrap();
    check(d, "PATCH", one, r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = send(
        Method::PATCH,
        "/v1/tenants/acme",
        json!({ "db_name": "t_beta" }),
    )
    .await
    .unwrap();
    check(d, "PATCH", one, r, StatusCode::CONFLICT).await;

    // PUT: a definition as YAML or JSON; every problem listed on 422.
    let put = |ct: &'static str, slug: &str, b: String| {
        app.req(Method::PUT, &format!("/v1/tenants/{slug}"))
            .header("content-type", ct)
            .body(b)
            .send()
    };
    let definition = |name: &str, status: &str| {
        format!(
            "apiVersion: drover.dev/v1\nkind: Tenant\nmetadata: {{name: {name}, displayName: {name}}}\n\
             spec: {{database: {{host: db1, name: t_{name}, user: u, secretRef: 'file:tenants/{name}'}}, status: {status}}}\n"
        )
    };
    let yaml = "application/yaml";
    let r = put(yaml, "omega", definition("omega", "active"))
        .await
        .unwrap();
    check(d, "PUT", one, r, StatusCode::CREATED).await;
    let as_json: Value = yaml_serde::from_str(&definition("omega", "active")).unwrap();
    let r = put("application/json", "omega", as_json.to_string())
        .await
        .unwrap();
    check(d, "PUT", one, r, StatusCode::OK).await;
    let r = put(yaml, "omega", definition("omega", "provisioning"))
        .await
        .unwrap();
    check(d, "PUT", one, r, StatusCode::CONFLICT).await;
    let r = put(yaml, "omega", definition("omega", "suspended"))
        .await
        .unwrap();
    let body = check(d, "PUT", one, r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        body["error"]["problems"][0]["field"],
        "spec.suspendedReason"
    );
    let r = put(yaml, "other", definition("omega", "active"))
        .await
        .unwrap();
    check(d, "PUT", one, r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = put(yaml, "omega", "spec: [".into()).await.unwrap();
    check(d, "PUT", one, r, StatusCode::BAD_REQUEST).await;
    let r = put("text/plain", "omega", "x".into()).await.unwrap();
    check(d, "PUT", one, r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let suspend = "/v1/tenants/{slug}/suspend";
    let r = send(
        Method::POST,
        "/v1/tenants/beta/suspend",
        json!({ "reason": "unpaid" }),
    )
    .await
    .unwrap();
    check(d, "POST", suspend, r, StatusCode::OK).await;
    let r = send(
        Method::POST,
        "/v1/tenants/beta/suspend",
        json!({ "reason": "unpaid" }),
    )
    .await
    .unwrap();
    check(d, "POST", suspend, r, StatusCode::CONFLICT).await;
    let r = send(
        Method::POST,
        "/v1/tenants/beta/suspend",
        json!({ "reason": " " }),
    )
    .await
    .unwrap();
    check(d, "POST", suspend, r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let resume = "/v1/tenants/{slug}/resume";
    check(
        d,
        "POST",
        resume,
        app.req(Method::POST, "/v1/tenants/acme/resume")
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let r = app
        .req(Method::POST, "/v1/tenants/acme/resume")
        .header("x-drover-actor", "x".repeat(200))
        .send()
        .await
        .unwrap();
    check(d, "POST", resume, r, StatusCode::UNPROCESSABLE_ENTITY).await;

    let events = "/v1/tenants/{slug}/events";
    let page = check(
        d,
        "GET",
        events,
        get("/v1/tenants/acme/events?limit=1").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(page["next_cursor"].is_string());
    check(
        d,
        "GET",
        events,
        get("/v1/tenants/acme/events?cursor=x").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    check(
        d,
        "GET",
        events,
        get("/v1/tenants/nope/events").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    check(
        d,
        "GET",
        "/v1/registry/health",
        get("/v1/registry/health").await.unwrap(),
        StatusCode::OK,
    )
    .await;

    // Resolution: 200, 423, 409, 404, 503.
    let resolve = "/v1/resolve/{slug}";
    check(
        d,
        "GET",
        resolve,
        get("/v1/resolve/acme").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let body = check(
        d,
        "GET",
        resolve,
        get("/v1/resolve/beta").await.unwrap(),
        StatusCode::LOCKED,
    )
    .await;
    assert_eq!(body["error"]["suspended_reason"], "unpaid");
    check(
        d,
        "GET",
        resolve,
        get("/v1/resolve/gamma").await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    check(
        d,
        "GET",
        resolve,
        get("/v1/resolve/nope").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    check(
        d,
        "POST",
        resume,
        app.req(Method::POST, "/v1/tenants/beta/resume")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    // beta's secret file does not exist: 503 once the resumed row reaches the cache.
    let unavailable = wait_until(Duration::from_secs(10), || async {
        get("/v1/resolve/beta").await.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(unavailable, "resolving beta never answered 503");
    check(
        d,
        "GET",
        resolve,
        get("/v1/resolve/beta").await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;

    // Waves (the tenants' hosts do not exist; the wave just keeps retrying).
    let w = "/v1/waves";
    let r = send(Method::POST, w, json!({ "selector": { "slugs": ["acme", "beta"] }, "canary": { "count": 1 }, "soak_seconds": 0, "max_attempts": 1 })).await.unwrap();
    let wave = check(d, "POST", w, r, StatusCode::CREATED).await;
    let id = wave["id"].as_str().unwrap().to_string();
    let r = send(
        Method::POST,
        w,
        json!({ "selector": { "slugs": ["acme"] } }),
    )
    .await
    .unwrap();
    check(d, "POST", w, r, StatusCode::CONFLICT).await;
    check(
        d,
        "POST",
        w,
        send(Method::POST, w, json!({ "batch_size": 0 }))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    check(
        d,
        "GET",
        w,
        get("/v1/waves?limit=5").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        "/v1/waves/{id}",
        get(&format!("/v1/waves/{id}")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        "/v1/waves/{id}",
        get("/v1/waves/not-a-uuid").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let targets = "/v1/waves/{id}/targets";
    check(
        d,
        "GET",
        targets,
        get(&format!("/v1/waves/{id}/targets")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        targets,
        get(&format!("/v1/waves/{id}/targets?state=nope"))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let act = |a: &str| app.req(Method::POST, &format!("/v1/waves/{id}/{a}")).send();
    check(
        d,
        "POST",
        "/v1/waves/{id}/abort",
        act("abort").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "POST",
        "/v1/waves/{id}/pause",
        act("pause").await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    check(
        d,
        "POST",
        "/v1/waves/{id}/resume",
        act("resume").await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let r = app
        .req(
            Method::POST,
            "/v1/waves/00000000-0000-0000-0000-000000000000/pause",
        )
        .send()
        .await
        .unwrap();
    check(d, "POST", "/v1/waves/{id}/pause", r, StatusCode::NOT_FOUND).await;
    check(
        d,
        "POST",
        "/v1/waves/{id}/promote",
        act("promote").await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    // A wave with analysis checks and a dry run: their views carry `analysis` and
    // `dry_run_report` (the dry run finds the unreachable hosts and reports them).
    let r = send(Method::POST, w, json!({ "selector": { "slugs": ["acme", "beta"] }, "canary": { "count": 1 }, "max_attempts": 1,
        "analysis": [{ "name": "ok", "type": "sql", "query": "SELECT true", "interval_seconds": 5 }] })).await.unwrap();
    let analysed = check(d, "POST", w, r, StatusCode::CREATED).await;
    assert!(analysed["analysis"]["checks"].is_array(), "{analysed}");
    let analysed = analysed["id"].as_str().unwrap().to_string();
    let r = app
        .req(Method::POST, &format!("/v1/waves/{analysed}/abort"))
        .send()
        .await
        .unwrap();
    check(d, "POST", "/v1/waves/{id}/abort", r, StatusCode::OK).await;
    let r = send(
        Method::POST,
        w,
        json!({ "dry_run": true, "max_attempts": 1 }),
    )
    .await
    .unwrap();
    let dry = check(d, "POST", w, r, StatusCode::CREATED).await;
    let dry = dry["id"].as_str().unwrap().to_string();
    let finished = wait_until(Duration::from_secs(30), || async {
        let v: Value = get(&format!("/v1/waves/{dry}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["state"] == "completed"
    })
    .await;
    assert!(finished, "the dry run never completed");
    let report = check(
        d,
        "GET",
        "/v1/waves/{id}",
        get(&format!("/v1/waves/{dry}")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(report["dry_run_report"]["failures"].is_array(), "{report}");
    check(
        d,
        "GET",
        targets,
        get(&format!("/v1/waves/{dry}/targets")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        "/v1/fleet",
        get("/v1/fleet").await.unwrap(),
        StatusCode::OK,
    )
    .await;

    // Schedules.
    let s = "/v1/schedules";
    let nightly = json!({ "name": "nightly", "cron": "0 3 * * 1-5", "timezone": "Europe/Berlin", "template": { "selector": { "slugs": ["acme"] }, "soak_seconds": 0 } });
    check(
        d,
        "POST",
        s,
        send(Method::POST, s, nightly.clone()).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    check(
        d,
        "POST",
        s,
        send(Method::POST, s, nightly).await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let r = send(
        Method::POST,
        s,
        json!({ "name": "bad", "cron": "61 * * * *" }),
    )
    .await
    .unwrap();
    check(d, "POST", s, r, StatusCode::UNPROCESSABLE_ENTITY).await;
    check(d, "GET", s, get(s).await.unwrap(), StatusCode::OK).await;
    let one = "/v1/schedules/{name}";
    check(
        d,
        "GET",
        one,
        get("/v1/schedules/nightly").await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        one,
        get("/v1/schedules/nope").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = send(
        Method::PATCH,
        "/v1/schedules/nightly",
        json!({ "enabled": false, "on_overlap": "queue" }),
    )
    .await
    .unwrap();
    check(d, "PATCH", one, r, StatusCode::OK).await;
    let r = send(
        Method::PATCH,
        "/v1/schedules/nightly",
        json!({ "timezone": "Mars/Olympus" }),
    )
    .await
    .unwrap();
    check(d, "PATCH", one, r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let trigger = "/v1/schedules/{name}/trigger";
    let fired = check(
        d,
        "POST",
        trigger,
        app.req(Method::POST, "/v1/schedules/nightly/trigger")
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert!(fired["wave_id"].is_string());
    // The next trigger overlaps with the wave it just made: handled, but no wave.
    let failed = check(
        d,
        "POST",
        trigger,
        app.req(Method::POST, "/v1/schedules/nightly/trigger")
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(failed["outcome"], "failed");
    check(
        d,
        "POST",
        trigger,
        app.req(Method::POST, "/v1/schedules/nope/trigger")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    check(
        d,
        "DELETE",
        one,
        app.req(Method::DELETE, "/v1/schedules/nightly")
            .send()
            .await
            .unwrap(),
        StatusCode::NO_CONTENT,
    )
    .await;
    check(
        d,
        "DELETE",
        one,
        app.req(Method::DELETE, "/v1/schedules/nightly")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    check(
        d,
        "GET",
        "/v1/cluster",
        get("/v1/cluster").await.unwrap(),
        StatusCode::OK,
    )
    .await;

    // Deletion last.
    let one = "/v1/tenants/{slug}";
    check(
        d,
        "DELETE",
        one,
        app.req(Method::DELETE, "/v1/tenants/gamma")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "DELETE",
        one,
        app.req(Method::DELETE, "/v1/tenants/gamma")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let page = check(
        d,
        "GET",
        "/v1/tenants",
        get("/v1/tenants?include_deleted=true&q=GAMMA")
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(page["items"][0]["deleted_at"].is_string());
}

// -------------------------------------------------------------------------------------
// schemathesis.

fn require_schemathesis() -> bool {
    std::env::var("DROVER_REQUIRE_SCHEMATHESIS").is_ok_and(|v| v.trim() == "1")
}

fn skip(why: &str) {
    // Straight to the process's stderr: the harness's capture would hide an eprintln!
    // unless the test failed, and a silent skip looks like a pass.
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(
        std::io::stderr(),
        "\n*** {test}: skipping: schemathesis not available: {why}\n*** (set DROVER_REQUIRE_SCHEMATHESIS=1 to make this a failure)"
    );
}

// 48 operations through four phases; on a loaded 2-core machine the run took 170 s before
// its stateful phase, so the bound leaves room rather than failing on a slow host.
const SCHEMATHESIS_TIMEOUT: Duration = Duration::from_secs(420);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_and_no_schema_violations() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/schemathesis");
    let install = tokio::process::Command::new(script)
        .arg("--install-only")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let log = String::from_utf8_lossy(&install.stderr).to_string();
    match install.status.code() {
        Some(0) => {}
        Some(3) if !require_schemathesis() => return skip(log.trim()),
        _ => panic!(
            "{script} --install-only failed ({}):\n{log}",
            install.status
        ),
    }

    // A small fleet in every state resolution distinguishes, and a schedule.
    let secrets = SecretsDir::new();
    // Every fixture's secret exists: fuzzing may point one tenant at another's reference,
    // and a missing secret is a designed 503 (§5), not the crash this run looks for.
    for slug in ["acme", "beta", "gamma"] {
        secrets.put(&format!("tenants/{slug}"), "s3cret");
    }
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    for (slug, status) in [
        ("acme", "active"),
        ("beta", "active"),
        ("gamma", "provisioning"),
    ] {
        let mut body = tenant_body(slug);
        body["status"] = json!(status);
        assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);
    }
    let r = app
        .act("beta", "suspend", Some(json!({ "reason": "unpaid" })))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .req(Method::POST, "/v1/schedules")
        .json(&json!({ "name": "nightly", "cron": "@daily" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let started = std::time::Instant::now();
    let mut cmd = tokio::process::Command::new(script);
    cmd.env("BASE_URL", app.base())
        .env("TOKEN", ADMIN_TOKEN)
        // The script's own limit, under this test's.
        .env(
            "SCHEMATHESIS_TIMEOUT",
            (SCHEMATHESIS_TIMEOUT.as_secs() - 10).to_string(),
        )
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCHEMATHESIS_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {SCHEMATHESIS_TIMEOUT:?}"))
        .expect("run .ci/schemathesis");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems ({}, after {:?}):\n{report}",
        out.status,
        started.elapsed()
    );
    let summary: Vec<&str> = report.lines().rev().take(40).collect();
    let _ = writeln!(
        std::io::stderr(),
        "schemathesis passed in {:?}:\n{}",
        started.elapsed(),
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test]
async fn migration_set_responses_match_the_document() {
    let app = TestApp::builder()
        .env("DROVER_MAX_SET_BYTES", "4096")
        .spawn()
        .await;
    let doc = spec();
    let d = &doc;
    let (sets, one) = ("/v1/migration-sets", "/v1/migration-sets/{id}");
    let body = |name: &str, sql: &str| json!({ "label": "rel-1", "files": [{ "name": name, "sql": sql }] });
    let push = |b: Value| app.req(Method::POST, sets).json(&b).send();

    check(
        d,
        "POST",
        sets,
        push(body("V1__a.sql", "select 1;")).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let again = check(
        d,
        "POST",
        sets,
        push(body("V1__a.sql", "select 1;")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "POST",
        sets,
        push(body("V1__a-b.sql", "")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    check(
        d,
        "POST",
        sets,
        push(body("V1__a.sql", "select 2;")).await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    check(
        d,
        "POST",
        sets,
        push(body("V1__a.sql", &"x".repeat(5000))).await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let get = |p: String| app.req(Method::GET, &p).send();
    check(
        d,
        "GET",
        sets,
        get(sets.to_string()).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        one,
        get(format!("{sets}/latest")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    check(
        d,
        "GET",
        one,
        get(format!("{sets}/nope")).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let id = again["id"].as_str().unwrap();
    let del = app
        .req(Method::DELETE, &format!("{sets}/{id}"))
        .send()
        .await
        .unwrap();
    check(d, "DELETE", one, del, StatusCode::NO_CONTENT).await;
}
