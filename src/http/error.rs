//! The one place errors become HTTP responses: `{"error": {"code", "message", "field"?}}`.
//! The policy (which enum lives where, what `is_retryable` means, which error becomes which
//! status) is docs/errors.md; a new variant or code gets its line there too.
//!
//! 4xx messages are written for the caller; 5xx bodies never carry internals (they may
//! mention hosts or SQL), the cause goes to the log instead.

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::registry::RegistryError;
use crate::waves::WaveError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    /// One more member of the error object (e.g. `suspended_reason`).
    extra: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    /// An error with a status, a stable machine-readable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            extra: None,
        }
    }

    /// 401 with the standard challenge.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token (Authorization: Bearer <token>)",
        )
    }

    /// 401 for a named token past its expiry.
    pub fn token_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token has expired; ask an admin for a new one (drover tokens create)",
        )
    }

    /// 403: authenticated, but the role does not grant the route. `needed` lists the
    /// roles any of which would (`required_role` is the first).
    pub fn forbidden(needed: &[crate::access::Role], have: crate::access::Role) -> Self {
        let names: Vec<&str> = needed.iter().map(|r| r.as_str()).collect();
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the {} role; the token's role is {have}",
                names.join(" or ")
            ),
        )
        .with(
            "required_role",
            json!(names.first().copied().unwrap_or("admin")),
        )
    }

    /// 404 for routes that do not exist.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; see /openapi.json",
        )
    }

    /// Adds one more member to the error object.
    pub fn with(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.extra = Some((key, value));
        self
    }

    /// Names the offending field in the body.
    pub fn set_field(&mut self, field: &'static str) {
        self.field = Some(field);
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The status and the message written for the caller (the web console shows them on a
    /// page; 5xx messages carry no internals, as in the JSON body).
    pub fn status_and_message(&self) -> (StatusCode, String) {
        (self.status, self.message.clone())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(f) = self.field {
            body["error"]["field"] = json!(f);
        }
        if let Some((key, value)) = self.extra {
            body["error"][key] = value;
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        resp
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let (status, code) = match &e {
            RegistryError::Invalid { field, message } => {
                return ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "invalid_field",
                    message: format!("{field}: {message}"),
                    field: Some(field),
                    extra: None,
                };
            }
            RegistryError::SlugReserved { .. } => {
                let mut err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "slug_reserved",
                    e.to_string(),
                );
                err.set_field("slug");
                return err;
            }
            RegistryError::DuplicateSlug(_) => (StatusCode::CONFLICT, "duplicate_slug"),
            RegistryError::DuplicateDbName(_) => (StatusCode::CONFLICT, "duplicate_db_name"),
            RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, "tenant_not_found"),
            RegistryError::IllegalTransition { .. } => (StatusCode::CONFLICT, "illegal_transition"),
            RegistryError::Unavailable(_) => (StatusCode::NOT_IMPLEMENTED, "not_available"),
            RegistryError::Db(db) => {
                // SQLSTATE class 22 (data exception: a NUL byte, an out-of-range number) is
                // the caller's input that PostgreSQL refused, not a server failure.
                if let crate::db::DbError::Postgres(pg) = &db {
                    if let Some(d) = pg
                        .as_db_error()
                        .filter(|d| d.code().code().starts_with("22"))
                    {
                        return ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_input",
                            d.message().to_string(),
                        );
                    }
                }
                tracing::error!(error = %db, retryable = db.is_retryable(), "control database error");
                return if db.is_retryable() {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "control_db_unavailable",
                        "control database unavailable; retry shortly",
                    )
                } else {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error; the cause is in drover's log",
                    )
                };
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::events::EventsError> for ApiError {
    fn from(e: crate::events::EventsError) -> Self {
        use crate::events::EventsError as E;
        let message = e.to_string();
        match e {
            E::Invalid { field, .. } => {
                let mut err =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message);
                err.set_field(field);
                err
            }
            E::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", message),
            E::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, "duplicate_webhook", message),
            E::TooManyStreams(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", message)
            }
            E::TooManyStreamsForToken(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams_for_token",
                message,
            ),
            E::Db(db) => RegistryError::Db(db).into(),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(db: crate::db::DbError) -> Self {
        RegistryError::Db(db).into()
    }
}

impl From<crate::access::AccessError> for ApiError {
    fn from(e: crate::access::AccessError) -> Self {
        use crate::access::AccessError as A;
        match e {
            A::Invalid { field, message } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_field",
                message: format!("{field}: {message}"),
                field: Some(field),
                extra: None,
            },
            A::Duplicate(_) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_token", e.to_string())
            }
            A::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "token_not_found", e.to_string())
            }
            // Not logged per request (a flood would flood the log): the refresh task says it.
            A::Stale => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "control_db_unavailable",
                "control database unavailable; retry shortly",
            ),
            A::Db(db) => db.into(),
        }
    }
}

impl From<WaveError> for ApiError {
    fn from(e: WaveError) -> Self {
        match e {
            WaveError::Invalid { field, message } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_field",
                message: format!("{field}: {message}"),
                field: Some(field),
                extra: None,
            },
            WaveError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "wave_not_found", e.to_string())
            }
            WaveError::IllegalState { .. } => {
                ApiError::new(StatusCode::CONFLICT, "illegal_transition", e.to_string())
            }
            WaveError::Overlap(_) => {
                ApiError::new(StatusCode::CONFLICT, "wave_overlap", e.to_string())
            }
            WaveError::LintFailed(findings) => {
                let shown = serde_json::to_value(&findings).unwrap_or_default();
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "lint_failed",
                    WaveError::LintFailed(findings).to_string(),
                )
                .with("findings", shown)
            }
            WaveError::Migrations(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_migrations",
                e.to_string(),
            ),
            WaveError::Registry(r) => r.into(),
            WaveError::Db(db) => db.into(),
        }
    }
}

