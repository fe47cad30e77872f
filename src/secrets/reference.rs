//! Parsing and validation of `SCHEME:LOCATOR` secret references. The schemes and their
//! locator syntax come from [`SCHEMES`]; this file knows none of them by name.

use std::fmt;
use std::str::FromStr;

use super::scheme::{listed, Scheme};
use super::SCHEMES;

/// A validated secret reference. Holds no secret, so it may be logged and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    scheme: &'static Scheme,
    locator: String,
}

/// Why a string is not an acceptable secret reference. Never echoes the input: a user who
/// pasted a password where a reference belongs must not find it in an error or a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error("must be SCHEME:LOCATOR with scheme {} (e.g. file:tenants/acme)", listed(|_| true, ""))]
    NoScheme,
    #[error("unknown scheme; use {}", listed(|_| true, ":"))]
    UnknownScheme,
    #[error("must not contain '://', '@', whitespace or '..': store a reference, never a URL or a password")]
    Forbidden,
    /// The locator does not fit its scheme; the message is the scheme's `expected`.
    #[error("{expected}")]
    BadLocator {
        scheme: &'static str,
        expected: &'static str,
    },
    #[error("must be at most 512 characters")]
    TooLong,
}

impl SecretRef {
    /// The scheme.
    pub fn scheme(&self) -> &'static Scheme {
        self.scheme
    }

    /// Everything after `SCHEME:`.
    pub fn locator(&self) -> &str {
        &self.locator
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme.name, self.locator)
    }
}

/// A letter, digit, `.`, `_` or `-`: the characters of path segments and field names.
pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// `segment(/segment)*`, no empty or `.` segments.
pub(super) fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg.chars().all(is_name_char))
}

impl FromStr for SecretRef {
    type Err = SecretRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > 512 {
            return Err(SecretRefError::TooLong);
        }
        if s.contains("://")
            || s.contains('@')
            || s.contains("..")
            || s.contains(char::is_whitespace)
        {
            return Err(SecretRefError::Forbidden);
        }
        let (name, locator) = s.split_once(':').ok_or(SecretRefError::NoScheme)?;
        let scheme = Scheme::named(name).ok_or(SecretRefError::UnknownScheme)?;
        if !(scheme.valid_locator)(locator) {
            return Err(SecretRefError::BadLocator {
                scheme: scheme.name,
                expected: scheme.expected,
            });
        }
        Ok(SecretRef {
            scheme,
            locator: locator.to_string(),
        })
    }
}

/// The references [`SecretRef::from_str`] accepts, as a regular expression: the API
/// document's schema of every request field holding one (the parser stays the authority:
/// it also refuses `.`/`..` segments and anything over 512 characters). Built at compile
/// time from [`SCHEMES`], so a new scheme shows up here without an edit.
pub const PATTERN: &str = match std::str::from_utf8(&PATTERN_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("scheme names and locator patterns are UTF-8"),
};

const PATTERN_LEN: usize = pattern_parts(&mut [0; 0], false);
const PATTERN_BYTES: [u8; PATTERN_LEN] = {
    let mut out = [0; PATTERN_LEN];
    pattern_parts(&mut out, true);
    out
};

/// `^(name:pattern|…)$`: writes it into `out` when `write`, and returns its length.
const fn pattern_parts(out: &mut [u8], write: bool) -> usize {
    let mut at = push(out, 0, "^(", write);
    let mut i = 0;
    while i < SCHEMES.len() {
        if i > 0 {
            at = push(out, at, "|", write);
        }
        at = push(out, at, SCHEMES[i].name, write);
        at = push(out, at, ":", write);
        at = push(out, at, SCHEMES[i].locator_pattern, write);
        i += 1;
    }
    push(out, at, ")$", write)
}

const fn push(out: &mut [u8], at: usize, s: &str, write: bool) -> usize {
    let bytes = s.as_bytes();
    let mut i = 0;
    while write && i < bytes.len() {
        out[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

/// The OpenAPI schema of a request field holding a reference (`#[schema(schema_with = ..)]`).
pub fn schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(512))
        .pattern(Some(PATTERN))
        .description(Some(format!(
            "A secret reference, never the password. {}. `.` and `..` segments are refused.",
            SCHEMES
                .iter()
                .map(|s| s.expected)
                .collect::<Vec<_>>()
                .join("; ")
        )))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(scheme: &'static str) -> SecretRefError {
        let expected = Scheme::named(scheme).unwrap().expected;
        SecretRefError::BadLocator { scheme, expected }
    }

    #[test]
    fn accepts_the_three_documented_forms() {
        for ok in [
            "env:TENANT_ACME_PW",
            "file:tenants/acme",
            "vault:secret/tenants/acme#password",
            "gcp-sm:projects/prod-1/secrets/tenants-acme",
            "gcp-sm:projects/prod-1/secrets/tenants-acme/versions/3#password",
            "azure-kv:prod-kv/tenants-acme#password",
        ] {
            let r: SecretRef = ok.parse().unwrap();
            assert_eq!(r.to_string(), ok);
        }
    }

    #[test]
    fn rejects_urls_credentials_escapes_and_passwords() {
        let cases = [
            ("postgres://u:p@h/db", SecretRefError::Forbidden),
            ("file:../etc/passwd", SecretRefError::Forbidden),
            ("env:user@host", SecretRefError::Forbidden),
            ("file:a b", SecretRefError::Forbidden),
            ("hunter2", SecretRefError::NoScheme),
            ("plain:value", SecretRefError::UnknownScheme),
            ("file:/etc/passwd", bad("file")),
            ("file:tenants//acme", bad("file")),
            ("env:Pa$$w0rd!", bad("env")),
            ("vault:secret#field", bad("vault")),
            ("vault:secret/acme", bad("vault")),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<SecretRef>().unwrap_err(), want, "{input}");
        }
    }

    #[test]
    fn errors_never_echo_the_input() {
        let err = "S3cr3t-P4ss!".parse::<SecretRef>().unwrap_err().to_string();
        assert!(!err.contains("S3cr3t"));
    }

    #[test]
    fn errors_list_the_registered_schemes() {
        assert_eq!(
            SecretRefError::NoScheme.to_string(),
            "must be SCHEME:LOCATOR with scheme env, file, vault, aws-sm, gcp-sm or azure-kv (e.g. file:tenants/acme)"
        );
        assert_eq!(
            SecretRefError::UnknownScheme.to_string(),
            "unknown scheme; use env:, file:, vault:, aws-sm:, gcp-sm: or azure-kv:"
        );
        assert_eq!(
            "env:Pa$$w0rd!"
                .parse::<SecretRef>()
                .unwrap_err()
                .to_string(),
            "env: reference must name a variable like env:TENANT_ACME_PASSWORD"
        );
    }

    #[test]
    fn the_pattern_is_built_from_every_registered_scheme() {
        assert_eq!(
            PATTERN,
            r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*|vault:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+#[A-Za-z0-9._-]+|aws-sm:(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:)?[A-Za-z0-9/_+=.-]+(#[A-Za-z0-9._-]+)?|gcp-sm:projects/[a-z0-9-]+/secrets/[A-Za-z0-9_-]+(/versions/([0-9]+|latest))?(#[A-Za-z0-9._-]+)?|azure-kv:[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]/[A-Za-z0-9-]{1,127}(#[A-Za-z0-9._-]+)?)$"
        );
        for s in SCHEMES {
            assert!(PATTERN.contains(&format!("{}:{}", s.name, s.locator_pattern)));
        }
    }
}
