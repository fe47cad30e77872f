//! What drover knows about each secret scheme without a configured backend, and the one
//! helpers that read the registered list ([`SCHEMES`], in `secrets/mod.rs`).
//!
//! Why descriptors in a list and not an enum: with an enum every `match` on it (parsing,
//! locator syntax, scope rules, writability, "not configured" hints, metric labels) grows
//! an arm, which is how one backend came to touch six files. A descriptor keeps a scheme's
//! facts in the scheme's own file, and everything that used to match reads the list.
//!
//! Why static descriptors and not only the [`SecretBackend`] trait: references are parsed
//! and scope-checked where no backend exists — the registry validating a write, `drover
//! check-config`, a replica without Vault accepting a `vault:` reference, the API
//! document's pattern ([`super::reference::PATTERN`], a compile-time constant), and the
//! metric labels registered at start. So syntax, scope rule, writability and cacheability
//! are constants here; a backend points at its descriptor ([`SecretBackend::scheme`]) and
//! is built from the [`SecretSettings`] by the descriptor's `backend` function.
//!
//! Adding a backend (say `aws-sm:`) is a new file with its `SCHEME` and its
//! `impl SecretBackend`, plus its `mod` line and its entry in [`SCHEMES`] (both in
//! `secrets/mod.rs`). If it takes settings, those are a field of [`SecretSettings`]
//! (`backend.rs`), filled by the configuration from its keys (`config::keys::KEYS`, and
//! the builder's `secrets` in `config/build.rs`).
//!
//! Nothing else lists the schemes: the reference pattern and the API document, scope
//! checks, "not configured" hints and metric labels read [`SCHEMES`], and the control
//! schema checks only a reference's shape (V16). The README's "Secrets and resolution"
//! describes each scheme for operators.

use std::fmt;
use std::sync::Arc;

use super::{
    Purpose, RefScope, ScopeError, SecretBackend, SecretError, SecretRef, SecretSettings, SCHEMES,
};

/// Builds a scheme's backend from the settings; `None` when it is not configured.
pub type BuildBackend = fn(&SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError>;

/// One scheme's constants. Compared by name.
pub struct Scheme {
    /// The prefix before `:` (`env`), also the metric label.
    pub name: &'static str,
    /// The locator's syntax as a regular expression without anchors, for
    /// [`super::reference::PATTERN`]; `valid_locator` is the authority and a test keeps the
    /// two in step for the documented examples.
    pub locator_pattern: &'static str,
    /// Whether a locator is well formed. Tight character sets double as the "looks like a
    /// pasted password" check: real passwords carry punctuation no locator needs.
    pub valid_locator: fn(&str) -> bool,
    /// The parse error for a malformed locator: what a good one looks like.
    pub expected: &'static str,
    /// Whether a tenant (or a webhook, by [`Purpose`]) may use this reference
    /// ([`RefScope::check`]): applied when a reference is written and again before one is
    /// read.
    pub in_scope: fn(&RefScope, Purpose, &SecretRef) -> Result<(), ScopeError>,
    /// Whether drover can store a value behind it (provisioning generates passwords).
    pub writable: bool,
    /// Whether a resolved value may be kept in the resolver's cache (TTL, stale serving).
    pub cacheable: bool,
    /// The backend this configuration enables, or `None` (then reads fail as not configured).
    pub backend: BuildBackend,
    /// Completes "the … backend is not configured", e.g. `file (set DROVER_SECRETS_DIR)`.
    pub unconfigured: &'static str,
}

impl Scheme {
    /// The prefix as written in a reference.
    pub fn as_str(&self) -> &'static str {
        self.name
    }

    /// The registered scheme called `name`.
    pub fn named(name: &str) -> Option<&'static Scheme> {
        SCHEMES.iter().copied().find(|s| s.name == name)
    }
}

impl PartialEq for Scheme {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Scheme {}

impl fmt::Debug for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// `env, file or vault` (with `suffix` after each name) over the schemes `keep` selects.
pub fn listed(keep: impl Fn(&Scheme) -> bool, suffix: &str) -> String {
    let names: Vec<String> = SCHEMES
        .iter()
        .filter(|s| keep(s))
        .map(|s| format!("{}{suffix}", s.name))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Whether the value behind a stored reference may be cached. Looks at the scheme prefix
/// only, so the cache's hit path stays a map lookup; an unparsable reference goes through
/// the cache (its failure is remembered like any other).
pub fn cacheable(reference: &str) -> bool {
    reference
        .split_once(':')
        .and_then(|(name, _)| Scheme::named(name))
        .is_none_or(|s| s.cacheable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_is_registered_once() {
        for (i, s) in SCHEMES.iter().enumerate() {
            assert!(SCHEMES[..i].iter().all(|o| o.name != s.name), "{s:?} twice");
            assert_eq!(Scheme::named(s.name), Some(*s));
        }
        assert_eq!(
            listed(|_| true, ""),
            "env, file, vault, aws-sm, gcp-sm or azure-kv"
        );
        assert_eq!(
            listed(|s| s.writable, ":"),
            "file:, vault:, aws-sm:, gcp-sm: or azure-kv:"
        );
    }

    #[test]
    fn cacheability_is_read_from_the_prefix_alone() {
        assert!(cacheable("env:TENANT_ACME"));
        assert!(cacheable("vault:secret/tenants/acme#pw"));
        // Not a reference at all: through the cache, where its failure is remembered.
        assert!(cacheable("hunter2"));
    }
}
