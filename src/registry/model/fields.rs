//! Validated field values: everything that reaches SQL or a DSN is checked here first,
//! with an error naming the field. Slugs, database identifiers, hosts, labels, libpq
//! options, free text and the actor recorded on events.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::registry::RegistryError;

/// Slugs that would collide with drover's routes, system databases or well-known names:
/// never given to a tenant, whatever `reserved_slugs` says. Kept in step with the
/// `tenants_slug_not_reserved` constraint in the control schema. Checked when a tenant is
/// created or renamed (`Registry::check_reserved`), not when a slug is parsed: looking up
/// a reserved name finds nothing rather than failing.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "default",
    "drover",
    "healthz",
    "internal",
    "metrics",
    "new",
    "null",
    "postgres",
    "public",
    "readyz",
    "root",
    "system",
    "template0",
    "template1",
    "v1",
    "www",
];

pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid {
        field,
        message: message.into(),
    }
}

/// A tenant slug: `^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`. Whether it may be given to a
/// new tenant is the registry's question (reserved names, aliases of renamed tenants).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Slug(String);

impl Slug {
    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a slug typed by a person for lookup: case is folded, because slugs are
    /// unique regardless of case.
    pub fn for_lookup(s: &str) -> Result<Slug, RegistryError> {
        s.to_ascii_lowercase().parse()
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Slug {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let ok_inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
        let ok_edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let valid = !b.is_empty()
            && b.len() <= 63
            && b.iter().all(ok_inner)
            && ok_edge(&b[0])
            && ok_edge(&b[b.len() - 1]);
        if !valid {
            return Err(invalid(
                "slug",
                "must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
            ));
        }
        Ok(Slug(s.to_string()))
    }
}

/// A PostgreSQL database or role name drover will quote as an identifier:
/// `^[A-Za-z_][A-Za-z0-9_-]*$`, at most 63 bytes (longer names would be truncated by
/// PostgreSQL, so they are refused rather than silently shortened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbIdent(String);

impl DbIdent {
    /// Validates `s` for the named field.
    pub fn parse(field: &'static str, s: &str) -> Result<DbIdent, RegistryError> {
        let b = s.as_bytes();
        let valid = !b.is_empty()
            && b.len() <= 63
            && (b[0].is_ascii_alphabetic() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
        if valid {
            Ok(DbIdent(s.to_string()))
        } else {
            Err(invalid(
                field,
                "must be 1-63 bytes of letters, digits, '_' and '-', starting with a letter or '_'",
            ))
        }
    }

    /// The identifier text (unquoted).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(super) fn validate_host(s: &str) -> Result<(), RegistryError> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:/_-[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "db_host",
            "must be a host name, an IP address or a Unix socket directory (e.g. /cloudsql/project:region:instance)",
        ))
    }
}

pub(super) fn validate_port(p: i32) -> Result<(), RegistryError> {
    if (1..=65535).contains(&p) {
        Ok(())
    } else {
        Err(invalid("db_port", "must be between 1 and 65535"))
    }
}

pub(super) fn validate_text(field: &'static str, s: &str, max: usize) -> Result<(), RegistryError> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        Err(invalid(
            field,
            format!("must be 1-{max} printable characters"),
        ))
    } else {
        Ok(())
    }
}

pub(super) fn validate_secret_ref(s: &str) -> Result<(), RegistryError> {
    s.parse::<crate::secrets::SecretRef>()
        .map(|_| ())
        .map_err(|e| invalid("db_secret_ref", e.to_string()))
}

pub(super) fn validate_email(s: &str) -> Result<(), RegistryError> {
    let ok = s.len() <= 254
        && !s.contains(char::is_whitespace)
        && s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "contact_email",
            "must be an e-mail address like ops@acme.example",
        ))
    }
}

/// A portal URL: `http://` or `https://`, no whitespace, at most 2048 bytes.
pub fn validate_portal_url(field: &'static str, s: &str) -> Result<(), RegistryError> {
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > "https://".len()
        && s.len() <= 2048
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be an http:// or https:// URL of at most 2048 bytes, without spaces",
        ))
    }
}

/// The most labels a tenant may carry.
pub(in crate::registry) const MAX_LABELS: usize = 64;
/// The longest label key, in bytes (all of them ASCII) and the longest value, in characters.
pub(in crate::registry) const MAX_LABEL_KEY: usize = 63;
pub(in crate::registry) const MAX_LABEL_VALUE: usize = 255;
/// What a label key may contain besides ASCII letters and digits.
pub(in crate::registry) const LABEL_KEY_PUNCTUATION: &str = "._/-";

