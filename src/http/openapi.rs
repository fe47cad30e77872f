//! `GET /openapi.json`: the OpenAPI 3.1 document, generated. Operations come from the
//! handlers' `#[utoipa::path]` attributes and schemas from the types' `ToSchema` derives;
//! the router ([`super::api`]) is built from the same `routes!` lists, so a route cannot be
//! served without being documented. This file holds what no handler or type owns: the root
//! (info, tags, security schemes), the shared error body and responses, the path and header
//! parameters, and [`finish`], which gives every operation the errors all of its kind can
//! answer and its `x-drover-role` from [`crate::access::ROUTE_ROLES`].
#![allow(dead_code)] // The parameter and body types below exist for their schemas only.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::access::{needed_role, Needed, Role};

#[derive(OpenApi)]
#[openapi(
    info(title = "drover", license(name = "Apache-2.0")),
    tags(
        (name = "tenants", description = "The tenant registry: CRUD, status changes, events."),
        (name = "waves", description = "Migration waves across the fleet, and the fleet's schema versions."),
        (name = "drift", description = "Schema drift: each tenant's real schema fingerprinted, the fleet grouped into cohorts, differences explained."),
        (name = "schedules", description = "Scheduled waves and the replicas' leader."),
        (name = "events", description = "The fleet's event feed, its live stream, and signed webhooks."),
        (name = "resolve", description = "Slug → DSN resolution for application servers."),
        (name = "migration-sets", description = "Tenant migration sets published to the control DB: what every replica runs."),
        (name = "tokens", description = "Named API tokens with roles (viewer, resolver, operator, admin, publisher)."),
        (name = "operations", description = "Liveness, readiness, metrics, this document."),
    ),
    security(("adminToken" = [])),
    components(schemas(ErrorBody)),
)]
pub struct Root;

/// The handler: the document, serialized once.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)))]
pub async fn document() -> impl IntoResponse {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| spec().to_string());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}

/// The document: the router's routes with their operations, finished.
pub fn spec() -> Value {
    // The body limit only shapes the router, not the document.
    let (_, mut doc) = super::api(0).split_for_parts();
    finish(&mut doc);
    let mut json = serde_json::to_value(doc).unwrap_or_default();
    link_keys(&mut json);
    json
}

/// utoipa 5 writes a link's `operationId` as `operation_id` (its `Link` lacks the camelCase
/// rename the other objects have); OpenAPI and schemathesis read `operationId`.
fn link_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(links) = m.get_mut("links").and_then(Value::as_object_mut) {
                for l in links.values_mut().filter_map(Value::as_object_mut) {
                    if let Some(id) = l.remove("operation_id") {
                        l.insert("operationId".into(), id);
                    }
                }
            }
            m.values_mut().for_each(link_keys);
        }
        Value::Array(a) => a.iter_mut().for_each(link_keys),
        _ => {}
    }
}

