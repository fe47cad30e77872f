//! `GET /openapi.json`: the OpenAPI 3.0 description of the HTTP API, written by hand.
//!
//! [`ROUTES`] is the single list of (method, path) pairs the router serves; the document's
//! `paths` are built from it, and `tests/api/openapi.rs` checks it against the router (its
//! source and the live server) so a route cannot be added without being documented here.
//! Schemas follow the serde types field by field: `Option` fields are `nullable`, request
//! bodies of `deny_unknown_fields` types have `additionalProperties: false`, and response
//! objects stay open (clients must ignore fields they do not know).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};

mod components;
mod operations;
mod schemas;
mod sets;

use components::{error_responses, parameters};
use operations::operation;
use schemas::schemas;

/// Every (method, path) the router serves, in the order the document lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/tenants"),
    ("POST", "/v1/tenants"),
    ("GET", "/v1/tenants/{slug}"),
    ("PUT", "/v1/tenants/{slug}"),
    ("PATCH", "/v1/tenants/{slug}"),
    ("DELETE", "/v1/tenants/{slug}"),
    ("POST", "/v1/tenants/{slug}/suspend"),
    ("POST", "/v1/tenants/{slug}/resume"),
    ("POST", "/v1/tenants/{slug}/provision"),
    ("GET", "/v1/tenants/{slug}/events"),
    ("GET", "/v1/tenants/{slug}/limits"),
    ("PUT", "/v1/tenants/{slug}/limits"),
    ("GET", "/v1/servers"),
    ("GET", "/v1/registry/health"),
    ("GET", "/v1/waves"),
    ("POST", "/v1/waves"),
    ("GET", "/v1/waves/{id}"),
    ("GET", "/v1/waves/{id}/targets"),
    ("GET", "/v1/waves/{id}/events"),
    ("POST", "/v1/waves/{id}/pause"),
    ("POST", "/v1/waves/{id}/resume"),
    ("POST", "/v1/waves/{id}/abort"),
    ("POST", "/v1/waves/{id}/promote"),
    ("GET", "/v1/fleet"),
    ("GET", "/v1/schedules"),
    ("POST", "/v1/schedules"),
    ("GET", "/v1/schedules/{name}"),
    ("PATCH", "/v1/schedules/{name}"),
    ("DELETE", "/v1/schedules/{name}"),
    ("POST", "/v1/schedules/{name}/trigger"),
    ("GET", "/v1/cluster"),
    ("GET", "/v1/migration-sets"),
    ("POST", "/v1/migration-sets"),
    ("GET", "/v1/migration-sets/{id}"),
    ("DELETE", "/v1/migration-sets/{id}"),
    ("GET", "/v1/tokens"),
    ("POST", "/v1/tokens"),
    ("DELETE", "/v1/tokens/{name}"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{name}"),
    ("DELETE", "/v1/webhooks/{name}"),
    ("POST", "/v1/webhooks/{name}/test"),
    ("GET", "/v1/resolve/{slug}"),
];

/// Paths that need no token.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// The handler: the document, serialized once.
pub async fn document() -> impl IntoResponse {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| spec().to_string());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}

/// The OpenAPI 3.0 document.
pub fn spec() -> Value {
    let mut paths = Map::new();
    for (method, path) in ROUTES {
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let mut op = operation(method, path);
        let roles = crate::access::needed_role(method, path).roles();
        if let Some(first) = roles.first() {
            op["x-drover-role"] = json!(first.as_str());
        }
        if roles.len() > 1 {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            op["x-drover-roles"] = json!(names);
        }
        item[method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "drover",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": "Apache-2.0" },
        },
        "tags": [
            { "name": "tenants", "description": "The tenant registry: CRUD, status changes, events." },
            { "name": "waves", "description": "Migration waves across the fleet, and the fleet's schema versions." },
            { "name": "schedules", "description": "Scheduled waves and the replicas' leader." },
            { "name": "events", "description": "The fleet's event feed, its live stream, and signed webhooks." },
            { "name": "resolve", "description": "Slug → DSN resolution for application servers." },
            { "name": "migration-sets", "description": "Tenant migration sets published to the control DB: what every replica runs." },
            { "name": "tokens", "description": "Named API tokens with roles (viewer, resolver, operator, admin, publisher)." },
            { "name": "operations", "description": "Liveness, readiness, metrics, this document." },
        ],
        "security": [ { "adminToken": [] } ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The root token (`DROVER_ADMIN_TOKEN` or `DROVER_ADMIN_TOKEN_REF`, role admin), or a \
                        named token from `POST /v1/tokens`, whose role must grant the operation (see each operation's \
                        `x-drover-role`; 403 `forbidden` names the role needed).",
                },
                "resolverToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The resolver token (`DROVER_RESOLVER_TOKEN` or `DROVER_RESOLVER_TOKEN_REF`) \
                        or a named token with role resolver, for application servers: accepted by /v1/resolve only.",
                },
            },
            "parameters": parameters(),
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": { "type": "integer", "minimum": 0 },
                },
                "CacheControlNoStore": {
                    "description": "Always `no-store`: a DSN must not sit in a proxy cache.",
                    "schema": { "type": "string", "enum": ["no-store"] },
                },
            },
            "responses": error_responses(),
            "schemas": schemas(),
        },
    })
}

/// No control characters (Rust's `char::is_control`: C0, DEL, C1), as `validate_text` and
/// the actor check demand.
const NO_CONTROL: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

