//! Parsing and validation of `SCHEME:LOCATOR` secret references.

use std::fmt;
use std::str::FromStr;

/// Where a secret lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// An environment variable of the daemon.
    Env,
    /// A file under the configured secrets directory (a mounted Kubernetes secret).
    File,
    /// A HashiCorp Vault / OpenBao KV v2 secret field.
    Vault,
}

impl Scheme {
    /// The prefix as written in a reference.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Env => "env",
            Scheme::File => "file",
            Scheme::Vault => "vault",
        }
    }
}

/// A validated secret reference. Holds no secret, so it may be logged and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    scheme: Scheme,
    locator: String,
}

/// Why a string is not an acceptable secret reference. Never echoes the input: a user who
/// pasted a password where a reference belongs must not find it in an error or a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error("must be SCHEME:LOCATOR with scheme env, file or vault (e.g. file:tenants/acme)")]
    NoScheme,
    #[error("unknown scheme; use env:, file: or vault:")]
    UnknownScheme,
    #[error("must not contain '://', '@', whitespace or '..': store a reference, never a URL or a password")]
    Forbidden,
    #[error("env: reference must name a variable like env:TENANT_ACME_PASSWORD")]
    BadEnv,
    #[error("file: reference must be a relative path of letters, digits, '.', '_', '-' and '/' (e.g. file:tenants/acme)")]
    BadFile,
    #[error("vault: reference must be vault:mount/path#field (letters, digits, '.', '_', '-')")]
    BadVault,
    #[error("must be at most 512 characters")]
    TooLong,
}

impl SecretRef {
    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Everything after `SCHEME:`.
    pub fn locator(&self) -> &str {
        &self.locator
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme.as_str(), self.locator)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn valid_path(path: &str) -> bool {
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
        let (scheme, locator) = s.split_once(':').ok_or(SecretRefError::NoScheme)?;
        let scheme = match scheme {
            "env" => Scheme::Env,
            "file" => Scheme::File,
            "vault" => Scheme::Vault,
            _ => return Err(SecretRefError::UnknownScheme),
        };
        // Tight character sets double as the "looks like a pasted password" check: real
        // passwords carry punctuation that no locator needs.
        let ok = match scheme {
            Scheme::Env => {
                locator
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && locator
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            Scheme::File => valid_path(locator),
            Scheme::Vault => match locator.split_once('#') {
                Some((path, field)) => {
                    path.contains('/')
                        && valid_path(path)
                        && !field.is_empty()
                        && field.chars().all(is_name_char)
                }
                None => false,
            },
        };
        if !ok {
            return Err(match scheme {
                Scheme::Env => SecretRefError::BadEnv,
                Scheme::File => SecretRefError::BadFile,
                Scheme::Vault => SecretRefError::BadVault,
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
/// it also refuses `.`/`..` segments and anything over 512 characters).
pub const PATTERN: &str = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*|vault:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+#[A-Za-z0-9._-]+)$";

/// The OpenAPI schema of a request field holding a reference (`#[schema(schema_with = ..)]`).
pub fn schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(512))
        .pattern(Some(PATTERN))
        .description(Some(
            "A secret reference, never the password: `env:VAR`, `file:relative/path` or \
             `vault:mount/path#field` (segments of letters, digits, `.`, `_`, `-`; `.` and `..` \
             segments are refused).",
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_documented_forms() {
        for ok in [
            "env:TENANT_ACME_PW",
            "file:tenants/acme",
            "vault:secret/tenants/acme#password",
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
            ("file:/etc/passwd", SecretRefError::BadFile),
            ("file:tenants//acme", SecretRefError::BadFile),
            ("env:Pa$$w0rd!", SecretRefError::BadEnv),
            ("vault:secret#field", SecretRefError::BadVault),
            ("vault:secret/acme", SecretRefError::BadVault),
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
}
