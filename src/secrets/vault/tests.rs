//! Vault answers mapped to values and errors, without a server (the OpenBao tests in
//! `tests/api/openbao.rs` use a real one).

use super::*;

fn vref(s: &str) -> SecretRef {
    s.parse().unwrap()
}

fn config(addr: &str) -> VaultConfig {
    VaultConfig {
        addr: addr.into(),
        token: SecretString::from("hvs.super-secret-token".to_string()),
        namespace: None,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn locator_splits_into_mount_path_and_field_and_builds_the_data_url() {
    let r = vref("vault:secret/tenants/eu/acme#password");

    let loc = Kv2Location::parse(&r).unwrap();

    assert_eq!(
        loc,
        Kv2Location {
            mount: "secret",
            path: "tenants/eu/acme",
            field: "password"
        }
    );
    assert_eq!(
        loc.url("http://127.0.0.1:8200"),
        "http://127.0.0.1:8200/v1/secret/data/tenants/eu/acme"
    );
}

#[test]
fn shortest_locator_has_a_one_segment_path() {
    let r = vref("vault:kv/x#f");

    let loc = Kv2Location::parse(&r).unwrap();

    assert_eq!(loc.url("https://v"), "https://v/v1/kv/data/x");
    assert_eq!(loc.field, "f");
}

#[test]
fn non_vault_reference_has_no_kv2_location() {
    assert_eq!(Kv2Location::parse(&vref("file:a/b")), None);
}

#[test]
fn trailing_slash_of_the_address_is_dropped() {
    let backend = VaultBackend::new(config("http://127.0.0.1:8200/")).unwrap();

    assert_eq!(backend.base, "http://127.0.0.1:8200");
}

#[test]
fn address_without_http_scheme_is_refused() {
    for addr in ["127.0.0.1:8200", "ftp://vault", "http://", ""] {
        let err = VaultBackend::new(config(addr)).unwrap_err();

        assert!(matches!(err, SecretError::Unsupported { .. }), "{addr}");
        assert!(err.to_string().contains("http://"), "{err}");
    }
}

#[test]
fn debug_output_never_shows_the_token() {
    let backend = VaultBackend::new(config("http://127.0.0.1:8200")).unwrap();

    let shown = format!("{backend:?} {:?}", config("http://x"));

    assert!(!shown.contains("super-secret"), "{shown}");
    assert!(shown.contains("127.0.0.1:8200"));
}

#[test]
fn response_field_of_the_current_version_is_returned_with_its_version() {
    let r = vref("vault:secret/acme#password");
    let loc = Kv2Location::parse(&r).unwrap();
    let body = br#"{"data":{"data":{"password":"s3cret","user":"u"},"metadata":{"version":7}}}"#;

    let (value, version) = extract_field(&r, &loc, body).unwrap();

    assert_eq!(value.expose_secret(), "s3cret");
    assert_eq!(version, Some(7));
}

#[test]
fn missing_field_is_not_found_naming_the_field_not_the_values() {
    let r = vref("vault:secret/acme#password");
    let loc = Kv2Location::parse(&r).unwrap();
    let body = br#"{"data":{"data":{"passwd":"s3cret"},"metadata":{"version":1}}}"#;

    let err = extract_field(&r, &loc, body).unwrap_err();

    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("\"password\""), "{msg}");
    assert!(msg.contains("vault:secret/acme#password"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
}

#[test]
fn non_string_field_is_not_found_without_its_value() {
    let r = vref("vault:secret/acme#pin");
    let loc = Kv2Location::parse(&r).unwrap();
    let body = br#"{"data":{"data":{"pin":918273},"metadata":{"version":1}}}"#;

    let err = extract_field(&r, &loc, body).unwrap_err();

    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("a number"), "{err}");
    assert!(!err.to_string().contains("918273"), "{err}");
}

#[test]
fn deleted_version_and_kv1_shaped_answers_are_not_found() {
    let r = vref("vault:secret/acme#password");
    let loc = Kv2Location::parse(&r).unwrap();

    let deleted = br#"{"data":{"data":null,"metadata":{"version":2}}}"#;
    let kv1 = br#"{"data":{"password":"s3cret"}}"#;

    for body in [&deleted[..], &kv1[..]] {
        let err = extract_field(&r, &loc, body).unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}

#[test]
fn non_json_answer_is_retryable() {
    let r = vref("vault:secret/acme#password");
    let loc = Kv2Location::parse(&r).unwrap();

    let err = extract_field(&r, &loc, b"<html>bad gateway</html>").unwrap_err();

    assert!(err.is_retryable(), "{err}");
}

#[test]
fn statuses_map_to_denied_not_found_and_retryable() {
    let r = vref("vault:secret/acme#password");
    let loc = Kv2Location::parse(&r).unwrap();
    let kind = |e: &SecretError| match e {
        SecretError::Denied { .. } => "denied",
        SecretError::NotFound { .. } => "not found",
        SecretError::Unreadable { .. } => "retryable",
        _ => "other",
    };
    let cases: [(u16, &[u8], &str); 8] = [
        (403, br#"{"errors":["permission denied"]}"#, "denied"),
        (401, b"", "denied"),
        (404, br#"{"errors":[]}"#, "not found"),
        (503, br#"{"errors":["Vault is sealed"]}"#, "retryable"),
        (500, b"", "retryable"),
        (429, b"", "retryable"),
        (307, b"", "retryable"),
        (400, br#"{"errors":["bad"]}"#, "denied"),
    ];
    for (code, body, want) in cases {
        let status = StatusCode::from_u16(code).unwrap();

        let err = status_error(&r, &loc, status, body);

        assert_eq!(kind(&err), want, "{code}: {err}");
        assert_eq!(err.is_retryable(), want == "retryable", "{code}: {err}");
        assert!(err.to_string().contains("vault:secret/acme#password"));
    }
}

#[test]
fn forbidden_names_the_token_variable_and_sealed_says_so() {
    let r = vref("vault:secret/acme#password");
    let loc = Kv2Location::parse(&r).unwrap();

    let denied = status_error(&r, &loc, StatusCode::FORBIDDEN, b"");
    let sealed = status_error(
        &r,
        &loc,
        StatusCode::SERVICE_UNAVAILABLE,
        br#"{"errors":["Vault is sealed"]}"#,
    );

    assert!(
        denied.to_string().contains("DROVER_VAULT_TOKEN"),
        "{denied}"
    );
    assert!(sealed.to_string().contains("503"), "{sealed}");
    assert!(sealed.to_string().contains("Vault is sealed"), "{sealed}");
}

#[test]
fn unknown_mount_is_named_in_the_not_found_error() {
    let r = vref("vault:nomount/acme#password");
    let loc = Kv2Location::parse(&r).unwrap();
    let body =
        br#"{"errors":["no handler for route \"nomount/data/acme\". route entry not found."]}"#;

    let err = status_error(&r, &loc, StatusCode::NOT_FOUND, body);

    assert!(
        err.to_string().contains("no KV v2 mount named \"nomount\""),
        "{err}"
    );
}

#[test]
fn long_vault_error_lists_are_capped() {
    let long = format!(r#"{{"errors":["{}"]}}"#, "x".repeat(1000));

    let said = vault_errors(long.as_bytes()).unwrap();

    assert!(said.chars().count() <= 201);
}