/// [`NO_CONTROL`] and not blank.
const PRINTABLE: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// `env:VAR`, `file:a/b`, `vault:mount/path#field` (see `secrets::reference`).
const SECRET_REF: &str = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*|vault:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+#[A-Za-z0-9._-]+)$";

const DESCRIPTION: &str = "Tenant registry, slug → DSN resolution and canary-first schema \
migration waves for database-per-tenant PostgreSQL fleets.\n\n\
Authentication: `Authorization: Bearer <token>`. `/healthz`, `/readyz`, `/metrics` and \
`/openapi.json` need no token. Everything under `/v1` needs a token whose role grants the \
operation (each operation's `x-drover-role`): `viewer` reads everything but \
`/v1/resolve`; `resolver` resolves only; `operator` is viewer plus wave and schedule \
actions and tenant suspend/resume; `publisher` (CI) pushes and reads migration sets only; `admin` (also the root token of the configuration) may \
do everything. A token without the right gets 403 `forbidden` with `required_role`.\n\n\
Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`; `code` is stable and meant \
for programs, `message` for people, `field` names the offending request field when there \
is one. 5xx bodies never carry internals (the cause is in drover's log). A 503 under `/v1` \
carries `Retry-After`.\n\n\
Every change writes its tenant event in the same transaction. Its actor is the token's \
identity (`root` or `token:<name>`); an optional `X-Drover-Actor: alice` header never \
replaces it and is recorded as `on_behalf_of` in the event's payload.";

// ---------------------------------------------------------------------------------------
// Small builders.

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// `schema` that may also be `null` (`$ref` siblings are ignored in 3.0, hence `allOf`).
fn nullable(schema: Value) -> Value {
    if schema.get("$ref").is_some() {
        return json!({ "allOf": [schema], "nullable": true });
    }
    let mut s = schema;
    s["nullable"] = json!(true);
    if let Some(values) = s.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    s
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn date_time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn int32() -> Value {
    json!({ "type": "integer", "format": "int32" })
}

fn int64() -> Value {
    json!({ "type": "integer", "format": "int64" })
}

fn int32_range(min: i64, max: i64) -> Value {
    json!({ "type": "integer", "format": "int32", "minimum": min, "maximum": max })
}

fn string_map() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" } })
}

/// An object whose listed properties are all always present.
fn object(properties: Value) -> Value {
    let required: Vec<Value> = properties
        .as_object()
        .map(|m| m.keys().map(|k| json!(k)).collect())
        .unwrap_or_default();
    json!({ "type": "object", "required": required, "properties": properties })
}

/// A request body object: unknown fields refused, `required` as given.
fn closed(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": properties,
    })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": json_content(schema) })
}

fn body(schema: Value, required: bool) -> Value {
    json!({ "required": required, "content": json_content(schema) })
}

/// Adds the named shared error responses (`"404"` → `#/components/responses/404`).
fn with_errors(mut responses: Value, codes: &[&str]) -> Value {
    for code in codes {
        responses[*code] = response_ref(code);
    }
    responses
}

struct Op {
    tag: &'static str,
    id: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Value,
    security: Option<Value>,
}

impl Op {
    fn new(tag: &'static str, id: &'static str, summary: &'static str) -> Op {
        Op {
            tag,
            id,
            summary,
            description: None,
            parameters: Vec::new(),
            body: None,
            responses: json!({}),
            security: None,
        }
    }

    fn describe(mut self, d: &'static str) -> Op {
        self.description = Some(d);
        self
    }

    fn params(mut self, p: &[&str]) -> Op {
        self.parameters.extend(p.iter().map(|n| param_ref(n)));
        self
    }

    fn body(mut self, schema: Value, required: bool) -> Op {
        self.body = Some(body(schema, required));
        self
    }

    /// A required body offered in several media types (`content` is the OpenAPI map).
    fn body_content(mut self, content: Value) -> Op {
        self.body = Some(json!({ "required": true, "content": content }));
        self
    }

    fn responses(mut self, ok: Value, errors: &[&str]) -> Op {
        self.responses = with_errors(ok, errors);
        self
    }

    /// OpenAPI links from a success response to the operations its body identifies.
    fn links(mut self, status: &str, links: Value) -> Op {
        self.responses[status]["links"] = links;
        self
    }

    fn public(mut self) -> Op {
        self.security = Some(json!([]));
        self
    }

    fn security(mut self, s: Value) -> Op {
        self.security = Some(s);
        self
    }

    fn build(self) -> Value {
        let mut op = json!({
            "tags": [self.tag],
            "operationId": self.id,
            "summary": self.summary,
            "responses": self.responses,
        });
        if let Some(d) = self.description {
            op["description"] = json!(d);
        }
        if !self.parameters.is_empty() {
            op["parameters"] = json!(self.parameters);
        }
        if let Some(b) = self.body {
            op["requestBody"] = b;
        }
        if let Some(s) = self.security {
            op["security"] = s;
        }
        op
    }
}

/// Errors any authenticated operation can answer.
const AUTHED: &[&str] = &["401", "403", "500", "503"];
/// ... plus those of a JSON request body.
const WITH_BODY: &[&str] = &["400", "401", "403", "413", "415", "422", "500", "503"];

fn errors(extra: &[&'static str], base: &[&'static str]) -> Vec<&'static str> {
    let mut v: Vec<&str> = base.to_vec();
    for e in extra {
        if !v.contains(e) {
            v.push(e);
        }
    }
    v.sort_unstable();
    v
}