/// Label keys look like Kubernetes label keys; values are short printable strings.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), RegistryError> {
    if labels.len() > MAX_LABELS {
        return Err(invalid("labels", format!("at most {MAX_LABELS} labels")));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_LABEL_KEY
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || LABEL_KEY_PUNCTUATION.contains(c));
        if !key_ok {
            return Err(invalid(
                "labels",
                format!("label key {k:?} must be 1-63 characters of letters, digits, '.', '_', '/', '-'"),
            ));
        }
        if v.chars().count() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
            return Err(invalid(
                "labels",
                format!("label {k:?}: value must be at most 255 printable characters"),
            ));
        }
    }
    Ok(())
}

/// What a libpq option in `db_options` may hold.
#[derive(Debug, Clone, Copy)]
pub(in crate::registry) enum OptionValue {
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A whole number of seconds (`u32`).
    Seconds,
    /// 1-255 bytes of printable text (a path or a name).
    Text,
}

impl OptionValue {
    fn accepts(self, v: &str) -> bool {
        match self {
            OptionValue::OneOf(words) => words.contains(&v),
            OptionValue::Seconds => v.parse::<u32>().is_ok(),
            OptionValue::Text => {
                !v.is_empty() && v.len() <= 255 && !v.chars().any(char::is_control)
            }
        }
    }
}

/// libpq connection options a tenant may carry into its DSN, and their allowed values.
/// Both the validation and the OpenAPI schema ([`crate::registry::schema::db_options`]) read this list.
pub(in crate::registry) const DB_OPTIONS: &[(&str, OptionValue)] = &[
    (
        "sslmode",
        OptionValue::OneOf(&[
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ]),
    ),
    ("sslrootcert", OptionValue::Text),
    ("sslcert", OptionValue::Text),
    ("sslkey", OptionValue::Text),
    ("connect_timeout", OptionValue::Seconds),
    ("application_name", OptionValue::Text),
    (
        "target_session_attrs",
        OptionValue::OneOf(&[
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ]),
    ),
    (
        "channel_binding",
        OptionValue::OneOf(&["disable", "prefer", "require"]),
    ),
];

/// Checks `db_options` against the allow-list (unknown keys would silently do nothing in
/// some clients and break others).
pub fn validate_db_options(options: &BTreeMap<String, String>) -> Result<(), RegistryError> {
    for (k, v) in options {
        let Some((_, allowed)) = DB_OPTIONS.iter().find(|(key, _)| key == k) else {
            let keys: Vec<&str> = DB_OPTIONS.iter().map(|(key, _)| *key).collect();
            return Err(invalid(
                "db_options",
                format!("unsupported option {k:?}; allowed: {}", keys.join(", ")),
            ));
        };
        if !allowed.accepts(v) {
            return Err(invalid("db_options", format!("invalid value for {k}")));
        }
    }
    Ok(())
}

/// A suspension reason: 1-500 printable characters once trimmed (resolution's 423 shows it).
pub fn validate_reason(field: &'static str, reason: &str) -> Result<(), RegistryError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        Err(invalid(field, "must be 1-500 printable characters"))
    } else {
        Ok(())
    }
}

/// Who made a change: recorded on every event. The name is the authenticated identity
/// (`root`, `token:<name>`, `drover`, `schedule:<name>`); what a client says about itself
/// (`X-Drover-Actor`) is only ever `on_behalf_of`, added to the event's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: String,
    on_behalf_of: Option<String>,
}

impl Actor {
    /// Accepts 1-100 printable characters.
    pub fn new(s: &str) -> Result<Actor, RegistryError> {
        validate_text("actor", s, 100)?;
        Ok(Actor {
            name: s.to_string(),
            on_behalf_of: None,
        })
    }

    /// The same actor, acting for someone it names (1-100 printable characters).
    pub fn on_behalf_of(mut self, who: &str) -> Result<Actor, RegistryError> {
        validate_text("X-Drover-Actor", who, 100)?;
        self.on_behalf_of = Some(who.to_string());
        Ok(self)
    }

    /// The actor text.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whom the client said it acts for, if anyone.
    pub fn behalf(&self) -> Option<&str> {
        self.on_behalf_of.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules_follow_the_documented_pattern() {
        for ok in ["a", "acme", "acme-corp", "a1", "0abc", &"a".repeat(63)] {
            assert!(ok.parse::<Slug>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Acme",
            "a_b",
            "a.b",
            &"a".repeat(64),
            "café",
        ] {
            assert!(bad.parse::<Slug>().is_err(), "{bad}");
        }
    }

    #[test]
    fn db_identifiers_over_63_bytes_are_refused_not_truncated() {
        assert!(DbIdent::parse("db_name", &"t".repeat(63)).is_ok());
        assert!(DbIdent::parse("db_name", &"t".repeat(64)).is_err());
        assert!(DbIdent::parse("db_name", "t\"; DROP DATABASE x; --").is_err());
    }
}
