//! `env:NAME`: a variable of the daemon's environment. Read-only (it belongs to whoever
//! starts the daemon); a tenant may only name variables starting with `env_secret_prefix`.

use std::sync::Arc;

use secrecy::SecretString;

use super::scheme::Scheme;
use super::{
    BoxFuture, Purpose, RefScope, ScopeError, SecretBackend, SecretError, SecretRef, SecretSettings,
};

/// The `env:` scheme.
pub const SCHEME: Scheme = Scheme {
    name: "env",
    locator_pattern: "[A-Za-z_][A-Za-z0-9_]*",
    valid_locator,
    expected: "env: reference must name a variable like env:TENANT_ACME_PASSWORD",
    in_scope,
    writable: false,
    cacheable: true,
    backend: |_: &SecretSettings| Ok(Some(Arc::new(EnvBackend) as Arc<dyn SecretBackend>)),
    unconfigured: "env",
};

fn valid_locator(locator: &str) -> bool {
    locator
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && locator
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Only variables with the configured prefix: never the daemon's own (`DROVER_*`) or the
/// host's (`PATH`, `AWS_SECRET_ACCESS_KEY`).
fn in_scope(scope: &RefScope, _: Purpose, r: &SecretRef) -> Result<(), ScopeError> {
    if r.locator().starts_with(scope.env_prefix()) {
        Ok(())
    } else {
        Err(ScopeError::Env {
            prefix: scope.env_prefix().to_string(),
        })
    }
}

/// Reads the variable an `env:` reference names.
pub(super) fn read_var(reference: &SecretRef) -> Result<SecretString, SecretError> {
    std::env::var(reference.locator())
        .map(SecretString::from)
        .map_err(|_| SecretError::NotFound {
            reference: reference.to_string(),
            why: "environment variable is not set or not UTF-8".into(),
        })
}

/// `env:NAME`: always available.
pub struct EnvBackend;

impl SecretBackend for EnvBackend {
    fn scheme(&self) -> &'static Scheme {
        &SCHEME
    }

    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move { read_var(reference) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_env_var_error_names_the_reference() {
        let r: SecretRef = "env:DROVER_TEST_SURELY_UNSET_VAR".parse().unwrap();

        let err = read_var(&r).unwrap_err();

        assert!(err.to_string().contains("env:DROVER_TEST_SURELY_UNSET_VAR"));
        assert!(!err.is_retryable());
    }
}