/// Every error body: `{"error": {"code", "message", "field"?, ...}}`.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable.
    code: String,
    /// For people.
    message: String,
    /// The offending request field, when there is one.
    field: Option<String>,
    /// Only on 423 from /v1/resolve: why the tenant is suspended.
    suspended_reason: Option<String>,
    /// Only on 403 `forbidden`: the role the operation needs.
    required_role: Option<Role>,
    /// Only on 502 `provisioning_failed`: the step that failed.
    step: Option<String>,
    /// Only on a refused migration-set push: the file at fault.
    file: Option<String>,
    /// Only with `label_taken`: the set the label names.
    set_id: Option<String>,
    /// Only with `set_in_use`: the unfinished waves and the schedules using the set.
    used_by: Option<UsedBy>,
    /// Only with `lint_failed` (POST /v1/waves): the error findings not acknowledged.
    findings: Option<Vec<crate::lint::Finding>>,
    /// Only with `invalid_definition` (PUT /v1/tenants/{slug}): every problem.
    problems: Option<Vec<DefinitionProblem>>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct UsedBy {
    waves: Vec<String>,
    schedules: Vec<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct DefinitionProblem {
    /// The field's path in the definition, e.g. `spec.database.port`.
    field: Option<String>,
    /// 1-based line in the body, where the parser gives one.
    line: Option<i64>,
    message: String,
}

/// The shared error responses, each a `ToResponse` type operations name
/// (`(status = 404, response = E404)`) and a component `#/components/responses/<status>`.
macro_rules! errors {
    ($($ty:ident $code:literal $description:literal,)*) => {
        $(
            #[doc = $description]
            pub struct $ty;
            impl<'r> utoipa::ToResponse<'r> for $ty {
                fn response() -> (&'r str, RefOr<Response>) {
                    ($code, RefOr::T(error_response($code, $description)))
                }
            }
        )*
        const ERRORS: &[(&str, &str)] = &[$(($code, $description)),*];
    };
}

errors! {
    E400 "400" "The body is not valid JSON (`invalid_body`).",
    E401 "401" "Missing or wrong bearer token (`unauthorized`).",
    E403 "403" "The token's role does not grant this operation (`forbidden`, with `required_role`).",
    E404 "404" "No such tenant, wave, schedule, token, webhook or migration set (`tenant_not_found`, \
        `wave_not_found`, `schedule_not_found`, `token_not_found`, `webhook_not_found`, `set_not_found`, `scan_not_found`), or a tenant without a schema \
        fingerprint yet (`not_scanned`).",
    E409 "409" "A conflict: a live duplicate slug or db_name (`duplicate_slug`, `duplicate_db_name`), a status \
        change the state machine does not allow (`illegal_transition`), a tenant in an unfinished wave \
        (`wave_overlap`), a duplicate schedule, token or webhook name, a tick already handled (`already_fired`), \
        a role or database drover did not create for this tenant (`name_taken`), another runner provisioning the \
        tenant (`provisioning_busy`), nothing to drop (`nothing_to_drop`), a migration-set label naming other \
        files (`label_taken`, with `set_id`), a migration set still in use (`set_in_use`, with `used_by`).",
    E413 "413" "The body is larger than `max_body_bytes` (`max_set_bytes` for `POST /v1/migration-sets`) (`invalid_body`).",
    E415 "415" "The body is not declared `Content-Type: application/json` (`invalid_body`).",
    E422 "422" "A field is invalid (`invalid_field`, with `field`), a new tenant's slug is reserved (`slug_reserved`), the body does not fit the schema \
        (`invalid_body`), a query parameter or header is invalid (`invalid_query`), the tenant migration files are \
        broken (`invalid_migrations`, with `file` when one is named), a pushed file is too large (`file_too_large`), \
        lint errors are not acknowledged (`lint_failed`, with `findings`), or a schedule's stored template no \
        longer parses (`invalid_template`).",
    E429 "429" "This token already holds `stream_max_per_token` open event streams on this replica \
        (`too_many_streams_for_token`); close one first.",
    E500 "500" "An internal error (`internal`; the cause is in drover's log), or a stored secret reference \
        outside the allowed scope (`secret_ref_refused`).",
    E501 "501" "The request needs a feature this daemon is not configured for (`not_available`).",
    E502 "502" "A provisioning step failed on the tenant's server or secret backend (`provisioning_failed`, \
        with `step`); the same text is in the tenant's `error` event.",
    E503 "503" "The control database is unavailable (`control_db_unavailable`); retry after `Retry-After` seconds.",
}

/// A shared error response: the error body, and the headers drover sends with it.
fn error_response(code: &str, description: &str) -> Response {
    let json = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Error")))
        .build();
    let mut r = ResponseBuilder::new()
        .description(description)
        .content("application/json", json);
    let header = |t: Type, d: &str| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(t))
            .description(Some(d))
            .build()
    };
    if code == "401" {
        r = r.header("WWW-Authenticate", header(Type::String, "`Bearer`."));
    }
    if code == "503" {
        r = r.header("Retry-After", header(Type::Integer, "Seconds to wait."));
    }
    r.build()
}

