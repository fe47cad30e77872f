//! The schemas of request and response bodies (they follow the serde types field by
//! field), with examples.

use serde_json::{json, Map, Value};

use super::*;

// ---------------------------------------------------------------------------------------
// Schemas.

pub(super) fn schemas() -> Value {
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
                        "file": described(string(), "Only on a refused migration-set push: the file at fault."),
                        "set_id": described(string(), "Only with `label_taken`: the set the label names."),
                        "used_by": described(
                            object(json!({
                                "waves": { "type": "array", "items": string() },
                                "schedules": { "type": "array", "items": string() },
                            })),
                            "Only with `set_in_use`: the unfinished waves and the schedules using the set.",
                        ),
                        "findings": {
                            "type": "array",
                            "description": "Only with `lint_failed` (POST /v1/waves): the error findings not acknowledged.",
                            "items": schema_ref("LintFinding"),
                        },
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
            "checks": described(json!({ "type": "array", "items": schema_ref("PreflightCheck") }),
                "The preflight checks of `drover doctor`, at most 30 s old; a failed one does not make the replica unready."),
        })));
    schemas.insert(
        "PreflightCheck".into(),
        json!({
            "type": "object",
            "required": ["name", "outcome", "message"],
            "properties": {
                "name": described(string(), "What was checked: `control_db.version`, `control_db.gen_random_uuid`, `control_db.pg_trgm`, `provision_server.NAME`, `secrets_dir`."),
                "outcome": { "type": "string", "enum": ["ok", "warning", "failed"] },
                "message": described(string(), "What was found."),
                "fix": described(string(), "What to do (absent when it passed)."),
            },
        }),
    );
    schemas.insert(
        "NotReady".into(),
        object(json!({
            "status": { "type": "string", "enum": ["not_ready"] },
            "reason": string(),
            "checks": json!({ "type": "array", "items": schema_ref("PreflightCheck") }),
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
            "server": described(nullable(string()), "The provisioning server the tenant was placed on (null: registered without provisioning)."),
            "provisioned_at": described(nullable(date_time()), "When its provisioning job finished."),
            "provisioning_error": nullable(schema_ref("ProvisioningError")),
            "limits": described(nullable(schema_ref("TenantLimits")), "Null when no limits are set."),
        })));
    schemas.insert("ProvisioningError".into(), object(json!({
            "step": described(string(), "`connect`, `lock`, `secret`, `role`, `database`, `migrate`, `activate`, ..."),
            "message": described(string(), "What went wrong (never a password or a connection string)."),
            "retryable": described(
                json!({ "type": "boolean" }),
                "Whether the same job may succeed later; drover retries these by itself (`provision_retries`), \
                 the others wait for `POST /v1/tenants/{slug}/provision`.",
            ),
            "at": date_time(),
        })));
    schemas.insert("TenantLimits".into(), json!({
            "description": "A tenant's limits. PUT replaces all of them: absent fields become null; all null removes them.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "max_db_size_mb": nullable(int32_range(1, i64::from(i32::MAX))),
                "max_users": nullable(int32_range(1, i64::from(i32::MAX))),
                "max_attachments_gb": nullable(int32_range(0, i64::from(i32::MAX))),
                "notes": described(nullable(json!({ "type": "string", "maxLength": 1024 })), "At most 1 KB."),
                "updated_at": described(nullable(date_time()), "Set by drover; ignored in requests."),
            },
        }));
    schemas.insert("Server".into(), json!({
            "type": "object",
            "required": ["name", "host", "port", "labels", "max_tenants", "tenants", "reachable"],
            "properties": {
                "name": string(),
                "host": described(string(), "What tenants placed here connect to."),
                "port": int32(),
                "labels": string_map(),
                "max_tenants": described(nullable(int64()), "Null: no limit."),
                "tenants": described(int64(), "Live tenants placed here."),
                "reachable": described(json!({ "type": "boolean" }), "Whether the admin connection answered within 2 s."),
                "error": described(string(), "Why it did not (absent when reachable)."),
            },
        }));
    schemas.insert(
        "ServerList".into(),
        object(json!({
            "items": { "type": "array", "items": schema_ref("Server") },
        })),
    );
    schemas.insert("NewTenant".into(), closed(
            &["slug"],
            json!({
                "slug": {
                    "type": "string",
                    "pattern": slug_pattern,
                    "description": "Stored in lower case (upper case is folded); some words (admin, api, metrics, ...) are reserved.",
                },
                "display_name": text(200, "1-200 printable characters."),
                "db_name": ident("The tenant's database."),
                "db_host": host.clone(),
                "db_port": described(
                    json!({ "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535 }),
                    "Default 5432; with `provision: true` the provisioning server's port.",
                ),
                "db_user": ident("The role drover and applications connect as."),
                "db_secret_ref": secret_ref.clone(),
                "db_options": schema_ref("DbOptions"),
                "labels": labels.clone(),
                "canary": { "type": "boolean", "default": false },
                "server": described(
                    json!({ "type": "string" }),
                    "With `provision: true`: this provisioning server instead of placement by labels and load.",
                ),
                "status": described(
                    nullable(json!({ "type": "string", "enum": ["provisioning", "active"] })),
                    "Initial status (default `provisioning`).",
                ),
                "provision": {
                    "type": "boolean",
                    "default": false,
                    "description": "Create the role and database too, store the generated password behind \
                        `db_secret_ref` (`file:` or `vault:`) and migrate to the latest version (needs \
                        `DROVER_PROVISION_URL` or `[[provision_servers]]`). The tenant starts `provisioning` and \
                        becomes `active` when done. Only `slug` is then required: `display_name` defaults to the \
                        slug, `db_name`/`db_user` to the `provision_db_name`/`provision_db_user` templates \
                        (`t_` + slug with `-` → `_`; refused past 63 bytes), host and port come from the server, \
                        `db_secret_ref` from `provision_secret_ref` (`file:tenants/{slug}`). Without it, \
                        `display_name` still defaults to the slug and the other `db_` fields are required.",
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
                    "limits": described(
                        json!({
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "maxDbSizeMb": int32_range(1, i64::from(i32::MAX)),
                                "maxUsers": int32_range(1, i64::from(i32::MAX)),
                                "maxAttachmentsGb": int32_range(0, i64::from(i32::MAX)),
                                "notes": json!({ "type": "string", "maxLength": 1024 }),
                            },
                        }),
                        "The tenant's limits; absent leaves them as they are, `{}` removes them.",
                    ),
                })),
                "status": described(
                    json!({
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "server": string(),
                            "provisionedAt": date_time(),
                            "provisioningError": schema_ref("ProvisioningError"),
                        },
                    }),
                    "What drover observed, as `drover export` writes it; ignored when applied.",
                ),
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
                "migration_set": described(
                    nullable(json!({ "type": "string", "minLength": 1 })),
                    "The files to run: a pushed set's id or label, or `latest` (default: the newest pushed set, \
                     else the daemon's migrations directory). The plan records the set's id (`plan.migration_set`).",
                ),
                "target_version": described(nullable(int32()), "Version to reach; default the latest migration of the set."),
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
                "acknowledge": described(
                    nullable(json!({ "type": "array", "items": string() })),
                    "Lint rule ids whose error findings this wave accepts; they are stored in `plan.lint.acknowledged`. \
                     Without them, an error finding answers 422 `lint_failed` with the `findings`.",
                ),
                "lock_retries": described(
                    nullable(schema_ref("LockRetries")),
                    "How a tenant retries lock timeouts before giving up (stored in `plan.settings.lock_retries`).",
                ),
            },
        }));
    schemas.insert("LockRetries".into(), json!({
            "description": "Escalating lock-timeout retries within one attempt: `attempts` short tries, the first with \
                `lock_timeout = first_lock_timeout_ms` (doubling, capped at the wave's `lock_timeout_ms`), with \
                `first_pause_ms` (doubling, at most 30 s) between them, then one try at the wave's `lock_timeout_ms`. \
                A final lock timeout records its `blockers`.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "attempts": described(json!({ "type": "integer", "minimum": 1, "maximum": 10, "default": 3 }), "Short attempts before the last."),
                "first_lock_timeout_ms": described(json!({ "type": "integer", "minimum": 1, "maximum": 3_600_000, "default": 100 }), "lock_timeout of the first attempt."),
                "first_pause_ms": described(json!({ "type": "integer", "minimum": 0, "maximum": 60_000, "default": 250 }), "Pause after the first lock timeout."),
            },
        }));
    schemas.insert("Blocker".into(), object(json!({
            "pid": int32(),
            "application_name": string(),
            "user": string(),
            "state": described(string(), "`active`, `idle in transaction`, ..."),
            "xact_age_ms": described(nullable(int64()), "Age of its open transaction."),
            "query": described(string(), "The first 200 characters of its current or last query (withheld if it mentions a password)."),
        })));
    schemas.insert("LintFinding".into(), object(json!({
            "rule": described(string(), "Kebab-case rule id, e.g. `require-concurrent-index-creation`."),
            "level": { "type": "string", "enum": ["error", "warning"] },
            "file": string(),
            "version": int32(),
            "line": described(int64(), "1-based line where the statement starts."),
            "statement": described(string(), "The statement (first 300 characters)."),
            "message": string(),
            "fix": string(),
        })));
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
            "hosts": described(
                json!({ "type": "array", "items": schema_ref("HostLimit") }),
                "Every database host of the wave (the first 1,000) with its adaptive concurrency limit.",
            ),
        })));
    schemas.insert("HostLimit".into(), object(json!({
            "host": string(),
            "limit": described(int32(), "Tenants this host may run at once now: halved on lock timeouts, refused connections \
                and too many connections, one more after as many clean finishes as the limit."),
            "max": described(int32(), "The wave's max_per_host."),
            "lowered": described(int32(), "How many times congestion halved the limit."),
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
            "largest": described(
                json!({ "type": "array", "items": schema_ref("TenantCost") }),
                "The ten tenants whose touched tables are largest, largest first: candidates to migrate last or alone.",
            ),
            "slowest": described(
                json!({ "type": "array", "items": schema_ref("TenantCost") }),
                "The ten tenants whose dry run took longest, slowest first.",
            ),
        })));
    schemas.insert("TenantCost".into(), object(json!({
            "slug": string(),
            "size_bytes": described(
                nullable(int64()),
                "pg_total_relation_size, before the run, of the existing relations its pending files name.",
            ),
            "duration_ms": described(nullable(int64()), "Wall time of its dry run (connect, lock, run, rollback)."),
            "migrate_ms": described(nullable(int64()), "Time its pending files took to execute."),
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
    schemas.insert("WaveEvent".into(), object(json!({
            "id": int64(),
            "type": {
                "type": "string",
                "enum": ["created", "canary_started", "canary_passed", "soak_started", "soak_passed", "promoted",
                         "batch_started", "halted", "paused", "resumed", "aborted", "completed"],
            },
            "actor": described(string(), "`drover` for the engine; the caller for operator actions."),
            "payload": described(json!({ "type": "object" }), "`batch_started`: `batch`; `halted`: `reason`; \
                `paused`: `from` and, when the analysis paused it, `reason`; `resumed`: `from`, `to`."),
            "created_at": date_time(),
        })));
    schemas.insert("FeedEvent".into(), json!({
        "type": "object",
        "required": ["id", "type", "actor", "payload", "created_at"],
        "properties": {
            "id": described(int64(), "Unique over tenant and wave events."),
            "type": described(string(), "Dotted: `tenant.<event_type>` or `wave.<type>`."),
            "tenant": described(string(), "The tenant's slug (tenant events)."),
            "wave_id": described(uuid(), "The wave (wave events, and tenant events a wave caused)."),
            "actor": string(),
            "payload": described(json!({ "type": "object" }), "Type-specific details; never a secret or a DSN."),
            "created_at": date_time(),
        },
    }));
    schemas.insert("FeedPage".into(), object(json!({
        "items": { "type": "array", "items": schema_ref("FeedEvent") },
        "next_cursor": described(nullable(string()), "Pass as `cursor` for older events; null on the last page."),
    })));
    let webhook_format = json!({ "type": "string", "enum": ["json", "slack"] });
    schemas.insert("NewWebhook".into(), json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "url", "events", "secret_ref"],
        "properties": {
            "name": json!({ "type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$" }),
            "url": json!({ "type": "string", "pattern": "^https?://", "maxLength": 2048 }),
            "events": json!({ "type": "array", "minItems": 1, "maxItems": 64, "items": string(),
                "example": ["wave.*", "tenant.provisioning_failed"] }),
            "secret_ref": described(json!({ "type": "string", "pattern": SECRET_REF }), "Reference of the HMAC key."),
            "format": described(nullable(webhook_format.clone()), "`json` (default): the event plus `delivery_id`; `slack`: `{\"text\"}`."),
        },
    }));
    schemas.insert("Webhook".into(), object(json!({
        "name": string(),
        "url": string(),
        "events": { "type": "array", "items": string() },
        "secret_ref": string(),
        "format": webhook_format,
        "created_by": string(),
        "created_at": date_time(),
        "deliveries": object(json!({ "pending": int64(), "delivered": int64(), "dead": int64() })),
        "last_error": described(nullable(string()), "The error of the latest failed attempt not since delivered."),
    })));
    schemas.insert("WebhookTest".into(), object(json!({
        "delivery_id": uuid(),
        "ok": { "type": "boolean" },
        "status": described(nullable(json!({ "type": "integer" })), "The receiver's HTTP status, when it answered."),
        "error": nullable(string()),
    })));
    schemas.insert(
        "WaveTimeline".into(),
        object(json!({
            "items": { "type": "array", "items": schema_ref("WaveEvent") },
        })),
    );
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
                nullable(json!({
                    "type": "object",
                    "properties": {
                        "outcome": { "type": "string", "enum": ["would_succeed", "fails", "skipped"] },
                        "version": int32(),
                        "file": nullable(string()),
                        "code": string(),
                        "message": string(),
                        "detail": nullable(string()),
                        "checked": { "type": "array", "items": int32() },
                        "not_run": { "type": "array", "items": string() },
                        "dry_run_wave": uuid(),
                        "blockers": { "type": "array", "items": schema_ref("Blocker") },
                        "size_bytes": int64(),
                        "tables": { "type": "array", "items": object(json!({ "name": string(), "bytes": int64() })) },
                        "migrate_ms": int64(),
                    },
                })),
                "Dry runs: `outcome`, and for a failure `code`, `message`, `detail`, `file`, `version`, or the \
                 files `not_run`; quarantined targets: the `dry_run_wave` that found them; a lock timeout: \
                 `blockers`, the sessions it waited for; dry runs that ran: `size_bytes` and `tables` (sizes of \
                 the relations the pending files name) and `migrate_ms`.",
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
    let role = json!({ "type": "string", "enum": ["viewer", "resolver", "operator", "admin", "publisher"] });
    schemas.insert(
        "NewToken".into(),
        closed(
            &["name", "role"],
            json!({
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 63,
                    "pattern": "^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$",
                },
                "role": role,
                "expires_in": described(
                    nullable(json!({ "type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)?$" })),
                    "How long the token lives (`90d`, `12h`); absent: no expiry.",
                ),
            }),
        ),
    );
    schemas.insert(
        "CreatedToken".into(),
        object(json!({
            "name": string(),
            "role": role,
            "token": described(string(), "The bearer token. Shown only in this answer."),
            "expires_at": nullable(date_time()),
        })),
    );
    schemas.insert("TokenInfo".into(), object(json!({
            "name": string(),
            "role": role,
            "created_by": described(string(), "The identity that created it (`root`, `token:<name>`)."),
            "created_at": date_time(),
            "expires_at": nullable(date_time()),
            "last_used_at": nullable(date_time()),
        })));
    schemas.insert(
        "TokenList".into(),
        object(json!({
            "items": { "type": "array", "items": schema_ref("TokenInfo") },
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
    super::sets::schemas(&mut schemas);
    Value::Object(schemas)
}

/// Request body examples (also the first requests schemathesis sends).
pub(super) fn examples() -> [(&'static str, Value); 8] {
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
        (
            "NewToken",
            json!({ "name": "grafana", "role": "viewer", "expires_in": "90d" }),
        ),
    ]
}
