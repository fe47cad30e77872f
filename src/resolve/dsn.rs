//! Building a libpq connection URI from a tenant's parameters and its password.
//!
//! User, password and database name are percent-encoded, so a password holding
//! `@ : / ? # % '` or spaces survives; a Unix-socket host (`/cloudsql/p:r:i`) goes into the
//! `host` query parameter because it cannot sit in the authority part of a URI.

use std::collections::BTreeMap;
use std::fmt::Write;

use secrecy::{ExposeSecret, SecretString};

/// Percent-encodes everything except RFC 3986 unreserved characters (DSN parts here,
/// URL path segments and query values in the CLI).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `postgresql://user:password@host:port/dbname?options` as a secret.
pub fn build(
    host: &str,
    port: i32,
    dbname: &str,
    user: &str,
    password: &SecretString,
    options: &BTreeMap<String, String>,
) -> SecretString {
    let mut dsn = String::with_capacity(96);
    let _ = write!(
        dsn,
        "postgresql://{}:{}@",
        encode(user),
        encode(password.expose_secret())
    );
    let mut query: Vec<(String, String)> = Vec::new();
    if host.starts_with('/') {
        query.push(("host".into(), host.to_string()));
        query.push(("port".into(), port.to_string()));
    } else if host.contains(':') && !host.starts_with('[') {
        let _ = write!(dsn, "[{host}]:{port}");
    } else {
        let _ = write!(dsn, "{host}:{port}");
    }
    let _ = write!(dsn, "/{}", encode(dbname));
    query.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (i, (k, v)) in query.iter().enumerate() {
        dsn.push(if i == 0 { '?' } else { '&' });
        let _ = write!(dsn, "{}={}", encode(k), encode(v));
    }
    SecretString::from(dsn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_in_the_password_are_percent_encoded() {
        let pw = SecretString::from("p@ss:w/o?r#d% 'x'");

        let dsn = build("db1", 5432, "t_acme", "u", &pw, &BTreeMap::new());

        assert_eq!(
            dsn.expose_secret(),
            "postgresql://u:p%40ss%3Aw%2Fo%3Fr%23d%25%20%27x%27@db1:5432/t_acme"
        );
        let parsed: tokio_postgres::Config = dsn.expose_secret().parse().unwrap();
        assert_eq!(parsed.get_password(), Some("p@ss:w/o?r#d% 'x'".as_bytes()));
    }

    #[test]
    fn unix_socket_hosts_and_options_go_into_the_query() {
        let pw = SecretString::from("pw");
        let opts = BTreeMap::from([("sslmode".to_string(), "require".to_string())]);

        let dsn = build("/cloudsql/proj:eu:db", 5432, "t", "u", &pw, &opts);

        assert_eq!(
            dsn.expose_secret(),
            "postgresql://u:pw@/t?host=%2Fcloudsql%2Fproj%3Aeu%3Adb&port=5432&sslmode=require"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let dsn = build(
            "::1",
            5432,
            "t",
            "u",
            &SecretString::from("pw"),
            &BTreeMap::new(),
        );
        assert_eq!(dsn.expose_secret(), "postgresql://u:pw@[::1]:5432/t");
    }
}