/// Errors every operation under `/v1` can answer, and those of every JSON body.
const AUTHED: &[&str] = &["401", "403", "500", "503"];
const WITH_BODY: &[&str] = &["400", "413", "415", "422"];

/// What the derive cannot say: the description, the security schemes, the shared
/// responses, and per operation its common errors, its security and `x-drover-role(s)`.
fn finish(doc: &mut Document) {
    doc.info.description = Some(DESCRIPTION.into());
    stream_parameters(doc);
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |d: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(d))
                .build(),
        )
    };
    components.add_security_scheme("adminToken", bearer(ADMIN_TOKEN));
    components.add_security_scheme("resolverToken", bearer(RESOLVER_TOKEN));
    components.add_security_scheme("callbackToken", bearer(CALLBACK_TOKEN));
    for (code, description) in ERRORS {
        let r = RefOr::T(error_response(code, description));
        components.responses.insert(code.to_string(), r);
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op.as_mut() else { continue };
            let needed = needed_role(method, path);
            if needed == Needed::Public {
                op.security = Some(Vec::new());
                continue;
            }
            if needed == Needed::Callback {
                let scheme = utoipa::openapi::security::SecurityRequirement::new(
                    "callbackToken",
                    Vec::<String>::new(),
                );
                op.security = Some(vec![scheme]);
                for code in ["401", "500", "503"]
                    .into_iter()
                    .chain(WITH_BODY.iter().copied())
                {
                    let shared = RefOr::Ref(Ref::from_response_name(code));
                    op.responses.responses.entry(code.into()).or_insert(shared);
                }
                // No API role: the request's callback token is the credential.
                let ext = ExtensionsBuilder::new().add("x-drover-role", "callback");
                op.extensions = Some(ext.build());
                continue;
            }
            let mut common = AUTHED.to_vec();
            if op.request_body.is_some() {
                common.extend(WITH_BODY);
            }
            for code in common {
                let shared = RefOr::Ref(Ref::from_response_name(code));
                op.responses.responses.entry(code.into()).or_insert(shared);
            }
            let roles: Vec<&str> = needed.roles().iter().map(|r| r.as_str()).collect();
            let mut ext = ExtensionsBuilder::new().add("x-drover-role", roles[0]);
            if roles.len() > 1 {
                ext = ext.add("x-drover-roles", roles);
            }
            op.extensions = Some(ext.build());
        }
    }
}

/// The stream shares the feed's query type but refuses its paging (`limit`, `cursor`: 422;
/// it resumes with `Last-Event-ID`), so they are not offered there.
fn stream_parameters(doc: &mut Document) {
    let stream = doc.paths.paths.get_mut("/v1/events/stream");
    if let Some(params) = stream.and_then(|i| i.get.as_mut()?.parameters.as_mut()) {
        params.retain(|p| p.name != "limit" && p.name != "cursor");
    }
}

// ---------------------------------------------------------------------------------------
// Parameters several operations share.

macro_rules! path_param {
    ($ty:ident $name:literal $description:literal) => {
        #[derive(IntoParams)]
        #[into_params(names($name), parameter_in = Path)]
        pub struct $ty(
            #[doc = $description]
            #[param(min_length = 1)]
            String,
        );
    };
}
path_param!(SlugPath "slug" "The tenant's slug (case-insensitive).");
path_param!(ScheduleName "name" "The schedule's name.");
path_param!(WebhookName "name" "The webhook's name.");
path_param!(TokenName "name" "The token's name.");
path_param!(SetId "id" "A set's id (64 hex digits); GET also takes one of its labels or `latest`.");

/// `{id}` of a wave.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct WaveId(
    /// The wave's id.
    uuid::Uuid,
);

