//! The operation object of every route.

use serde_json::{json, Value};

use super::*;

// ---------------------------------------------------------------------------------------
// Operations.

/// The operation object for one entry of [`ROUTES`]. An entry without a description here
/// gets a placeholder marked `x-undocumented` (the tests refuse it).
pub(super) fn operation(method: &str, path: &str) -> Value {
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
            .params(&["statusFilter", "labelFilter", "q", "email", "includeDeleted", "tenantsLimit", "tenantsCursor"])
            .responses(json!({ "200": ok("A page of tenants.", schema_ref("TenantPage")) }), &errors(&["422"], AUTHED)),
        ("POST", "/v1/tenants") => Op::new("tenants", "createTenant", "Register a tenant")
            .describe("Writes a `created` event. Slugs and database names are unique among live tenants regardless of case; \
                the slug is stored in lower case. `provision: true` also creates the login role (password \
                generated and written behind `db_secret_ref`, which must be `file:` or `vault:`) and the database \
                on a provisioning server (501 without any): the one named by `server`, else the least-loaded \
                server whose labels agree with the tenant's and that has room (422 `no_provisioning_server` \
                naming the labels and the servers when none does), then migrates it to the latest tenant \
                migration. Only `slug` is needed; see `NewTenant.provision` for the defaults. The \
                answer is 202 with the tenant in `provisioning` while that runs in the background, or with \
                `wait=true` 201 with the active tenant (502 `provisioning_failed`, with `step`, when a step fails; \
                the tenant stays `provisioning` with an `error` event and its `provisioning_error`; retryable \
                failures are retried automatically with backoff, and `POST /v1/tenants/{slug}/provision` \
                retries any).")
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
        ("GET", "/v1/tenants/{slug}/limits") => Op::new("tenants", "getTenantLimits", "The tenant's limits")
            .describe("Every field is null when none are set.")
            .params(&["slug"])
            .responses(json!({ "200": ok("The limits.", schema_ref("TenantLimits")) }), &errors(&["404"], AUTHED)),
        ("PUT", "/v1/tenants/{slug}/limits") => Op::new("tenants", "putTenantLimits", "Set the tenant's limits")
            .describe("Replaces all of them (absent fields become null; all null removes them). Sizes and counts \
                are positive (`max_attachments_gb` may be 0), `notes` at most 1 KB (422 otherwise). A change writes \
                an `updated` event with `changed.limits.from` and `.to`.")
            .params(&["slug", "actor"])
            .body(schema_ref("TenantLimits"), true)
            .responses(json!({ "200": ok("The limits as stored.", schema_ref("TenantLimits")) }), &errors(&["404"], WITH_BODY)),
        ("GET", "/v1/servers") => Op::new("tenants", "listServers", "Provisioning servers")
            .describe("Each configured provisioning server in configuration order: live tenants placed there, \
                `max_tenants`, labels, and whether its admin connection answers now (checked with a 2 s timeout, \
                all servers at once). Never the admin URL.")
            .responses(json!({ "200": ok("The servers.", schema_ref("ServerList")) }), AUTHED),
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
                `analysis` gates the batches on checks evaluated during the soak. The files the wave would run are \
                linted first: an error finding whose rule is not in `acknowledge` answers 422 `lint_failed` with the \
                `findings`.")
            .params(&["actor"])
            .body(schema_ref("WaveRequest"), true)
            .responses(json!({ "201": ok("The new wave.", schema_ref("Wave")) }), &errors(&["409"], WITH_BODY))
            .links(
                "201",
                links(&["getWave", "listWaveTargets", "listWaveEvents", "pauseWave", "resumeWave", "abortWave", "promoteWave"], "id", "$response.body#/id"),
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
        ("GET", "/v1/waves/{id}/events") => Op::new("waves", "listWaveEvents", "The wave's timeline, oldest first")
            .describe("One event per state change, written in the transaction that made it: `created`, `canary_started`, \
                `canary_passed`, `soak_started`, `soak_passed`, `promoted`, `batch_started` (`{\"batch\": n}`), \
                `halted` (`{\"reason\"}`), `paused`, `resumed`, `aborted`, `completed`. The actor is `drover` for the engine.")
            .params(&["waveId"])
            .responses(json!({ "200": ok("The timeline.", schema_ref("WaveTimeline")) }), &errors(&["404"], AUTHED)),
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
                files are broken or the stored template no longer parses (`invalid_template`, e.g. after an upgrade \
                renamed one of its fields: replace it with `PATCH`).")
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

        // Tokens.
        ("GET", "/v1/tokens") => Op::new("tokens", "listTokens", "Named tokens, without their values")
            .describe("Names, roles, who created them, `expires_at` and `last_used_at` (exact to about a second).")
            .responses(json!({ "200": ok("The tokens, by name.", schema_ref("TokenList")) }), AUTHED),
        ("POST", "/v1/tokens") => Op::new("tokens", "createToken", "Issue a named token")
            .describe("The token is in this answer and never again: drover stores only its SHA-256. `expires_in` is \
                a duration (`90d`, `12h`, `30m`, `3600s`); without it the token does not expire. 409 `duplicate_token` \
                when the name is taken.")
            .params(&["actor"])
            .body(schema_ref("NewToken"), true)
            .responses(json!({ "201": ok("The token, shown once.", schema_ref("CreatedToken")) }), &errors(&["409"], WITH_BODY))
            .links("201", links(&["revokeToken"], "name", "$response.body#/name")),
        ("DELETE", "/v1/tokens/{name}") => Op::new("tokens", "revokeToken", "Revoke a named token")
            .describe("Refused on every replica within 2 seconds (at once on this one). The name may be reused.")
            .params(&["tokenName", "actor"])
            .responses(json!({ "200": ok("The revoked token.", schema_ref("TokenInfo")) }), &errors(&["404", "422"], AUTHED)),
        // Events and webhooks.
        ("GET", "/v1/events") => Op::new("events", "listEvents", "The fleet's events, newest first")
            .describe("Tenant and wave events as one feed with dotted types: `tenant.created`, `tenant.updated`, \
                `tenant.provisioned`, `tenant.provisioning_failed`, `tenant.migrated`, `tenant.suspended`, `tenant.resumed`, \
                `tenant.deleting`, `tenant.deleted`, `tenant.status_changed`, `tenant.error`, and `wave.<type>` for every \
                timeline type. Filters combine with AND; pages are keyset-paginated by (created_at, id).")
            .params(&["feedType", "feedTenant", "feedWave", "feedActor", "feedSince", "feedUntil", "feedLimit", "feedCursor"])
            .responses(json!({ "200": ok("A page of events.", schema_ref("FeedPage")) }), &errors(&["422"], AUTHED)),
        ("GET", "/v1/events/stream") => Op::new("events", "streamEvents", "New events as Server-Sent Events")
            .describe("`text/event-stream`: one message per event, `id:` the event id, `event:` its type, `data:` the event \
                as JSON; a `heartbeat` comment every 15 s. Events are sent once every transaction that was running when \
                they committed has ended, in commit-safe order, so `Last-Event-ID` resumes with no gap and no duplicate. \
                Same filters as the feed (no `limit` or `cursor`). 503 `too_many_streams` when this replica serves \
                `stream_max_clients` already.")
            .params(&["feedType", "feedTenant", "feedWave", "feedActor", "feedSince", "feedUntil", "lastEventId"])
            .responses(
                json!({ "200": {
                    "description": "The stream (never ends on its own).",
                    "content": { "text/event-stream": { "schema": string() } },
                } }),
                &errors(&["422"], AUTHED),
            ),
        ("GET", "/v1/webhooks") => Op::new("events", "listWebhooks", "Every webhook with its delivery counts")
            .responses(json!({ "200": ok("Webhooks by name.", json!({ "type": "array", "items": schema_ref("Webhook") })) }), AUTHED),
        ("POST", "/v1/webhooks") => Op::new("events", "createWebhook", "Subscribe a URL to events")
            .describe("Each matching event is POSTed to `url` with `X-Drover-Event`, `X-Drover-Delivery`, \
                `X-Drover-Timestamp` and `X-Drover-Signature: sha256=<hex HMAC-SHA256(key, timestamp + \".\" + body)>`, \
                the key read through `secret_ref` (never stored). Delivery rows are written in the event's transaction \
                and retried with backoff until `webhook_give_up_after`, then `dead`. 422 for a URL that is not http(s), \
                an unknown event type, or a secret reference that is malformed, names drover's own `DROVER_*` \
                variables or cannot be read; 409 when the name is taken.")
            .params(&["actor"])
            .body(schema_ref("NewWebhook"), true)
            .responses(json!({ "201": ok("The webhook.", schema_ref("Webhook")) }), &errors(&["409"], WITH_BODY))
            .links("201", links(&["getWebhook", "deleteWebhook", "testWebhook"], "name", "$response.body#/name")),
        ("GET", "/v1/webhooks/{name}") => Op::new("events", "getWebhook", "One webhook, its delivery counts and last error")
            .params(&["webhookName"])
            .responses(json!({ "200": ok("The webhook.", schema_ref("Webhook")) }), &errors(&["404"], AUTHED)),
        ("DELETE", "/v1/webhooks/{name}") => Op::new("events", "deleteWebhook", "Delete a webhook and its pending deliveries")
            .params(&["webhookName"])
            .responses(json!({ "204": { "description": "Deleted." } }), &errors(&["404"], AUTHED)),
        ("POST", "/v1/webhooks/{name}/test") => Op::new("events", "testWebhook", "Send a `webhook.test` event now")
            .describe("Signed like any delivery, sent at once (not through the outbox, never retried); the answer says \
                what the receiver did.")
            .params(&["webhookName", "actor"])
            .responses(json!({ "200": ok("What the receiver answered.", schema_ref("WebhookTest")) }), &errors(&["404", "422"], AUTHED)),

        // Resolution.
        ("GET", "/v1/resolve/{slug}") => Op::new("resolve", "resolve", "Where is this tenant's database?")
            .describe("A ready libpq URI with the password from the tenant's secret reference. Every answer carries \
                `Cache-Control: no-store`. 200 for an active tenant; 423 suspended (with `suspended_reason`); 409 \
                provisioning or deleting; 404 unknown or deleted; 503 with `Retry-After` when the secret backend (or \
                the control DB) fails and nothing is cached; 500 `secret_ref_refused` when the stored secret reference \
                is outside the allowed scope (it is never read).")
            .params(&["slug"])
            .security(json!([ { "resolverToken": [] }, { "adminToken": [] } ]))
            .responses(resolve_responses(), &["401", "403"]),
        _ => match super::sets::operation(method, path) {
            Some(op) => op,
            None => {
                return json!({
                    "summary": "undocumented",
                    "x-undocumented": true,
                    "responses": { "default": { "description": "undocumented" } },
                })
            }
        },
    };
    op.build()
}

/// Links to each of `operations`, passing `expression` as its parameter `param`.
pub(super) fn links(operations: &[&str], param: &str, expression: &str) -> Value {
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

pub(super) fn wave_action(id: &'static str, summary: &'static str) -> Op {
    Op::new("waves", id, summary)
        .describe("409 when the wave's state does not allow it.")
        .params(&["waveId", "actor"])
        .responses(
            json!({ "200": ok("The wave after the action.", schema_ref("Wave")) }),
            &errors(&["404", "409", "422"], AUTHED),
        )
}

pub(super) fn resolve_responses() -> Value {
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
