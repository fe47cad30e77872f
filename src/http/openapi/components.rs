//! Reusable components: parameters and error responses.

use serde_json::{json, Value};

use super::*;

// ---------------------------------------------------------------------------------------
// Parameters.

pub(super) fn parameters() -> Value {
    let query = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    let path = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema });
    let mut params = json!({
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
            "description": "Whom the caller acts for, recorded as `on_behalf_of` in the events' payload; the \
                events' actor is always the token's identity (`root` or `token:<name>`).",
            "schema": { "type": "string", "maxLength": 96, "pattern": NO_CONTROL },
        },
        "statusFilter": query("status", "Only tenants in this status.", schema_ref("TenantStatus")),
        "labelFilter": query(
            "label",
            "Only tenants carrying all these labels: `key=value`, comma-separated (`plan=pro,region=eu`).",
            json!({ "type": "string", "pattern": "^(([^,]*=[^,]*)?,)*([^,]*=[^,]*)?$", "example": "plan=pro" }),
        ),
        "q": query("q", "Case-insensitive substring of `slug` or `display_name` (trigram-indexed when the control database has `pg_trgm`).", string()),
        "email": query("email", "Tenants whose `contact_email` is this address (case-insensitive, exact).", string()),
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
        "feedType": query(
            "type",
            "A dotted event type (`tenant.migrated`, `wave.halted`), a prefix (`tenant.*`, `wave.*`) or `*`; 422 for an unknown type.",
            json!({ "type": "string", "example": "wave.*" }),
        ),
        "feedTenant": query("tenant", "Events of the tenant(s) that had this slug.", string()),
        "feedWave": query("wave", "Events of this wave, and tenant events it caused (`migrated`, `error`).", uuid()),
        "feedActor": query("actor", "Exact actor, e.g. `drover` or `api:cli:alice`.", string()),
        "feedSince": query("since", "Written at or after (RFC 3339).", date_time()),
        "feedUntil": query("until", "Written before (RFC 3339).", date_time()),
        "feedLimit": query(
            "limit",
            "Page size.",
            json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": 500, "default": 50 }),
        ),
        "feedCursor": query("cursor", "`next_cursor` of the previous page (older events follow).", string()),
        "lastEventId": {
            "name": "Last-Event-ID",
            "in": "header",
            "required": false,
            "description": "Resume after this event id (sent by EventSource clients on reconnect): no gap, no duplicate.",
            "schema": { "type": "string", "pattern": "^[0-9]+$" },
        },
        "webhookName": path(
            "name",
            "The webhook's name.",
            json!({ "type": "string", "minLength": 1, "example": "ops" }),
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
        "tokenName": path(
            "name",
            "The token's name.",
            json!({ "type": "string", "minLength": 1, "example": "grafana" }),
        ),
        "targetsLimit": query(
            "limit",
            "How many targets (values outside 1-100000 are clamped).",
            json!({ "type": "integer", "format": "int64", "default": 1000 }),
        ),
    });
    if let Some(map) = params.as_object_mut() {
        super::sets::parameters(map);
    }
    params
}

// ---------------------------------------------------------------------------------------
// Error responses.

pub(super) fn error_responses() -> Value {
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
        "403": error(
            "The token's role does not grant this operation (`forbidden`, with `required_role`: viewer, resolver, \
             operator, admin or publisher).",
        ),
        "404": error(
            "No such tenant, wave, schedule, token or migration set (`tenant_not_found`, `wave_not_found`, \
             `schedule_not_found`, `token_not_found`, `set_not_found`).",
        ),
        "409": error(
            "A conflict: a live duplicate slug or db_name (`duplicate_slug`, `duplicate_db_name`), a status change \
             the state machine does not allow (`illegal_transition`), a tenant in an unfinished wave (`wave_overlap`), \
             a duplicate schedule name (`duplicate_schedule`) or token name (`duplicate_token`), a tick already handled (`already_fired`), a role or \
             database by that name that drover did not create for this tenant (`name_taken`), another runner \
             provisioning the tenant right now (`provisioning_busy`), `drop_database=true` with neither the database nor \
             the role on the provisioning server (`nothing_to_drop`), a migration-set label naming other files \
             (`label_taken`, with `set_id`), a migration set still in use (`set_in_use`, with `used_by`).",
        ),
        "413": error(
            "The body is larger than `max_body_bytes` (`max_set_bytes` for `POST /v1/migration-sets`) (`invalid_body`).",
        ),
        "415": error("The body is not declared `Content-Type: application/json` (`invalid_body`)."),
        "422": error(
            "A field is invalid (`invalid_field`, with `field`), the body does not fit the schema \
             (`invalid_body`: unknown or missing field, wrong type), a query parameter is invalid (`invalid_query`), \
             the tenant migration files are broken (`invalid_migrations`; with `file` when one is named), a pushed \
             migration file is too large (`file_too_large`, with `file`), or a schedule's stored template no \
             longer parses (`invalid_template`, with `field`).",
        ),
        "500": error(
            "An internal error (`internal`; the cause is in drover's log), or a stored secret reference outside the \
             allowed scope (`secret_ref_refused`).",
        ),
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