/// `{id}` of a schema drift scan.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct ScanId(
    /// The scan's id.
    uuid::Uuid,
);

/// The optional `X-Drover-Actor` header of every change.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ActorHeader {
    /// Whom the caller acts for, recorded as `on_behalf_of` in the events' payload; the
    /// events' actor is always the token's identity (`root` or `token:<name>`).
    #[param(
        rename = "X-Drover-Actor",
        max_length = 96,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    actor: Option<String>,
}

const ADMIN_TOKEN: &str = "The root token (`DROVER_ADMIN_TOKEN` or `DROVER_ADMIN_TOKEN_REF`, role admin), \
    or a named token from `POST /v1/tokens`, whose role must grant the operation (see each operation's \
    `x-drover-role`; 403 `forbidden` names the role needed).";
const RESOLVER_TOKEN: &str =
    "The resolver token (`DROVER_RESOLVER_TOKEN` or `DROVER_RESOLVER_TOKEN_REF`) \
    or a named token with role resolver, for application servers: accepted by /v1/resolve only.";

const CALLBACK_TOKEN: &str =
    "The single-use callback token of an external provisioner's request (its body's `callback.token`): \
    accepted once, by POST /v1/tenants/{slug}/provisioning for that tenant only.";

const DESCRIPTION: &str = "Tenant registry, slug → DSN resolution and canary-first schema \
migration waves for database-per-tenant PostgreSQL fleets.\n\n\
Authentication: `Authorization: Bearer <token>`. `/healthz`, `/readyz`, `/metrics` and \
`/openapi.json` need no token. Everything under `/v1` needs a token whose role grants the \
operation (each operation's `x-drover-role`): `viewer` reads everything but \
`/v1/resolve`; `resolver` resolves only; `operator` is viewer plus wave and schedule \
actions and tenant suspend/resume; `publisher` (CI) pushes and reads migration sets only; \
`admin` (also the root token of the configuration) may do everything. A token without the \
right gets 403 `forbidden` with `required_role`. The one exception is \
`POST /v1/tenants/{slug}/provisioning` (`x-drover-role: callback`): an external provisioner's \
single-use callback token, and no API token, is accepted there.\n\n\
Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`; `code` is stable and meant \
for programs, `message` for people, `field` names the offending request field when there \
is one. 5xx bodies never carry internals (the cause is in drover's log). A 503 under `/v1` \
carries `Retry-After`.\n\n\
Every change writes its tenant event in the same transaction. Its actor is the token's \
identity (`root` or `token:<name>`); an optional `X-Drover-Actor: alice` header never \
replaces it and is recorded as `on_behalf_of` in the event's payload.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_definition_schema_names_the_api_version_and_kind_the_parser_wants() {
        let doc = super::spec();

        let schemas = &doc["components"]["schemas"];

        assert_eq!(
            schemas["ApiVersion"]["enum"],
            json!([crate::manifest::API_VERSION])
        );
        assert_eq!(schemas["Kind"]["enum"], json!([crate::manifest::KIND]));
    }

    #[test]
    fn the_feed_limit_is_documented_with_the_bounds_the_feed_enforces() {
        use crate::events::feed::{DEFAULT_LIMIT, MAX_LIMIT};
        let doc = super::spec();

        let params = doc["paths"]["/v1/events"]["get"]["parameters"].as_array();
        let limit = params.into_iter().flatten().find(|p| p["name"] == "limit");

        let schema = &limit.expect("limit")["schema"];
        assert_eq!(schema["maximum"], json!(MAX_LIMIT));
        assert_eq!(schema["default"], json!(DEFAULT_LIMIT));
        let stream = doc["paths"]["/v1/events/stream"]["get"]["parameters"].as_array();
        let names: Vec<_> = stream.into_iter().flatten().map(|p| &p["name"]).collect();
        assert!(!names.contains(&&json!("limit")) && !names.contains(&&json!("cursor")));
    }
}
