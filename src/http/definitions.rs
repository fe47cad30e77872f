//! `PUT /v1/tenants/{slug}`: a tenant definition (tenants as code, the same document
//! `drover apply` reads), as JSON or YAML by content type. The registry creates the tenant
//! or makes it match, in one transaction ([`crate::registry::Registry::put`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::openapi as doc;
use super::{ApiError, Caller};
use crate::manifest::{parse_one, BodyError, Definition, Problem};
use crate::registry::Tenant;
use crate::state::AppState;

/// Media types read as YAML; `application/json` (and `+json`) as JSON.
pub const YAML_TYPES: &[&str] = &["application/yaml", "application/x-yaml", "text/yaml"];

/// `PUT /v1/tenants/{slug}` → 201 created, 200 updated or unchanged.
#[utoipa::path(
    put, path = "/tenants/{slug}", tag = "tenants", operation_id = "putTenant",
    summary = "Declare a tenant: create it, or make it match the definition",
    description = "Tenants as code: the body is a tenant definition, the document `drover apply` reads, as JSON or \
        YAML. `metadata.name` must equal the slug in the path (422 `name_mismatch` otherwise). Creates the tenant \
        (201, `created` event) or changes only what differs (200, an `updated` event listing the changed fields); \
        a definition the tenant already matches writes nothing. Absent optional fields are cleared. `spec.status` \
        drives suspend and resume; a status the tenant cannot reach with one allowed transition is 409 \
        `illegal_transition`. 422 `invalid_definition` lists every problem in `error.problems`, with the line \
        for YAML bodies.",
    params(doc::SlugPath, doc::ActorHeader),
    request_body(content((Definition = "application/json"), (Definition = "application/yaml"),
        (Definition = "application/x-yaml"), (Definition = "text/yaml"))),
    responses((status = 200, description = "The tenant matches the definition (changed or not).", body = Tenant),
        (status = 201, description = "The tenant was created.", body = Tenant), (status = 409, response = doc::E409))
)]
pub async fn put(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let body = body?;
    let definition = decode(&headers, &body)?;
    let path_slug = slug.to_ascii_lowercase();
    if definition.name() != path_slug {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name_mismatch",
            format!(
                "metadata.name '{}' does not match the slug in the path '{path_slug}'",
                definition.name()
            ),
        ));
    }
    let (tenant, created) = s.registry.put(&definition.declared(), &actor).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(tenant)))
}

/// The body as a valid definition, or every problem with it.
fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Definition, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_body",
            format!(
                "send the definition as application/json or YAML ({})",
                YAML_TYPES.join(", ")
            ),
        )
    };
    match media.as_deref() {
        Some("application/json") => decode_json(body),
        Some(m) if m.starts_with("application/") && m.ends_with("+json") => decode_json(body),
        Some(m) if YAML_TYPES.contains(&m) => decode_yaml(body),
        _ => Err(unsupported()),
    }
}

fn decode_json(body: &[u8]) -> Result<Definition, ApiError> {
    let mut definition: Definition = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => invalid(vec![json!({ "line": e.line(), "message": e.to_string() })]),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string())
            }
        }
    })?;
    definition.normalize();
    let problems = definition.problems();
    if problems.is_empty() {
        return Ok(definition);
    }
    Err(invalid(
        problems
            .into_iter()
            .map(|p| json!({ "field": p.field, "message": p.message }))
            .collect(),
    ))
}

fn decode_yaml(body: &[u8]) -> Result<Definition, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the YAML body is not UTF-8",
        )
    })?;
    parse_one(text).map_err(|e| match e {
        BodyError::Syntax(p) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            match p.line {
                Some(l) => format!("line {l}: {}", p.message),
                None => p.message,
            },
        ),
        BodyError::Invalid(problems) => invalid(problems.iter().map(problem_json).collect()),
    })
}

fn problem_json(p: &Problem) -> Value {
    let mut v = json!({ "message": p.message });
    if let Some(f) = &p.field {
        v["field"] = json!(f);
    }
    if let Some(l) = p.line {
        v["line"] = json!(l);
    }
    v
}

/// 422 listing every problem; the message repeats them for people.
fn invalid(problems: Vec<Value>) -> ApiError {
    let message = problems
        .iter()
        .map(|p| {
            let mut s = String::new();
            if let Some(l) = p["line"].as_u64() {
                s.push_str(&format!("line {l}: "));
            }
            if let Some(f) = p["field"].as_str() {
                s.push_str(&format!("{f}: "));
            }
            s.push_str(p["message"].as_str().unwrap_or_default());
            s
        })
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_definition",
        message,
    )
    .with("problems", Value::Array(problems))
}
