//! The migration-set part of the document (SPEC §21): operations, parameters and schemas.

use serde_json::{json, Map, Value};

use super::*;

/// The operation object of a `/v1/migration-sets` route, if `path` is one.
pub(super) fn operation(method: &str, path: &str) -> Option<Op> {
    let op = match (method, path) {
        ("GET", "/v1/migration-sets") => Op::new("migration-sets", "listMigrationSets", "Pushed migration sets, newest first")
            .describe("The first item is what `latest` means to waves, schedules, dry runs, provisioning and the fleet \
                report. Readable by viewers and by publisher tokens.")
            .params(&["setsLimit"])
            .responses(json!({ "200": ok("The sets.", schema_ref("MigrationSetList")) }), &errors(&["422"], AUTHED)),
        ("POST", "/v1/migration-sets") => Op::new("migration-sets", "pushMigrationSet", "Publish a migration set")
            .describe("Validates every file name as a migrations directory does (`V{n}__{name}.sql`, name of letters, \
                digits and `_`; refinery would silently skip others) and refuses a version used twice (422 \
                `invalid_migrations`, with `file`), a file over 4 MiB (422 `file_too_large`, with `file`) and a body \
                over `max_set_bytes` (413). The id is the SHA-256 of the ordered file names and refinery checksums: \
                201 when the set is new, 200 with the same id when these files were pushed before (the label is \
                added). A label names one set for good: 409 `label_taken` when it names other files. Lint findings \
                are attached, never refused here (waves refuse unacknowledged errors). Nothing is stored when the \
                request is refused. Needs the publisher or admin role.")
            .params(&["actor"])
            .body(schema_ref("PushMigrationSet"), true)
            .responses(
                json!({
                    "201": ok("The new set.", schema_ref("MigrationSet")),
                    "200": ok("These files were pushed before: the existing set.", schema_ref("MigrationSet")),
                }),
                &errors(&["409"], WITH_BODY),
            )
            .links("201", super::operations::links(&["getMigrationSet", "deleteMigrationSet"], "id", "$response.body#/id")),
        ("GET", "/v1/migration-sets/{id}") => Op::new("migration-sets", "getMigrationSet", "One set with its files and lint report")
            .params(&["setId"])
            .responses(json!({ "200": ok("The set.", schema_ref("MigrationSet")) }), &errors(&["404"], AUTHED)),
        ("DELETE", "/v1/migration-sets/{id}") => Op::new("migration-sets", "deleteMigrationSet", "Delete a set")
            .describe("Only by id, and only when no unfinished wave runs it and no schedule names it (by id or by one of \
                its labels): else 409 `set_in_use`, with `used_by: {waves, schedules}`.")
            .params(&["setId"])
            .responses(json!({ "204": { "description": "Deleted." } }), &errors(&["404", "409"], AUTHED)),
        _ => return None,
    };
    Some(op)
}

/// The parameters of the set routes.
pub(super) fn parameters(p: &mut Map<String, Value>) {
    p.insert(
        "setId".into(),
        json!({
            "name": "id", "in": "path", "required": true,
            "description": "A set's id (64 hex digits); GET also takes one of its labels or `latest`.",
            "schema": { "type": "string", "minLength": 1, "example": "latest" },
        }),
    );
    p.insert(
        "setsLimit".into(),
        json!({
            "name": "limit", "in": "query", "required": false,
            "description": "How many sets (values outside 1-1000 are clamped).",
            "schema": { "type": "integer", "format": "int64", "default": 50 },
        }),
    );
}

/// The schemas of the set routes.
pub(super) fn schemas(s: &mut Map<String, Value>) {
    s.insert(
        "PushMigrationSet".into(),
        closed(
            &["files"],
            json!({
                "label": described(
                    nullable(json!({ "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}$" })),
                    "A permanent name for the set, e.g. the application's git sha; not `latest`, not 64 hex digits.",
                ),
                "files": { "type": "array", "items": schema_ref("PushedFile") },
            }),
        ),
    );
    s.insert(
        "PushedFile".into(),
        closed(
            &["name", "sql"],
            json!({
                "name": described(string(), "`V{n}__{name}.sql`."),
                "sql": string(),
            }),
        ),
    );
    let summary = json!({
        "id": described(string(), "SHA-256 (hex) of the ordered file names and refinery checksums."),
        "labels": { "type": "array", "items": string() },
        "latest_version": int32(),
        "file_count": int32(),
        "total_bytes": int64(),
        "lint_errors": int64(),
        "lint_warnings": int64(),
        "created_by": described(string(), "The identity that first pushed it."),
        "created_at": date_time(),
    });
    s.insert("MigrationSetSummary".into(), object(summary.clone()));
    let mut full = summary;
    full["versions"] = json!({ "type": "array", "items": int32() });
    full["files"] = json!({ "type": "array", "items": object(json!({
        "name": string(),
        "version": int32(),
        "checksum": described(string(), "refinery's checksum, as in `refinery_schema_history`."),
        "no_transaction": { "type": "boolean" },
        "sql": string(),
    })) });
    full["lint"] = described(
        object(json!({
            "files": int64(),
            "findings": { "type": "array", "items": schema_ref("LintFinding") },
        })),
        "The lint report of the whole set at push time.",
    );
    s.insert("MigrationSet".into(), object(full));
    s.insert(
        "MigrationSetList".into(),
        object(json!({ "items": { "type": "array", "items": schema_ref("MigrationSetSummary") } })),
    );
}
