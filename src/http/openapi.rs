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
    ("GET", "/v1/registry/health"),
    ("GET", "/v1/waves"),
    ("POST", "/v1/waves"),
    ("GET", "/v1/waves/{id}"),
    ("GET", "/v1/waves/{id}/targets"),
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
        item[method.to_ascii_lowercase()] = operation(method, path);
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
            { "name": "resolve", "description": "Slug → DSN resolution for application servers." },
            { "name": "operations", "description": "Liveness, readiness, metrics, this document." },
        ],
        "security": [ { "adminToken": [] } ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token (`DROVER_ADMIN_TOKEN` or `DROVER_ADMIN_TOKEN_REF`). \
                        Needed by everything under /v1; also accepted by /v1/resolve.",
                },
                "resolverToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The resolver token (`DROVER_RESOLVER_TOKEN` or `DROVER_RESOLVER_TOKEN_REF`) \
                        for application servers: accepted by /v1/resolve only.",
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
`/openapi.json` need no token; `/v1/resolve/{slug}` takes the resolver token or the admin \
token; everything else under `/v1` takes the admin token only.\n\n\
Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`; `code` is stable and meant \
for programs, `message` for people, `field` names the offending request field when there \
is one. 5xx bodies never carry internals (the cause is in drover's log). A 503 under `/v1` \
carries `Retry-After`.\n\n\
Every change writes its tenant event in the same transaction; an optional \
`X-Drover-Actor: alice` header is recorded as the actor (`api:alice`).";

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
const AUTHED: &[&str] = &["401", "500", "503"];
/// ... plus those of a JSON request body.
const WITH_BODY: &[&str] = &["400", "401", "413", "415", "422", "500", "503"];

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

// ---------------------------------------------------------------------------------------
// Operations.

/// The operation object for one entry of [`ROUTES`]. An entry without a description here
/// gets a placeholder marked `x-undocumented` (the tests refuse it).
fn operation(method: &str, path: &str) -> Value {
    let op = match (method, path) {
        ("GET", "/healthz") => Op::new("operations", "healthz", "Liveness: the process answers")
            .public()
            .responses(
                json!({ "200": ok("Alive.", object(json!({ "status": { "type": "string", "enum": ["ok"] } }))) }),
                &[],
            ),
        ("GET", "/readyz") => Op::new("operations", "readyz", "Readiness: control DB reachable, its schema at this binary's head")
            .public()
            .responses(
                json!({
                    "200": ok("Ready.", schema_ref("Ready")),
                    "503": {
                        "description": "Not ready: the control database is unreachable or its schema is not at this binary's head.",
                        "content": json_content(schema_ref("NotReady")),
                    },
                }),
                &[],
            ),
        ("GET", "/metrics") => Op::new("operations", "metrics", "Prometheus metrics")
            .describe("The Prometheus text exposition format (names prefixed `drover_`).")
            .public()
            .responses(
                json!({ "200": {
                    "description": "Metrics in the Prometheus text format (version 0.0.4).",
                    "content": { "text/plain": { "schema": string() } },
                } }),
                &[],
            ),
        ("GET", "/openapi.json") => Op::new("operations", "openapi", "This document")
            .public()
            .responses(json!({ "200": ok("The OpenAPI 3.0 document.", json!({ "type": "object" })) }), &[]),

        // Tenants.
        ("GET", "/v1/tenants") => Op::new("tenants", "listTenants", "List tenants, keyset-paginated by slug")
            .describe("Filters combine with AND. Soft-deleted tenants are left out unless `include_deleted=true`.")
            .params(&["statusFilter", "labelFilter", "q", "includeDeleted", "tenantsLimit", "tenantsCursor"])
            .responses(json!({ "200": ok("A page of tenants.", schema_ref("TenantPage")) }), &errors(&["422"], AUTHED)),
        ("POST", "/v1/tenants") => Op::new("tenants", "createTenant", "Register a tenant")
            .describe("Writes a `created` event. Slugs and database names are unique among live tenants regardless of case; \
                the slug is stored in lower case. `provision: true` also creates the login role (password \
                generated and written behind `db_secret_ref`, which must be `file:` or `vault:`) and the database \
                on `DROVER_PROVISION_URL` (501 without it), then migrates it to the latest tenant migration: the \
                answer is 202 with the tenant in `provisioning` while that runs in the background, or with \
                `wait=true` 201 with the active tenant (502 `provisioning_failed`, with `step`, when a step fails; \
                the tenant stays `provisioning` with an `error` event and `POST /v1/tenants/{slug}/provision` \
                retries).")
            .params(&["wait", "actor"])
            .body(schema_ref("NewTenant"), true)
            .responses(
                json!({
                    "201": ok("The tenant as stored (with `provision` and `wait=true`: active, migrated).", schema_ref("Tenant")),
                    "202": ok("`provision: true`: the tenant, `provisioning`; the job runs in the background.", schema_ref("Tenant")),
                }),
                &errors(&["409", "501", "502"], WITH_BODY),
            )
            .links(
                "201",
                links(
                    &["getTenant", "putTenant", "updateTenant", "deleteTenant", "suspendTenant", "resumeTenant", "listTenantEvents", "resolve"],
                    "slug",
                    "$response.body#/slug",
                ),
            ),
        ("GET", "/v1/tenants/{slug}") => Op::new("tenants", "getTenant", "One tenant")
            .describe("Soft-deleted tenants are not found.")
            .params(&["slug"])
            .responses(json!({ "200": ok("The tenant.", schema_ref("Tenant")) }), &errors(&["404"], AUTHED)),
        ("PUT", "/v1/tenants/{slug}") => Op::new("tenants", "putTenant", "Declare a tenant: create it, or make it match the definition")
            .describe("Tenants as code: the body is a tenant definition, the document `drover apply` reads, as JSON \
                or YAML (`Content-Type: application/yaml`, `application/x-yaml` or `text/yaml`). `metadata.name` must \
                equal the slug in the path (422 `name_mismatch` otherwise). Creates the tenant (201, `created` event) \
                or changes only what differs (200, an `updated` event listing the changed fields); a definition the \
                tenant already matches writes nothing. Absent optional fields are cleared. `spec.status` drives \
                suspend and resume (events `suspended`, `resumed`, `status_changed`); a status the tenant cannot \
                reach with one allowed transition (e.g. back to `provisioning`) is 409 `illegal_transition`. 422 \
                `invalid_definition` lists every problem in `error.problems`, with the line for YAML bodies.")
            .params(&["slug", "actor"])
            .body_content(
                json!({
                    "application/json": { "schema": schema_ref("TenantDefinition") },
                    "application/yaml": { "schema": schema_ref("TenantDefinition") },
                    "application/x-yaml": { "schema": schema_ref("TenantDefinition") },
                    "text/yaml": { "schema": schema_ref("TenantDefinition") },
                }),
            )
            .responses(
                json!({
                    "200": ok("The tenant matches the definition (changed or not).", schema_ref("Tenant")),
                    "201": ok("The tenant was created.", schema_ref("Tenant")),
                }),
                &errors(&["409"], WITH_BODY),
            ),
        ("PATCH", "/v1/tenants/{slug}") => Op::new("tenants", "updateTenant", "Change the given fields")
            .describe("Absent fields (and `null` for fields that cannot be cleared) stay as they are; `null` clears \
                `billing_plan`, `contact_email` and `app_version`. `status` may only be set to `active`, from \
                `provisioning`. Writes an `updated` event listing the changed fields.")
            .params(&["slug", "actor"])
            .body(schema_ref("TenantPatch"), true)
            .responses(json!({ "200": ok("The tenant after the change.", schema_ref("Tenant")) }), &errors(&["404", "409"], WITH_BODY)),
        ("DELETE", "/v1/tenants/{slug}") => Op::new("tenants", "deleteTenant", "Soft-delete a tenant")
            .describe("The database is kept unless `drop_database=true`; the slug and db_name become reusable. Writes \
                `deleting` and `deleted` events. With `drop_database=true` (needs `DROVER_PROVISION_URL`) drover \
                terminates the database's sessions, drops the database and the role it provisioned and removes the \
                secret; a database or role drover did not create for this tenant is refused (409 `name_taken`) \
                before anything changes, and a failed step leaves the tenant `deleting` (502; send the request again).")
            .params(&["slug", "dropDatabase", "actor"])
            .responses(
                json!({ "200": ok("The tenant, now deleted.", schema_ref("Tenant")) }),
                &errors(&["404", "409", "422", "501", "502"], AUTHED),
            ),
        ("POST", "/v1/tenants/{slug}/provision") => Op::new("tenants", "provisionTenant", "Retry provisioning")
            .describe("For a tenant still in `provisioning` (a step failed, or the daemon stopped mid-job): runs every \
                step again, reusing the role, database and password an earlier attempt created, refusing any it did \
                not create. 409 when the tenant is not `provisioning` or another runner is on it right now.")
            .params(&["slug", "wait", "actor"])
            .responses(
                json!({
                    "200": ok("`wait=true`: the tenant, active and migrated.", schema_ref("Tenant")),
                    "202": ok("The tenant, `provisioning`; the job runs in the background.", schema_ref("Tenant")),
                }),
                &errors(&["404", "409", "422", "501", "502"], AUTHED),
            ),
        ("POST", "/v1/tenants/{slug}/suspend") => Op::new("tenants", "suspendTenant", "active → suspended")
            .describe("Resolution answers 423 for a suspended tenant; waves still migrate it.")
            .params(&["slug", "actor"])
            .body(schema_ref("SuspendRequest"), true)
            .responses(json!({ "200": ok("The suspended tenant.", schema_ref("Tenant")) }), &errors(&["404", "409"], WITH_BODY)),
        ("POST", "/v1/tenants/{slug}/resume") => Op::new("tenants", "resumeTenant", "suspended → active")
            .params(&["slug", "actor"])
            .responses(json!({ "200": ok("The active tenant.", schema_ref("Tenant")) }), &errors(&["404", "409", "422"], AUTHED)),
        ("GET", "/v1/tenants/{slug}/events") => Op::new("tenants", "listTenantEvents", "The tenant's events, newest first")
            .params(&["slug", "eventsLimit", "eventsCursor"])
            .responses(json!({ "200": ok("A page of events.", schema_ref("EventPage")) }), &errors(&["404", "422"], AUTHED)),
        ("GET", "/v1/registry/health") => Op::new("tenants", "registryHealth", "Registry inconsistencies")
            .describe("The same report as `drover check`: duplicate live slugs or database names, tenants stuck in \
                provisioning, schema_version disagreeing with the last migrated event, soft-delete incoherence.")
            .responses(json!({ "200": ok("The report; `ok` is false when there are findings.", schema_ref("HealthReport")) }), AUTHED),

        // Waves.
        ("GET", "/v1/waves") => Op::new("waves", "listWaves", "The most recent waves, newest first")
            .params(&["wavesLimit"])
            .responses(json!({ "200": ok("Waves.", json!({ "type": "array", "items": schema_ref("Wave") })) }), &errors(&["422"], AUTHED)),
        ("POST", "/v1/waves") => Op::new("waves", "createWave", "Start a wave")
            .describe("Freezes the plan: the selected live active and suspended tenants, which are canaries, the batch \
                of every other. Replicas start on it within a tick. 409 when a selected tenant is in an unfinished wave. \
                With `dry_run` every pending migration runs in a transaction that is always rolled back and the wave \
                reports who would fail and why; `exclude_failed_of` skips the tenants a completed dry run found failing; \
                `analysis` gates the batches on checks evaluated during the soak.")
            .params(&["actor"])
            .body(schema_ref("WaveRequest"), true)
            .responses(json!({ "201": ok("The new wave.", schema_ref("Wave")) }), &errors(&["409"], WITH_BODY))
            .links(
                "201",
                links(&["getWave", "listWaveTargets", "pauseWave", "resumeWave", "abortWave", "promoteWave"], "id", "$response.body#/id"),
            ),
        ("GET", "/v1/waves/{id}") => Op::new("waves", "getWave", "State, counts, per-phase progress, failures, ETA")
            .params(&["waveId"])
            .responses(json!({ "200": ok("The wave.", schema_ref("Wave")) }), &errors(&["404"], AUTHED)),
        ("GET", "/v1/waves/{id}/targets") => Op::new("waves", "listWaveTargets", "The tenants of a wave")
            .params(&["waveId", "targetState", "targetsLimit"])
            .responses(
                json!({ "200": ok("Targets by phase and slug.", json!({ "type": "array", "items": schema_ref("Target") })) }),
                &errors(&["404", "422"], AUTHED),
            ),
        ("POST", "/v1/waves/{id}/pause") => wave_action("pauseWave", "Pause a moving wave"),
        ("POST", "/v1/waves/{id}/resume") => wave_action(
            "resumeWave",
            "Resume a paused wave (one paused while soaking soaks again); a halted one retries its failed tenants",
        ),
        ("POST", "/v1/waves/{id}/abort") => wave_action("abortWave", "Abort an unfinished wave"),
        ("POST", "/v1/waves/{id}/promote") => wave_action(
            "promoteWave",
            "End a soaking (or soak-paused) wave's soak now and start its batches; recorded with the actor",
        ),
        ("GET", "/v1/fleet") => Op::new("waves", "fleet", "Tenants per schema version, behind, drifted, needing attention")
            .responses(json!({ "200": ok("The fleet report.", schema_ref("FleetReport")) }), AUTHED),

        // Schedules.
        ("GET", "/v1/schedules") => Op::new("schedules", "listSchedules", "All schedules by name")
            .responses(
                json!({ "200": ok("Schedules.", json!({ "type": "array", "items": schema_ref("Schedule") })) }),
                AUTHED,
            ),
        ("POST", "/v1/schedules") => Op::new("schedules", "createSchedule", "Create a scheduled wave")
            .describe("422 for an invalid cron expression or timezone; 409 when the name is taken.")
            .params(&["actor"])
            .body(schema_ref("NewSchedule"), true)
            .responses(json!({ "201": ok("The schedule with its next five fire times.", schema_ref("Schedule")) }), &errors(&["409"], WITH_BODY))
            .links(
                "201",
                links(&["getSchedule", "updateSchedule", "deleteSchedule", "triggerSchedule"], "name", "$response.body#/name"),
            ),
        ("GET", "/v1/schedules/{name}") => Op::new("schedules", "getSchedule", "One schedule with its next five fire times")
            .params(&["scheduleName"])
            .responses(json!({ "200": ok("The schedule.", schema_ref("Schedule")) }), &errors(&["404"], AUTHED)),
        ("PATCH", "/v1/schedules/{name}") => Op::new("schedules", "updateSchedule", "Change a schedule")
            .describe("Absent (or `null`) fields stay as they are; a new expression or timezone recomputes the next fire time.")
            .params(&["scheduleName"])
            .body(schema_ref("SchedulePatch"), true)
            .responses(json!({ "200": ok("The schedule after the change.", schema_ref("Schedule")) }), &errors(&["404"], WITH_BODY)),
        ("DELETE", "/v1/schedules/{name}") => Op::new("schedules", "deleteSchedule", "Delete a schedule (its waves stay)")
            .params(&["scheduleName"])
            .responses(json!({ "204": { "description": "Deleted." } }), &errors(&["404"], AUTHED)),
        ("POST", "/v1/schedules/{name}/trigger") => Op::new("schedules", "triggerSchedule", "Fire now")
            .describe("Goes through the same exactly-once path as a tick. 201 with the wave's id when a wave was created; \
                422 with the same body (outcome `failed`, the reason in `detail`) when it could not be, e.g. no tenant \
                matches or a selected tenant is in an unfinished wave; 422 with an error body when the migration \
                files are broken.")
            .params(&["scheduleName", "actor"])
            .responses(
                json!({
                    "201": ok("A wave was created.", schema_ref("Fired")),
                    "422": {
                        "description": "The tick was handled but no wave could be created (`Fired` with outcome `failed`), \
                            or the request is invalid (an error body).",
                        "content": json_content(json!({ "oneOf": [schema_ref("Fired"), schema_ref("Error")] })),
                    },
                }),
                &errors(&["404", "409"], AUTHED),
            )
            .links("201", links(&["getWave", "listWaveTargets"], "id", "$response.body#/wave_id")),
        ("GET", "/v1/cluster") => Op::new("schedules", "cluster", "The leader and the live replicas")
            .describe("Replicas heard from in the last minute.")
            .responses(json!({ "200": ok("The cluster.", schema_ref("Cluster")) }), AUTHED),

        // Resolution.
        ("GET", "/v1/resolve/{slug}") => Op::new("resolve", "resolve", "Where is this tenant's database?")
            .describe("A ready libpq URI with the password from the tenant's secret reference. Every answer carries \
                `Cache-Control: no-store`. 200 for an active tenant; 423 suspended (with `suspended_reason`); 409 \
                provisioning or deleting; 404 unknown or deleted; 503 with `Retry-After` when the secret backend (or \
                the control DB) fails and nothing is cached.")
            .params(&["slug"])
            .security(json!([ { "resolverToken": [] }, { "adminToken": [] } ]))
            .responses(resolve_responses(), &["401"]),
        _ => {
            return json!({
                "summary": "undocumented",
                "x-undocumented": true,
                "responses": { "default": { "description": "undocumented" } },
            })
        }
    };
    op.build()
}

/// Links to each of `operations`, passing `expression` as its parameter `param`.
fn links(operations: &[&str], param: &str, expression: &str) -> Value {
    let mut m = Map::new();
    for op in operations {
        let mut name = op.to_string();
        name[..1].make_ascii_uppercase();
        m.insert(
            name,
            json!({ "operationId": op, "parameters": { param: expression } }),
        );
    }
    Value::Object(m)
}

fn wave_action(id: &'static str, summary: &'static str) -> Op {
    Op::new("waves", id, summary)
        .describe("409 when the wave's state does not allow it.")
        .params(&["waveId", "actor"])
        .responses(
            json!({ "200": ok("The wave after the action.", schema_ref("Wave")) }),
            &errors(&["404", "409", "422"], AUTHED),
        )
}

fn resolve_responses() -> Value {
    let no_store =
        json!({ "Cache-Control": { "$ref": "#/components/headers/CacheControlNoStore" } });
    let error = |description: &str| {
        json!({
            "description": description,
            "headers": no_store,
            "content": json_content(schema_ref("Error")),
        })
    };
    json!({
        "200": {
            "description": "The tenant is active.",
            "headers": no_store,
            "content": json_content(schema_ref("Resolution")),
        },
        "404": error("No such tenant, or it is deleted (`tenant_not_found`)."),
        "409": error("The tenant is provisioning or deleting (`tenant_not_ready`); retry when it is active."),
        "423": error("The tenant is suspended (`tenant_suspended`); `suspended_reason` says why."),
        "503": {
            "description": "The secret backend (`secret_unavailable`) or the control database \
                (`control_db_unavailable`) failed and nothing usable is cached.",
            "headers": {
                "Cache-Control": { "$ref": "#/components/headers/CacheControlNoStore" },
                "Retry-After": { "$ref": "#/components/headers/RetryAfter" },
            },
            "content": json_content(schema_ref("Error")),
        },
    })
}

// ---------------------------------------------------------------------------------------
// Parameters.

fn parameters() -> Value {
    let query = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    let path = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema });
    json!({
        "slug": path(
            "slug",
            "The tenant's slug (case-insensitive).",
            json!({ "type": "string", "minLength": 1, "example": "acme" }),
        ),
        "waveId": path("id", "The wave's id.", uuid()),
        "scheduleName": path(
            "name",
            "The schedule's name.",
            json!({ "type": "string", "minLength": 1, "example": "nightly" }),
        ),
        "actor": {
            "name": "X-Drover-Actor",
            "in": "header",
            "required": false,
            "description": "Who is making the change, recorded on the events as `api:<value>` (default `api`).",
            "schema": { "type": "string", "maxLength": 96, "pattern": NO_CONTROL },
        },
        "statusFilter": query("status", "Only tenants in this status.", schema_ref("TenantStatus")),
        "labelFilter": query(
            "label",
            "Only tenants carrying all these labels: `key=value`, comma-separated (`plan=pro,region=eu`).",
            json!({ "type": "string", "pattern": "^(([^,]*=[^,]*)?,)*([^,]*=[^,]*)?$", "example": "plan=pro" }),
        ),
        "q": query("q", "Case-insensitive substring of `display_name`.", string()),
        "includeDeleted": query(
            "include_deleted",
            "Include soft-deleted tenants.",
            json!({ "type": "boolean", "default": false }),
        ),
        "tenantsLimit": query(
            "limit",
            "Page size.",
            json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": 1000, "default": 100 }),
        ),
        "tenantsCursor": query("cursor", "`next_cursor` of the previous page.", string()),
        "eventsLimit": query(
            "limit",
            "Page size.",
            json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": 1000, "default": 50 }),
        ),
        "eventsCursor": query(
            "cursor",
            "`next_cursor` of the previous page (an event id: older events follow).",
            json!({ "type": "string", "pattern": "^-?[0-9]+$" }),
        ),
        "wavesLimit": query(
            "limit",
            "How many waves (values outside 1-200 are clamped).",
            json!({ "type": "integer", "format": "int64", "default": 20 }),
        ),
        "targetState": query("state", "Only targets in this state.", schema_ref("TargetState")),
        "wait": query(
            "wait",
            "With provisioning: answer when the job has finished instead of at once.",
            json!({ "type": "boolean", "default": false }),
        ),
        "dropDatabase": query(
            "drop_database",
            "Also drop the database and role drover provisioned and remove the secret (never the default).",
            json!({ "type": "boolean", "default": false }),
        ),
        "targetsLimit": query(
            "limit",
            "How many targets (values outside 1-100000 are clamped).",
            json!({ "type": "integer", "format": "int64", "default": 1000 }),
        ),
    })
}

// ---------------------------------------------------------------------------------------
// Error responses.

fn error_responses() -> Value {
    let error = |description: &str| json!({ "description": description, "content": json_content(schema_ref("Error")) });
    json!({
        "400": error("The body is not valid JSON (`invalid_body`)."),
        "401": {
            "description": "Missing or wrong bearer token (`unauthorized`).",
            "headers": {
                "WWW-Authenticate": { "description": "`Bearer`.", "schema": string() },
            },
            "content": json_content(schema_ref("Error")),
        },
        "404": error("No such tenant, wave or schedule (`tenant_not_found`, `wave_not_found`, `schedule_not_found`)."),
        "409": error(
            "A conflict: a live duplicate slug or db_name (`duplicate_slug`, `duplicate_db_name`), a status change \
             the state machine does not allow (`illegal_transition`), a tenant in an unfinished wave (`wave_overlap`), \
             a duplicate schedule name (`duplicate_schedule`), a tick already handled (`already_fired`), a role or \
             database by that name that drover did not create for this tenant (`name_taken`), another runner \
             provisioning the tenant right now (`provisioning_busy`).",
        ),
        "413": error("The body is larger than `max_body_bytes` (`invalid_body`)."),
        "415": error("The body is not declared `Content-Type: application/json` (`invalid_body`)."),
        "422": error(
            "A field is invalid (`invalid_field`, with `field`), the body does not fit the schema \
             (`invalid_body`: unknown or missing field, wrong type), a query parameter is invalid (`invalid_query`), \
             or the tenant migration files are broken (`invalid_migrations`).",
        ),
        "500": error("An internal error (`internal`); the cause is in drover's log."),
        "501": error("The request needs a feature this daemon is not configured for (`not_available`)."),
        "502": error(
            "A provisioning step failed on the tenant's server or secret backend (`provisioning_failed`, with `step`: \
             `connect`, `lock`, `secret`, `role`, `database`, `migrate`, `activate`, `drop_database`, `drop_role`); \
             the same text is in the tenant's `error` event.",
        ),
        "503": {
            "description": "The control database is unavailable (`control_db_unavailable`); retry after `Retry-After` seconds.",
            "headers": { "Retry-After": { "$ref": "#/components/headers/RetryAfter" } },
            "content": json_content(schema_ref("Error")),
        },
    })
}

// ---------------------------------------------------------------------------------------
// Schemas.

fn schemas() -> Value {
    let slug_pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$";
    let ident = |description: &str| {
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": 63,
            "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$",
            "description": description,
        })
    };
    let text = |max: u32, description: &str| {
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": max,
            "pattern": PRINTABLE,
            "description": description,
        })
    };
    let email = json!({
        "type": "string",
        "maxLength": 254,
        "pattern": r"^[^@\s]+@\S*\.\S*$",
        "description": "An e-mail address like ops@acme.example (at most 254 bytes).",
    });
    let host = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[A-Za-z0-9._:/\\[\\]-]+$",
        "description": "A host name, an IP address or a Unix socket directory (`/cloudsql/project:region:instance`).",
    });
    let port = json!({ "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535 });
    let secret_ref = json!({
        "type": "string",
        "maxLength": 512,
        "pattern": SECRET_REF,
        "description": "A secret reference, never the password: `env:VAR`, `file:relative/path` or \
            `vault:mount/path#field` (path segments of letters, digits, `.`, `_`, `-`; `.` and `..` \
            segments are refused).",
    });
    let option_text = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": NO_CONTROL,
        "description": "At most 255 bytes.",
    });
    let labels = json!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": { "type": "string", "maxLength": 255 },
        "description": "Free key/values used to select tenants. Keys are 1-63 characters of letters, digits, \
            `.`, `_`, `/`, `-`; values at most 255 printable characters.",
    });
    let wave_state = json!({
        "type": "string",
        "enum": ["pending", "canary", "soaking", "rolling", "completed", "halted", "paused", "aborted"],
    });
    let counts = json!({
        "pending": int64(),
        "running": int64(),
        "succeeded": int64(),
        "failed": int64(),
        "skipped": int64(),
    });
    let mut phase = json!({
        "phase": described(int32(), "0 is the canary phase, then batches 1, 2, ..."),
        "name": described(string(), "`canary` or `batch N`."),
        "total": int64(),
    });
    for (k, v) in counts.as_object().into_iter().flatten() {
        phase[k] = v.clone();
    }
    let issue = object(json!({
        "slug": string(),
        "issue": described(json!({ "type": "object" }), "What went wrong; `kind` is `drift` for drifted tenants."),
    }));

    let mut schemas = Map::new();
    schemas.insert("Error".into(), json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": described(string(), "Stable, machine-readable."),
                        "message": described(string(), "For people."),
                        "field": described(string(), "The offending request field, when there is one."),
                        "suspended_reason": described(
                            nullable(string()),
                            "Only on 423 from /v1/resolve: why the tenant is suspended.",
                        ),
                        "step": described(string(), "Only on 502 `provisioning_failed`: the step that failed."),
                        "problems": {
                            "type": "array",
                            "description": "Only with `invalid_definition` (PUT /v1/tenants/{slug}): every problem.",
                            "items": {
                                "type": "object",
                                "required": ["message"],
                                "properties": {
                                    "field": described(string(), "The field's path in the definition, e.g. `spec.database.port`."),
                                    "line": described(int64(), "1-based line in the body, where the parser gives one."),
                                    "message": string(),
                                },
                            },
                        },
                    },
                },
            },
        }));
    schemas.insert("Ready".into(), object(json!({
            "status": { "type": "string", "enum": ["ready"] },
            "control_schema_version": int32(),
            "instance_id": string(),
            "leader": described(json!({ "type": "boolean" }), "Whether this replica holds the leader lease."),
        })));
    schemas.insert(
        "NotReady".into(),
        object(json!({
            "status": { "type": "string", "enum": ["not_ready"] },
            "reason": string(),
        })),
    );
    schemas.insert(
        "TenantStatus".into(),
        json!({
            "type": "string",
            "enum": ["provisioning", "active", "suspended", "deleting", "deleted"],
        }),
    );
    schemas.insert("DbOptions".into(), json!({
            "type": "object",
            "additionalProperties": false,
            "description": "libpq connection options appended to the resolved DSN; only these keys are allowed.",
            "properties": {
                "sslmode": { "type": "string", "enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] },
                "sslrootcert": option_text.clone(),
                "sslcert": option_text.clone(),
                "sslkey": option_text.clone(),
                "connect_timeout": { "type": "string", "pattern": "^[0-9]{1,9}$", "description": "Seconds." },
                "application_name": option_text,
                "target_session_attrs": {
                    "type": "string",
                    "enum": ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"],
                },
                "channel_binding": { "type": "string", "enum": ["disable", "prefer", "require"] },
            },
        }));
    schemas.insert("Tenant".into(), object(json!({
            "id": uuid(),
            "slug": json!({ "type": "string", "pattern": slug_pattern }),
            "display_name": string(),
            "db_name": string(),
            "db_host": string(),
            "db_port": port.clone(),
            "db_user": string(),
            "db_secret_ref": described(string(), "A reference (`file:…`), never the password."),
            "db_options": schema_ref("DbOptions"),
            "schema_version": described(nullable(int32()), "Last applied tenant migration; null before the first."),
            "app_version": nullable(string()),
            "status": schema_ref("TenantStatus"),
            "labels": string_map(),
            "canary": { "type": "boolean" },
            "billing_plan": nullable(string()),
            "contact_email": nullable(string()),
            "suspended_reason": nullable(string()),
            "maintenance_flag": { "type": "boolean" },
            "created_at": date_time(),
            "updated_at": date_time(),
            "deleted_at": nullable(date_time()),
        })));
    schemas.insert("NewTenant".into(), closed(
            &["slug", "display_name", "db_name", "db_host", "db_user", "db_secret_ref"],
            json!({
                "slug": {
                    "type": "string",
                    "pattern": slug_pattern,
                    "description": "Stored in lower case (upper case is folded); some words (admin, api, metrics, ...) are reserved.",
                },
                "display_name": text(200, "1-200 printable characters."),
                "db_name": ident("The tenant's database."),
                "db_host": host.clone(),
                "db_port": json!({ "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535, "default": 5432 }),
                "db_user": ident("The role drover and applications connect as."),
                "db_secret_ref": secret_ref.clone(),
                "db_options": schema_ref("DbOptions"),
                "labels": labels.clone(),
                "canary": { "type": "boolean", "default": false },
                "status": described(
                    nullable(json!({ "type": "string", "enum": ["provisioning", "active"] })),
                    "Initial status (default `provisioning`).",
                ),
                "provision": {
                    "type": "boolean",
                    "default": false,
                    "description": "Create the role and database too, store the generated password behind \
                        `db_secret_ref` (`file:` or `vault:`) and migrate to the latest version (needs \
                        `DROVER_PROVISION_URL`). The tenant starts `provisioning` and becomes `active` when done.",
                },
                "billing_plan": nullable(text(100, "1-100 printable characters.")),
                "contact_email": nullable(email.clone()),
                "app_version": nullable(text(100, "1-100 printable characters.")),
                "maintenance_flag": { "type": "boolean", "default": false },
            }),
        ));
    schemas.insert("TenantDefinition".into(), json!({
            "description": "A tenant as code (the files `drover apply` reads, one YAML document each). Unknown \
                fields are refused at every level; the rules of `NewTenant` apply to the same values.",
            "type": "object",
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "additionalProperties": false,
            "properties": {
                "apiVersion": { "type": "string", "enum": [crate::manifest::API_VERSION] },
                "kind": { "type": "string", "enum": [crate::manifest::KIND] },
                "metadata": closed(&["name", "displayName"], json!({
                    "name": described(
                        json!({ "type": "string", "pattern": slug_pattern }),
                        "The slug, in lower case; equal to the one in the path.",
                    ),
                    "displayName": text(200, "1-200 printable characters."),
                    "labels": labels.clone(),
                })),
                "spec": closed(&["database"], json!({
                    "database": closed(&["host", "name", "user", "secretRef"], json!({
                        "host": host.clone(),
                        "port": json!({ "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535, "default": 5432 }),
                        "name": ident("The tenant's database."),
                        "user": ident("The role drover and applications connect as."),
                        "secretRef": secret_ref.clone(),
                        "options": schema_ref("DbOptions"),
                    })),
                    "canary": { "type": "boolean", "default": false },
                    "status": {
                        "type": "string",
                        "enum": ["provisioning", "active", "suspended"],
                        "default": "active",
                        "description": "Reached with at most one allowed transition: provisioning → active, \
                            active ↔ suspended. `deleting`/`deleted` cannot be declared (DELETE the tenant).",
                    },
                    "suspendedReason": text(500, "Required with `status: suspended`, refused otherwise."),
                    "billingPlan": text(100, "1-100 printable characters; absent clears it."),
                    "contactEmail": email.clone(),
                    "appVersion": text(100, "1-100 printable characters; absent clears it."),
                    "maintenanceFlag": { "type": "boolean", "default": false },
                })),
            },
        }));
    schemas.insert("TenantPatch".into(), json!({
            "description": "Absent fields stay as they are. `null` clears `billing_plan`, `contact_email` and \
                `app_version`; on the other fields it means \"unchanged\".",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "display_name": nullable(text(200, "1-200 printable characters.")),
                "db_name": nullable(ident("The tenant's database.")),
                "db_host": nullable(host),
                "db_port": nullable(port),
                "db_user": nullable(ident("The role drover and applications connect as.")),
                "db_secret_ref": nullable(secret_ref),
                "db_options": nullable(schema_ref("DbOptions")),
                "labels": nullable(labels.clone()),
                "canary": nullable(json!({ "type": "boolean" })),
                "billing_plan": nullable(text(100, "1-100 printable characters.")),
                "contact_email": nullable(email),
                "app_version": nullable(text(100, "1-100 printable characters.")),
                "maintenance_flag": nullable(json!({ "type": "boolean" })),
                "status": described(
                    nullable(json!({ "type": "string", "enum": ["active"] })),
                    "Only `active`, from `provisioning`; suspend, resume and DELETE have endpoints of their own.",
                ),
            },
        }));
    schemas.insert("SuspendRequest".into(), closed(&["reason"], json!({
            "reason": text(500, "Why; 1-500 printable characters (trimmed). Shown by resolution's 423."),
        })));
    schemas.insert("TenantPage".into(), json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": { "type": "array", "items": schema_ref("Tenant") },
                "next_cursor": described(string(), "Pass as `cursor` for the next page; absent on the last page."),
            },
        }));
    schemas.insert("Event".into(), object(json!({
            "id": int64(),
            "event_type": described(
                string(),
                "`created`, `updated`, `status_changed`, `suspended`, `resumed`, `deleting`, `deleted`, `migrated`, ...",
            ),
            "actor": described(string(), "`api`, `api:<X-Drover-Actor>`, `cli:<user>`, `schedule:<name>`, ..."),
            "payload": described(json!({ "type": "object" }), "Depends on the event type."),
            "created_at": date_time(),
        })));
    schemas.insert("EventPage".into(), json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": { "type": "array", "items": schema_ref("Event") },
                "next_cursor": described(string(), "Pass as `cursor` for the next (older) page; absent on the last page."),
            },
        }));
    schemas.insert("HealthReport".into(), object(json!({
            "ok": { "type": "boolean" },
            "findings": {
                "type": "array",
                "items": object(json!({
                    "kind": {
                        "type": "string",
                        "enum": ["duplicate_slug", "duplicate_db_name", "stuck_provisioning", "schema_version_mismatch", "soft_delete_incoherent"],
                    },
                    "description": string(),
                    "slugs": { "type": "array", "items": string() },
                })),
            },
        })));
    schemas.insert("FleetReport".into(), object(json!({
            "latest_version": described(nullable(int32()), "The latest migration file; null when there is none."),
            "tenants": described(int64(), "Live active and suspended tenants."),
            "by_version": {
                "type": "array",
                "items": object(json!({
                    "version": described(nullable(int32()), "null: no migration applied yet."),
                    "tenants": int64(),
                })),
            },
            "behind": int64(),
            "behind_slugs": described(json!({ "type": "array", "items": string() }), "The first 100, by slug."),
            "drifted": { "type": "array", "items": issue.clone() },
            "needs_attention": { "type": "array", "items": issue },
        })));
    schemas.insert("Selector".into(), json!({
            "description": "Which tenants a wave covers; empty means every live active or suspended tenant.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "labels": described(nullable(string_map()), "Tenants carrying all these labels."),
                "slugs": described(nullable(json!({ "type": "array", "items": string() })), "Exactly these tenants."),
                "billing_plan": described(nullable(string()), "Tenants on this billing plan."),
            },
        }));
    schemas.insert("CanarySpec".into(), json!({
            "description": "Which tenants go first; empty means the selected tenants flagged `canary`.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "slugs": described(nullable(json!({ "type": "array", "items": string() })), "These tenants (they must be selected)."),
                "count": described(
                    nullable(json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": 4_294_967_295_u64 })),
                    "N tenants, chosen deterministically.",
                ),
                "percent": described(
                    nullable(json!({ "type": "number", "format": "double", "minimum": 0, "maximum": 100 })),
                    "N % of the selected tenants (rounded up), chosen deterministically.",
                ),
            },
        }));
    schemas.insert("WaveRequest".into(), json!({
            "description": "Body of `POST /v1/waves` (and a schedule's `template`). Every field is optional.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "target_version": described(nullable(int32()), "Version to reach; default the latest migration file."),
                "selector": nullable(schema_ref("Selector")),
                "canary": nullable(schema_ref("CanarySpec")),
                "batch_size": described(nullable(int32_range(1, 100_000)), "Tenants per batch (default 50)."),
                "max_concurrency": described(nullable(int32_range(1, 1000)), "Tenants migrated at once across all replicas (default 10)."),
                "max_per_host": described(nullable(int32_range(1, 1000)), "Tenants migrated at once on one database host (default max_concurrency)."),
                "max_failures": described(
                    nullable(json!({ "type": "integer", "format": "int32", "minimum": 0 })),
                    "Halt when more than this many tenants failed. With neither this nor max_failure_percent, the first failure halts.",
                ),
                "max_failure_percent": described(
                    nullable(json!({ "type": "number", "format": "double", "minimum": 0, "maximum": 100 })),
                    "Halt when more than this percentage of the wave failed.",
                ),
                "soak_seconds": described(nullable(int32_range(0, 604_800)), "Wait after the canaries succeeded (default 30)."),
                "lock_timeout_ms": described(nullable(int32_range(1, 3_600_000)), "Per-tenant lock_timeout (default 5000)."),
                "statement_timeout_ms": described(nullable(int32_range(1, 86_400_000)), "Per-tenant statement_timeout (default 600000)."),
                "max_attempts": described(nullable(int32_range(1, 100)), "Attempts per tenant for retryable errors (default 5)."),
                "dry_run": described(
                    nullable(json!({ "type": "boolean", "default": false })),
                    "Run every pending migration in a transaction that is always rolled back and report who would \
                     fail and why. No canaries, soak or failure budget; nothing is written to any tenant.",
                ),
                "exclude_failed_of": described(
                    nullable(uuid()),
                    "A completed dry-run wave: its failed tenants are skipped (quarantined) with the reason.",
                ),
                "analysis": described(
                    nullable(json!({ "type": "array", "maxItems": 20, "items": schema_ref("AnalysisCheck") })),
                    "Checks evaluated during the soak; the wave needs canaries. Prometheus checks need `prometheus_url`.",
                ),
            },
        }));
    schemas.insert("AnalysisCheck".into(), closed(&["name", "type", "query"], json!({
            "name": {
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$",
                "description": "Unique within the wave.",
            },
            "type": { "type": "string", "enum": ["sql", "prometheus"] },
            "query": {
                "type": "string",
                "minLength": 1,
                "maxLength": 10_000,
                "pattern": r"^[^\x00]*\S[^\x00]*$",
                "description": "sql: one statement run on every canary database in a read-only transaction; passes \
                    when it returns one row whose first column is true. prometheus: a PromQL instant query returning \
                    one number (a scalar or a single series); no data or an error is inconclusive.",
            },
            "success_condition": described(
                nullable(json!({ "type": "string", "pattern": r"^\s*result\s*(<=|>=|==|!=|<|>)\s*[-+]?[0-9.]+([eE][-+]?[0-9]+)?\s*$" })),
                "Prometheus checks only (required there): `result <op> <number>` with <op> one of <, <=, >, >=, ==, !=.",
            ),
            "interval_seconds": described(nullable(int32_range(1, 86_400)), "Seconds between evaluations (default 30)."),
            "failure_limit": described(
                nullable(int32_range(0, 10_000)),
                "Failed measurements tolerated during the soak (default 0); one more halts the wave.",
            ),
            "inconclusive_limit": described(
                nullable(int32_range(0, 10_000)),
                "Inconclusive measurements tolerated during the soak (default 0); one more pauses the wave.",
            ),
            "timeout_ms": described(
                nullable(int32_range(100, 300_000)),
                "Statement timeout (sql) or request timeout (prometheus), default 5000.",
            ),
        })));
    schemas.insert("WaveState".into(), wave_state);
    schemas.insert("TargetState".into(), json!({ "type": "string", "enum": ["pending", "running", "succeeded", "failed", "skipped"] }));
    schemas.insert("Counts".into(), object(counts));
    schemas.insert("Phase".into(), object(phase));
    schemas.insert(
        "Failure".into(),
        object(json!({
            "slug": string(),
            "kind": nullable(string()),
            "error": nullable(string()),
        })),
    );
    schemas.insert("Wave".into(), object(json!({
            "id": uuid(),
            "state": schema_ref("WaveState"),
            "target_version": int32(),
            "current_phase": int32(),
            "phase_count": described(int32(), "Number of batch phases (the canary phase is 0)."),
            "counts": schema_ref("Counts"),
            "phases": { "type": "array", "items": schema_ref("Phase") },
            "failures": { "type": "array", "items": schema_ref("Failure") },
            "halt_reason": nullable(string()),
            "soak_until": nullable(date_time()),
            "eta_seconds": described(nullable(int64()), "Rough seconds left."),
            "created_by": string(),
            "created_at": date_time(),
            "started_at": nullable(date_time()),
            "finished_at": nullable(date_time()),
            "plan": described(
                json!({ "type": "object" }),
                "The frozen plan: the request, the effective settings, the migrations' checksums, the tenant count.",
            ),
            "dry_run": { "type": "boolean" },
            "exclude_failed_of": described(nullable(uuid()), "The dry run whose failed tenants this wave skips."),
            "promoted_by": described(nullable(string()), "Who ended the soak early."),
            "promoted_at": nullable(date_time()),
            "skipped": described(
                json!({ "type": "array", "items": schema_ref("Failure") }),
                "Skipped tenants (quarantined, status changed, aborted) with the reason in `error`; the first 100.",
            ),
            "dry_run_report": described(nullable(schema_ref("DryRunReport")), "Dry runs only."),
            "analysis": described(nullable(schema_ref("Analysis")), "Waves with analysis checks only."),
        })));
    let group = object(json!({
        "count": int64(),
        "kind": described(nullable(string()), "`sql`, `drift`, `timeout`, `retryable`, `needs_attention`, `not_run`, ..."),
        "code": described(nullable(string()), "SQLSTATE."),
        "file": described(nullable(string()), "The migration file to blame."),
        "message": string(),
        "example_detail": described(nullable(string()), "PostgreSQL's detail for one of the tenants."),
        "slugs": { "type": "array", "items": string() },
    }));
    schemas.insert("DryRunReport".into(), object(json!({
            "would_succeed": int64(),
            "would_fail": int64(),
            "not_run": described(int64(), "Tenants a no-transaction file (or their status) kept from running."),
            "pending": described(int64(), "Tenants not examined yet."),
            "failures": described(json!({ "type": "array", "items": group.clone() }), "One entry per distinct error, largest first."),
            "skipped": described(json!({ "type": "array", "items": group }), "One entry per reason."),
        })));
    schemas.insert("Analysis".into(), object(json!({
            "checks": { "type": "array", "items": object(json!({
                "name": string(),
                "type": { "type": "string", "enum": ["sql", "prometheus"] },
                "query": string(),
                "success_condition": nullable(string()),
                "interval_seconds": int32(),
                "failure_limit": int32(),
                "inconclusive_limit": int32(),
                "runs": described(int32(), "Evaluations in the current soak."),
                "failures": described(int32(), "Failed measurements in the current soak."),
                "inconclusives": described(int32(), "Inconclusive measurements in the current soak."),
                "next_run_at": nullable(date_time()),
            })) },
            "evaluations": described(
                json!({ "type": "array", "items": object(json!({
                    "at": date_time(),
                    "check": string(),
                    "tenant": described(nullable(string()), "The canary tenant (sql checks)."),
                    "value": described(nullable(string()), "What the query returned."),
                    "verdict": { "type": "string", "enum": ["pass", "fail", "inconclusive"] },
                    "detail": described(nullable(string()), "Why a measurement was inconclusive."),
                })) }),
                "The most recent 500 measurements, newest first.",
            ),
            "evaluations_total": int64(),
        })));
    schemas.insert(
        "Target".into(),
        object(json!({
            "slug": string(),
            "phase": int32(),
            "state": schema_ref("TargetState"),
            "attempts": int32(),
            "from_version": nullable(int32()),
            "to_version": nullable(int32()),
            "error_kind": nullable(string()),
            "error": nullable(string()),
            "duration_ms": nullable(int64()),
            "lease_owner": described(nullable(string()), "The replica working on it."),
            "detail": described(
                nullable(json!({ "type": "object" })),
                "Dry runs: `outcome`, and for a failure `code`, `message`, `detail`, `file`, `version`, or the \
                 files `not_run`; quarantined targets: the `dry_run_wave` that found them.",
            ),
        })),
    );
    schemas.insert("NewSchedule".into(), closed(&["name", "cron"], json!({
            "name": { "type": "string", "pattern": slug_pattern, "description": "Looks like a slug." },
            "cron": described(
                string(),
                "Crontab: five fields (0 and 7 are Sunday), a sixth leading field for seconds, a seventh for the \
                 year, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.",
            ),
            "timezone": described(nullable(string()), "IANA timezone (default UTC)."),
            "template": described(nullable(schema_ref("WaveRequest")), "The `POST /v1/waves` body each tick uses."),
            "enabled": nullable(json!({ "type": "boolean", "default": true })),
            "on_overlap": described(
                nullable(json!({ "type": "string", "enum": ["skip", "queue"] })),
                "What a tick does while the previous wave is unfinished (default `skip`).",
            ),
            "misfire_grace_seconds": described(
                nullable(json!({ "type": "integer", "format": "int32", "minimum": 0, "default": 300 })),
                "How late a missed tick may still fire.",
            ),
        })));
    schemas.insert("SchedulePatch".into(), json!({
            "description": "Absent or `null` fields stay as they are.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "cron": nullable(string()),
                "timezone": nullable(string()),
                "template": nullable(schema_ref("WaveRequest")),
                "enabled": nullable(json!({ "type": "boolean" })),
                "on_overlap": nullable(json!({ "type": "string", "enum": ["skip", "queue"] })),
                "misfire_grace_seconds": nullable(json!({ "type": "integer", "format": "int32", "minimum": 0 })),
            },
        }));
    schemas.insert("Schedule".into(), object(json!({
            "name": string(),
            "cron": string(),
            "cron_translated": described(string(), "What the cron crate was given (day-of-week as names, seconds first)."),
            "timezone": string(),
            "template": described(json!({ "type": "object" }), "The wave request each tick uses."),
            "enabled": { "type": "boolean" },
            "on_overlap": { "type": "string", "enum": ["skip", "queue"] },
            "misfire_grace_seconds": int32(),
            "next_fire_at": nullable(date_time()),
            "last_fire_at": nullable(date_time()),
            "last_wave_id": nullable(uuid()),
            "next_fires": described(
                json!({ "type": "array", "items": date_time() }),
                "The next five fire times, RFC 3339 in the schedule's timezone.",
            ),
        })));
    schemas.insert(
        "Fired".into(),
        object(json!({
            "schedule": string(),
            "tick": date_time(),
            "outcome": { "type": "string", "enum": ["fired", "failed"] },
            "wave_id": nullable(uuid()),
            "detail": described(nullable(string()), "Why no wave was created."),
        })),
    );
    schemas.insert("Cluster".into(), object(json!({
            "leader": object(json!({
                "holder": described(nullable(string()), "The leading replica; null when the lease is free or expired."),
                "term": int64(),
                "expires_at": nullable(date_time()),
            })),
            "this_replica": object(json!({
                "instance_id": string(),
                "leader": { "type": "boolean" },
            })),
            "replicas": {
                "type": "array",
                "items": object(json!({
                    "instance_id": string(),
                    "version": string(),
                    "started_at": date_time(),
                    "last_heartbeat": date_time(),
                })),
            },
        })));
    schemas.insert("Resolution".into(), object(json!({
            "slug": string(),
            "dsn": described(string(), "A libpq URI with the password, percent-encoded, and the tenant's options."),
            "host": string(),
            "port": json!({ "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535 }),
            "dbname": string(),
            "user": string(),
            "options": schema_ref("DbOptions"),
            "schema_version": nullable(int32()),
        })));
    for (name, example) in examples() {
        if let Some(schema) = schemas.get_mut(name) {
            schema["example"] = example;
        }
    }
    Value::Object(schemas)
}

/// Request body examples (also the first requests schemathesis sends).
fn examples() -> [(&'static str, Value); 7] {
    [
        (
            "TenantDefinition",
            json!({
                "apiVersion": "drover.dev/v1",
                "kind": "Tenant",
                "metadata": { "name": "acme", "displayName": "Acme Corp", "labels": { "plan": "pro", "region": "eu" } },
                "spec": {
                    "database": { "host": "db1", "port": 5432, "name": "t_acme", "user": "t_acme", "secretRef": "file:tenants/acme" },
                    "canary": false,
                    "status": "active",
                },
            }),
        ),
        (
            "NewTenant",
            json!({
                "slug": "acme",
                "display_name": "Acme Inc.",
                "db_name": "tenant_acme",
                "db_host": "db1.internal",
                "db_port": 5432,
                "db_user": "acme",
                "db_secret_ref": "file:tenants/acme",
                "db_options": { "sslmode": "verify-full" },
                "labels": { "plan": "pro", "region": "eu" },
                "canary": false,
                "status": "active",
            }),
        ),
        (
            "TenantPatch",
            json!({ "billing_plan": "enterprise", "contact_email": null }),
        ),
        ("SuspendRequest", json!({ "reason": "invoice overdue" })),
        (
            "WaveRequest",
            json!({
                "selector": { "labels": { "region": "eu" } },
                "canary": { "count": 2 },
                "batch_size": 50,
                "max_failures": 3,
                "soak_seconds": 300,
            }),
        ),
        (
            "NewSchedule",
            json!({
                "name": "nightly",
                "cron": "0 3 * * 1-5",
                "timezone": "Europe/Berlin",
                "template": { "batch_size": 50, "max_failures": 2 },
                "on_overlap": "skip",
            }),
        ),
        ("SchedulePatch", json!({ "enabled": false })),
    ]
}
