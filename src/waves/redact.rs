//! What a viewer reads of a wave target's error.
//!
//! A target keeps the tenant server's own words (`error`, and for dry runs `detail.message`
//! and `detail.detail`): `Failing row contains (…)` and `invalid input syntax for type
//! integer: "…"` quote row values, which only operators and admins may read. Beside them
//! the target stores the public form ([`MigrateError::public`]: the migration and the
//! SQLSTATE with its condition name) in `detail.public_error`, written with the error.
//! Viewers read that instead. Rows written before the public form was stored are redacted
//! from their text, failing closed: an error of a kind that may quote the server and whose
//! shape is not recognised is replaced by its kind.

use serde_json::{json, Value};

use crate::access::Role;
use crate::migrate::{sqlstate, MigrateError};

/// The key of `wave_targets.detail` holding the error as viewers read it.
pub const PUBLIC_ERROR: &str = "public_error";

/// Keys of a dry run's `detail` that hold the server's words.
const SERVER_WORDS: [&str; 2] = ["message", "detail"];

/// Who reads a wave: operators and admins read the server's words, viewers the public form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Operators,
    Viewers,
}

impl Audience {
    /// Operators and admins read everything; every other role the public form.
    pub fn of(role: Role) -> Audience {
        if role.grants(Role::Operator) {
            Audience::Operators
        } else {
            Audience::Viewers
        }
    }
}

/// `detail` (an object or none) with the public form of `err` beside what it holds.
pub fn with_public_error(detail: Option<Value>, err: &MigrateError) -> Value {
    let mut detail = match detail {
        Some(Value::Object(m)) => Value::Object(m),
        _ => json!({}),
    };
    detail[PUBLIC_ERROR] = Value::String(err.public());
    detail
}

/// The stored public form in `detail`, if the row has one.
pub fn stored_public(detail: Option<&Value>) -> Option<&str> {
    detail?.get(PUBLIC_ERROR)?.as_str()
}

/// The error `error` of kind `kind` as `audience` reads it; `public` is the stored public
/// form when the row has one.
pub fn error_for(
    audience: Audience,
    kind: Option<&str>,
    error: &str,
    public: Option<&str>,
) -> String {
    match (audience, public) {
        (Audience::Operators, _) => error.to_string(),
        (Audience::Viewers, Some(p)) => p.to_string(),
        (Audience::Viewers, None) => public_of_text(kind, error),
    }
}

/// A dry run's `detail` as `audience` reads it: viewers lose the server's message and
/// DETAIL (the public form stays).
pub fn detail_for(audience: Audience, detail: Option<Value>) -> Option<Value> {
    match (audience, detail) {
        (Audience::Viewers, Some(Value::Object(mut m))) => {
            for key in SERVER_WORDS {
                m.remove(key);
            }
            Some(Value::Object(m))
        }
        (_, d) => d,
    }
}

/// The public form of a stored error without a stored public form. `V<n>: <SQLSTATE>: …`
/// (a statement's failure, [`MigrateError::Sql`] and [`MigrateError::LockTimeout`]) keeps
/// the migration, the SQLSTATE's name and the blockers; other kinds that can quote the
/// server (`sql`, `timeout`, `needs_attention`) become their kind; the rest are drover's
/// own words (connections, locks, drift, skips) and stay.
fn public_of_text(kind: Option<&str>, error: &str) -> String {
    if let Some((version, code, rest)) = statement_failure(error) {
        let blocked = match rest.find("; blocked by ") {
            Some(i) if code == "55P03" => &rest[i..],
            _ => "",
        };
        return format!("V{version}: {}{blocked}", sqlstate::describe(code));
    }
    match kind {
        Some(k @ ("sql" | "timeout")) => {
            format!("{k} error (the server's message is for operators)")
        }
        Some("needs_attention") => "needs attention (the reason is for operators)".to_string(),
        _ => error.to_string(),
    }
}

/// `V<version>: <SQLSTATE>: <the rest>` split, or none.
fn statement_failure(error: &str) -> Option<(i32, &str, &str)> {
    let (version, rest) = error.strip_prefix('V')?.split_once(": ")?;
    let version = version.parse().ok()?;
    let (code, rest) = rest.split_once(": ")?;
    let sqlstate = code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    sqlstate.then_some((version, code, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::Blocker;

    fn failures() -> Vec<MigrateError> {
        vec![
            MigrateError::Sql {
                version: 3,
                code: "23502".into(),
                message: "null value in column \"note\" violates not-null constraint".into(),
                detail: Some("Failing row contains (carol@example.com, null).".into()),
            },
            MigrateError::Sql {
                version: 1,
                code: "22P02".into(),
                message: "invalid input syntax for type integer: \"carol@example.com\"".into(),
                detail: None,
            },
            MigrateError::LockTimeout {
                version: 2,
                message: "canceling statement due to lock timeout".into(),
                blockers: vec![Blocker {
                    pid: 7,
                    application_name: "psql".into(),
                    user: "app".into(),
                    state: "idle in transaction".into(),
                    xact_age_ms: Some(5),
                    query: "SELECT $1".into(),
                }],
            },
            MigrateError::Connect("connection refused".into()),
            MigrateError::Drift {
                version: 2,
                why: "V2 was edited".into(),
            },
        ]
    }

    #[test]
    fn viewers_read_the_stored_public_form_and_operators_the_servers_words() {
        for err in failures() {
            let detail = with_public_error(None, &err);
            let (full, kind) = (err.to_string(), err.kind().as_str());
            let public = stored_public(Some(&detail));
            assert_eq!(
                error_for(Audience::Viewers, Some(kind), &full, public),
                err.public()
            );
            assert_eq!(
                error_for(Audience::Operators, Some(kind), &full, public),
                full
            );
        }
    }

    #[test]
    fn rows_without_a_public_form_are_redacted_from_their_text_like_the_public_form() {
        for err in failures() {
            let read = error_for(
                Audience::Viewers,
                Some(err.kind().as_str()),
                &err.to_string(),
                None,
            );
            assert_eq!(read, err.public());
            assert!(!read.contains("carol"), "{read}");
        }
    }

    #[test]
    fn an_unrecognised_error_of_a_kind_that_quotes_the_server_is_replaced_by_its_kind() {
        let needs = MigrateError::NeedsAttention {
            version: 4,
            why: "statement 2 of 3 failed".into(),
            server: Some("23505: Key (email)=(carol@example.com) already exists.".into()),
        };
        let read = error_for(
            Audience::Viewers,
            Some("needs_attention"),
            &needs.to_string(),
            None,
        );
        assert!(!read.contains("carol"), "{read}");
        let read = error_for(
            Audience::Viewers,
            Some("sql"),
            "carol@example.com broke it",
            None,
        );
        assert!(!read.contains("carol"), "{read}");
    }

    #[test]
    fn a_dry_runs_detail_loses_the_servers_words_for_viewers_only() {
        let detail = json!({"code": "23502", "message": "m carol", "detail": "d carol", "file": "V1__a.sql"});
        let viewers = detail_for(Audience::Viewers, Some(detail.clone())).unwrap();
        assert_eq!(viewers, json!({"code": "23502", "file": "V1__a.sql"}));
        assert_eq!(
            detail_for(Audience::Operators, Some(detail.clone())),
            Some(detail)
        );
    }
}