impl From<crate::schedule::ScheduleError> for ApiError {
    fn from(e: crate::schedule::ScheduleError) -> Self {
        use crate::schedule::ScheduleError;
        match e {
            ScheduleError::Invalid { field, .. } => {
                let mut a = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    e.to_string(),
                );
                a.set_field(field);
                a
            }
            ScheduleError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "schedule_not_found", e.to_string())
            }
            ScheduleError::Duplicate(_) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_schedule", e.to_string())
            }
            ScheduleError::BrokenTemplate { .. } => {
                let mut a = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_template",
                    e.to_string(),
                );
                a.set_field("template");
                a
            }
            ScheduleError::Wave(w) => w.into(),
            ScheduleError::Db(db) => db.into(),
        }
    }
}

impl From<crate::sets::PublishedError> for ApiError {
    fn from(e: crate::sets::PublishedError) -> Self {
        use crate::migrate::SetError;
        use crate::sets::PublishedError as P;
        let e = match e {
            P::Db(db) => return db.into(),
            other => other,
        };
        let invalid = |code, field| ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message: e.to_string(),
            field: Some(field),
            extra: None,
        };
        match &e {
            P::Invalid { field, .. } => invalid("invalid_field", field),
            P::Set(SetError::BadName { file, .. }) | P::FileTooLarge { file, .. } => {
                let file = json!(file);
                let code = if matches!(e, P::Set(_)) {
                    "invalid_migrations"
                } else {
                    "file_too_large"
                };
                invalid(code, "files").with("file", file)
            }
            P::Set(_) => invalid("invalid_migrations", "files"),
            P::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "set_not_found", e.to_string()),
            P::LabelTaken { set_id, .. } => {
                let owner = json!(set_id);
                ApiError::new(StatusCode::CONFLICT, "label_taken", e.to_string())
                    .with("set_id", owner)
            }
            P::InUse {
                waves, schedules, ..
            } => {
                let used = json!({ "waves": waves, "schedules": schedules });
                ApiError::new(StatusCode::CONFLICT, "set_in_use", e.to_string())
                    .with("used_by", used)
            }
            P::Corrupt(_) => {
                tracing::error!(error = %e, "migration set damaged");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the cause is in drover's log",
                )
            }
            P::Db(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ),
        }
    }
}

impl From<crate::provision::ProvisionError> for ApiError {
    fn from(e: crate::provision::ProvisionError) -> Self {
        match e {
            crate::provision::ProvisionError::Lookup(r) => r.into(),
            other => ApiError::from_provision(&other),
        }
    }
}

impl ApiError {
    /// A (de)provisioning failure, also when only a shared reference is at hand (a job's
    /// result seen by several waiting requests).
    pub fn from_provision(e: &crate::provision::ProvisionError) -> Self {
        use crate::provision::ProvisionError as P;
        match e {
            P::Invalid { field, message } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_field",
                message: format!("{field}: {message}"),
                field: Some(field),
                extra: None,
            },
            P::NotConfigured => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_available", e.to_string())
            }
            P::Busy => ApiError::new(StatusCode::CONFLICT, "provisioning_busy", e.to_string()),
            P::CallbackToken => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
            P::NoServer { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_provisioning_server",
                e.to_string(),
            ),
            P::UnknownServer { .. } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_field",
                message: format!("server: {e}"),
                field: Some("server"),
                extra: None,
            },
            P::Foreign { .. } => ApiError::new(StatusCode::CONFLICT, "name_taken", e.to_string()),
            P::NothingToDrop { .. } => {
                ApiError::new(StatusCode::CONFLICT, "nothing_to_drop", e.to_string())
            }
            P::Config(_) => {
                tracing::error!(error = %e, "provisioning misconfigured");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the cause is in drover's log",
                )
            }
            // Admin-only endpoints: the step and its cause are what the operator needs,
            // and the same text is in the tenant's `error` event.
            other => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provisioning_failed",
                other.to_string(),
            )
            .with("step", json!(other.step())),
        }
    }
}

impl From<crate::resolve::ResolveError> for ApiError {
    fn from(e: crate::resolve::ResolveError) -> Self {
        use crate::resolve::ResolveError;
        match &e {
            // Not retryable: the stored reference must be changed. The message names the
            // reference and the rule, which are not secrets.
            ResolveError::SecretUnavailable(crate::secrets::SecretError::OutOfScope { .. }) => {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secret_ref_refused",
                    e.to_string(),
                )
            }
            ResolveError::SecretUnavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "secret_unavailable",
                e.to_string(),
            ),
            // The cause (hosts, SQL states) is for the log, not for the caller.
            ResolveError::ControlDb(_) => {
                tracing::warn!(error = %e, "resolution: control database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "control_db_unavailable",
                    "control database unavailable; retry shortly",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match &r {
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        // serde's message names the field ("unknown field `x`", "missing field `slug`").
        ApiError::invalid_body(status, r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let status = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::invalid_body(status, r.body_text())
    }
}

impl ApiError {
    /// A body that could not be read or decoded. axum's text for one over the limit names
    /// no limit, so the message says which setting it is.
    fn invalid_body(status: StatusCode, text: String) -> Self {
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than this route accepts (max_body_bytes; \
             max_set_bytes for POST /v1/migration-sets)"
                .to_string()
        } else {
            text
        };
        ApiError::new(status, "invalid_body", message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            r.body_text(),
        )
    }
}
