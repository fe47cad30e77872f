//! The `vault:` secret backend against a real OpenBao dev server (started by
//! [`crate::helpers::OpenBao`]).

use std::time::Duration;

use drover::secrets::{SecretBackend, SecretError, SecretRef, VaultBackend, VaultConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::helpers::OpenBao;

fn backend(bao: &OpenBao, token: &str) -> VaultBackend {
    VaultBackend::new(VaultConfig {
        addr: bao.addr.clone(),
        token: SecretString::from(token.to_string()),
        namespace: None,
        timeout: Duration::from_secs(3),
    })
    .expect("vault backend builds")
}

fn vault_ref(s: &str) -> SecretRef {
    s.parse().expect("valid vault reference")
}

#[tokio::test]
async fn vault_backend_reads_the_current_version_of_a_kv2_field() {
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    let vault = backend(&bao, &bao.root_token);
    let r = vault_ref("vault:secret/tenants/acme#password");
    bao.put("tenants/acme", json!({"password": "v1", "user": "t_acme"}))
        .await;

    let first = vault.read(&r).await.expect("first read");
    bao.put("tenants/acme", json!({"password": "v2", "user": "t_acme"}))
        .await;
    let second = vault.read(&r).await.expect("second read");

    assert_eq!(first.expose_secret(), "v1");
    assert_eq!(second.expose_secret(), "v2");
}

#[tokio::test]
async fn vault_backend_with_a_bad_token_is_denied_with_an_error_that_names_the_ref_not_the_token() {
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    bao.put("tenants/acme", json!({"password": "hunter2-secret"}))
        .await;
    let bad_token = "drover-wrong-token-5f0c2a";
    let vault = backend(&bao, bad_token);
    let r = vault_ref("vault:secret/tenants/acme#password");

    let err = vault.read(&r).await.unwrap_err();

    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    assert!(!err.is_retryable());
    let shown = format!("{err} {err:?} {vault:?}");
    assert!(
        shown.contains("vault:secret/tenants/acme#password"),
        "{shown}"
    );
    assert!(shown.contains("DROVER_VAULT_TOKEN"), "{shown}");
    assert!(!shown.contains(bad_token), "{shown}");
    assert!(!shown.contains(&bao.root_token), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn vault_backend_reports_a_missing_field_and_a_missing_path_as_not_found() {
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    bao.put("tenants/acme", json!({"password": "hunter2-secret"}))
        .await;
    let vault = backend(&bao, &bao.root_token);

    let no_field = vault
        .read(&vault_ref("vault:secret/tenants/acme#username"))
        .await
        .unwrap_err();
    let no_path = vault
        .read(&vault_ref("vault:secret/tenants/nobody#password"))
        .await
        .unwrap_err();
    let no_mount = vault
        .read(&vault_ref("vault:nomount/tenants/acme#password"))
        .await
        .unwrap_err();

    for err in [&no_field, &no_path, &no_mount] {
        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
        assert!(!err.is_retryable(), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    }
    assert!(no_field.to_string().contains("username"), "{no_field}");
    assert!(no_path.to_string().contains("tenants/nobody"), "{no_path}");
    assert!(no_mount.to_string().contains("nomount"), "{no_mount}");
}

#[tokio::test]
async fn sealed_or_stopped_vault_is_a_retryable_error() {
    let Some(mut bao) = OpenBao::start().await else {
        return;
    };
    bao.put("tenants/acme", json!({"password": "hunter2-secret"}))
        .await;
    let vault = backend(&bao, &bao.root_token);
    let r = vault_ref("vault:secret/tenants/acme#password");
    vault.read(&r).await.expect("read while unsealed");

    bao.seal().await;
    let sealed = vault.read(&r).await.unwrap_err();
    bao.stop();
    let stopped = vault.read(&r).await.unwrap_err();

    for err in [&sealed, &stopped] {
        assert!(matches!(err, SecretError::Unreadable { .. }), "{err}");
        assert!(err.is_retryable(), "{err}");
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("vault:secret/tenants/acme#password"),
            "{shown}"
        );
        assert!(!shown.contains(&bao.root_token), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    assert!(sealed.to_string().contains("503"), "{sealed}");
}
