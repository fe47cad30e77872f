//! `aws-sm:NAME[#json-key]`: AWS Secrets Manager, through the official SDK.
//!
//! `NAME` is a secret's name (`tenants/acme`) or its ARN
//! (`arn:aws:secretsmanager:eu-west-1:123456789012:secret:tenants/acme-AbCdEf`); the value
//! read is the `AWSCURRENT` version's `SecretString`. With `#key` the secret must hold a
//! JSON object and the value is that field (a string, or a number or boolean as written).
//!
//! What lives here is always compiled, whatever the cargo features: the descriptor (syntax,
//! scope rule, writability), the scope setting `aws_sm_allowed_prefixes` ([`AwsSmScope`])
//! and the backend's settings ([`AwsSmSettings`]), so a build without the `aws` feature
//! still parses, scope-checks and refuses these references by name. The backend itself
//! (`client.rs`, the SDK calls, and `answer.rs`, reading what AWS answers) is behind the
//! `aws` feature (on by default).
//!
//! Credentials and region come from the SDK's standard chains (environment, shared
//! profile, web identity for EKS, IMDSv2 on EC2), loaded on first use so a daemon that
//! never sees an `aws-sm:` reference never asks AWS anything; the endpoint follows the
//! SDK's own override (`AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL`): drover has
//! no key for it.

#[cfg(feature = "aws")]
mod answer;
#[cfg(feature = "aws")]
mod client;

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "aws")]
pub use client::{https_client, AwsSmBackend};

use super::scheme::Scheme;
use super::{Purpose, RefScope, ScopeError, SecretBackend, SecretError, SecretRef, SecretSettings};

/// The `aws-sm:` scheme.
pub const SCHEME: Scheme = Scheme {
    name: "aws-sm",
    locator_pattern: "(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:)?[A-Za-z0-9/_+=.-]+(#[A-Za-z0-9._-]+)?",
    valid_locator,
    expected: "aws-sm: reference must be aws-sm:NAME or aws-sm:ARN, optionally with #json-key (name: letters, digits and /_+=.-; e.g. aws-sm:tenants/acme#password)",
    in_scope,
    writable: true,
    cacheable: true,
    backend,
    unconfigured: UNCONFIGURED,
};

#[cfg(feature = "aws")]
const UNCONFIGURED: &str = "aws-sm (no AWS region: set AWS_REGION or a profile's region)";
#[cfg(not(feature = "aws"))]
const UNCONFIGURED: &str = "aws-sm (drover was built without the aws feature)";

/// The default `aws_sm_allowed_prefixes`.
pub const DEFAULT_AWS_SM_PREFIXES: &str = "tenants/";

/// The default `aws_sm_recovery_window_days`.
pub const DEFAULT_RECOVERY_WINDOW_DAYS: &str = "7";

/// The most secrets one `BatchGetSecretValue` call may name (AWS's limit).
pub const BATCH_SIZE: usize = 20;

/// The version stage every read asks for.
pub const VERSION_STAGE: &str = "AWSCURRENT";

/// The tag drover puts on a secret it created (so an operator, or an IAM condition on
/// `DeleteSecret`, can tell drover's secrets from others').
pub const CREATED_TAG: (&str, &str) = ("drover:created", "true");

/// What the `aws-sm:` backend is built from (credentials, region and endpoint come from
/// the SDK's own chains, not from here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSmSettings {
    /// `aws_sm_recovery_window_days`: days a deleted secret can still be restored (7 to
    /// 30); 0 deletes without recovery.
    pub recovery_window_days: i64,
    /// `aws_sm_timeout`: longest one call may take, the SDK's retries included.
    pub timeout: Duration,
}

impl Default for AwsSmSettings {
    fn default() -> Self {
        AwsSmSettings {
            recovery_window_days: 7,
            timeout: Duration::from_secs(5),
        }
    }
}

/// `7`…`30`, or `0` (delete at once): what AWS accepts as a recovery window.
pub fn parse_recovery_window(s: &str) -> Result<i64, String> {
    match s.trim().parse::<i64>() {
        Ok(0) => Ok(0),
        Ok(n) if (7..=30).contains(&n) => Ok(n),
        _ => Err("expected a number of days from 7 to 30 (AWS's recovery window), or 0 to delete without recovery".into()),
    }
}

/// Where `aws-sm:` references may point, by secret name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsSmScope {
    /// Any secret (`aws_sm_allowed_prefixes = "*"`): the operator's explicit opt-in.
    Any,
    /// Only names starting with one of these, taken literally (`tenants/` admits
    /// `tenants/acme`, not `tenantsx/acme`; `tenants` would admit both).
    Under(Vec<String>),
}

impl Default for AwsSmScope {
    fn default() -> Self {
        parse_aws_sm_prefixes(DEFAULT_AWS_SM_PREFIXES)
            .unwrap_or_else(|_| unreachable!("the default prefixes parse"))
    }
}

impl AwsSmScope {
    /// The prefixes as configured (`*` for any).
    pub fn configured(&self) -> String {
        match self {
            AwsSmScope::Any => "*".into(),
            AwsSmScope::Under(p) => p.join(","),
        }
    }
}

/// `tenants/, apps/db-` → the prefixes; `*` → any secret.
pub fn parse_aws_sm_prefixes(s: &str) -> Result<AwsSmScope, String> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if items == ["*"] {
        return Ok(AwsSmScope::Any);
    }
    if items.is_empty() {
        return Err(
            "expected comma-separated secret name prefixes (e.g. tenants/), or * for any secret"
                .into(),
        );
    }
    let mut out = Vec::new();
    for item in items {
        if !item.chars().all(is_name_char) || item.contains("..") {
            return Err(format!(
                "{item:?} is not a secret name prefix (letters, digits and /_+=.-); use * for any secret"
            ));
        }
        out.push(item.to_string());
    }
    Ok(AwsSmScope::Under(out))
}

/// A character of a secret name as drover accepts it: AWS's set less `@`, which no
/// reference may hold.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '-')
}

/// Where an `aws-sm:` reference points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsSmLocation<'a> {
    /// What AWS is asked for: the name or the ARN, as written.
    pub secret_id: &'a str,
    /// The secret's name: the ARN's name part (with AWS's random suffix) for an ARN.
    pub name: &'a str,
    /// `#key`: the field of a JSON secret.
    pub key: Option<&'a str>,
}

impl<'a> AwsSmLocation<'a> {
    /// Splits a locator; `None` when it is not a valid `aws-sm:` locator.
    pub fn parse(locator: &'a str) -> Option<Self> {
        let (secret_id, key) = match locator.split_once('#') {
            Some((id, key)) => (id, Some(key)),
            None => (locator, None),
        };
        if let Some(key) = key {
            let key_ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !key_ok {
                return None;
            }
        }
        let name = match secret_id.strip_prefix("arn:") {
            Some(rest) => arn_name(rest)?,
            None => secret_id,
        };
        let name_ok = !name.is_empty() && name.len() <= 512 && name.chars().all(is_name_char);
        name_ok.then_some(AwsSmLocation {
            secret_id,
            name,
            key,
        })
    }

    /// The location of a parsed `aws-sm:` reference.
    pub fn of(reference: &'a SecretRef) -> Option<Self> {
        (reference.scheme() == &SCHEME)
            .then(|| Self::parse(reference.locator()))
            .flatten()
    }

    /// Whether `secret_id` is an ARN.
    pub fn is_arn(&self) -> bool {
        self.secret_id.starts_with("arn:")
    }
}

/// `aws:secretsmanager:REGION:ACCOUNT:secret:NAME` (after `arn:`) → `NAME`.
fn arn_name(rest: &str) -> Option<&str> {
    let mut parts = rest.splitn(6, ':');
    let partition = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let name = parts.next()?.eq("secret").then(|| parts.next())??;
    let lower = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let ok = partition.starts_with("aws")
        && lower(partition)
        && service == "secretsmanager"
        && lower(region)
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit());
    ok.then_some(name)
}

fn valid_locator(locator: &str) -> bool {
    AwsSmLocation::parse(locator).is_some()
}

/// Only secrets whose name starts with one of `aws_sm_allowed_prefixes` (unless `*`): the
/// daemon's AWS identity may read far more than tenants' passwords. The same rule for a
/// tenant's password and a webhook's key, as for `vault:` (no secret of drover's own lives
/// in Secrets Manager for a webhook reference to reach). For an ARN the name part is
/// checked: the account and region are the credentials' business.
fn in_scope(scope: &RefScope, _: Purpose, r: &SecretRef) -> Result<(), ScopeError> {
    let Some(loc) = AwsSmLocation::of(r) else {
        return Err(refused(scope.aws_sm()));
    };
    match scope.aws_sm() {
        AwsSmScope::Any => Ok(()),
        AwsSmScope::Under(prefixes) => {
            let inside = prefixes
                .iter()
                .any(|p| loc.name.len() > p.len() && loc.name.starts_with(p.as_str()));
            if inside {
                Ok(())
            } else {
                Err(refused(scope.aws_sm()))
            }
        }
    }
}

fn refused(scope: &AwsSmScope) -> ScopeError {
    ScopeError::AwsSm {
        allowed: match scope {
            AwsSmScope::Any => "*".into(),
            AwsSmScope::Under(p) => p.join(", "),
        },
    }
}

#[cfg(feature = "aws")]
fn backend(settings: &SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError> {
    Ok(Some(Arc::new(AwsSmBackend::from_environment(
        settings.aws.clone(),
    ))))
}

/// Without the `aws` feature there is no backend: references are refused naming the
/// feature ([`UNCONFIGURED`]).
#[cfg(not(feature = "aws"))]
fn backend(_: &SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError> {
    Ok(None)
}

#[cfg(test)]
mod syntax_tests {
    use super::*;

    fn r(s: &str) -> SecretRef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn names_and_arns_with_or_without_a_json_key_parse() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tenants/acme-AbCdEf";
        for (locator, id, name, key) in [
            ("tenants/acme", "tenants/acme", "tenants/acme", None),
            (
                "tenants/acme#password",
                "tenants/acme",
                "tenants/acme",
                Some("password"),
            ),
            ("a+b=c.d_e-f", "a+b=c.d_e-f", "a+b=c.d_e-f", None),
            (arn, arn, "tenants/acme-AbCdEf", None),
        ] {
            let loc = AwsSmLocation::parse(locator).unwrap_or_else(|| panic!("{locator}"));
            assert_eq!((loc.secret_id, loc.name, loc.key), (id, name, key));
            assert_eq!(r(&format!("aws-sm:{locator}")).locator(), locator);
        }
        let gov = "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:tenants/x#pw";
        assert_eq!(AwsSmLocation::parse(gov).unwrap().key, Some("pw"));
        assert!(AwsSmLocation::parse(arn).unwrap().is_arn());
    }

    #[test]
    fn malformed_locators_are_refused_without_echoing_them() {
        for bad in [
            "",
            "#password",
            "tenants/acme#",
            "tenants/acme#pass!word",
            "tenants/acme#a#b",
            "tenants:acme",
            "arn:aws:s3:eu-west-1:123456789012:secret:tenants/acme",
            "arn:aws:secretsmanager:eu-west-1:1234:secret:tenants/acme",
            "arn:aws:secretsmanager:eu-west-1:123456789012:parameter:tenants/acme",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
            "hunter2!",
        ] {
            let err = format!("aws-sm:{bad}").parse::<SecretRef>().unwrap_err();
            assert!(err.to_string().contains("aws-sm:NAME"), "{bad}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        assert!("aws-sm:tenants/acme@x".parse::<SecretRef>().is_err());
    }

    #[test]
    fn only_names_under_an_allowed_prefix_are_in_scope_whatever_the_purpose() {
        let scope = RefScope::default();
        for ok in [
            "aws-sm:tenants/acme#password",
            "aws-sm:tenants/eu/acme",
            "aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:tenants/acme-AbCdEf",
        ] {
            assert_eq!(scope.check(&r(ok)), Ok(()), "{ok}");
            assert_eq!(scope.check_webhook(&r(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "aws-sm:tenants/",
            "aws-sm:tenantsx/acme",
            "aws-sm:prod/database-master#password",
            "aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
        ] {
            let err = scope.check(&r(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "aws-sm: references must be under tenants/ (aws_sm_allowed_prefixes, DROVER_AWS_SM_ALLOWED_PREFIXES)",
                "{bad}"
            );
            assert!(!err.is_retryable());
        }
        let any = RefScope::default().with_aws_sm(AwsSmScope::Any);
        assert_eq!(any.check(&r("aws-sm:prod/db")), Ok(()));
    }

    #[test]
    fn prefixes_parse_as_a_list_or_a_star_and_refuse_odd_characters() {
        assert_eq!(
            parse_aws_sm_prefixes(" tenants/, apps/db- ").unwrap(),
            AwsSmScope::Under(vec!["tenants/".into(), "apps/db-".into()])
        );
        assert_eq!(parse_aws_sm_prefixes("*").unwrap(), AwsSmScope::Any);
        assert_eq!(AwsSmScope::default().configured(), "tenants/");
        for bad in ["", " , ", "ten ants/", "a:b", "a@b", "x/../y"] {
            assert!(parse_aws_sm_prefixes(bad).is_err(), "{bad:?}");
        }
    }

    #[cfg(not(feature = "aws"))]
    #[tokio::test]
    async fn without_the_aws_feature_a_reference_parses_but_is_refused_naming_the_feature() {
        let store = crate::secrets::SecretStore::from_settings(&SecretSettings::default())
            .expect("a store");

        let err = store.read(&r("aws-sm:tenants/acme")).await.unwrap_err();

        assert!(
            err.to_string()
                .contains("drover was built without the aws feature"),
            "{err}"
        );
    }

    #[test]
    fn the_recovery_window_is_seven_to_thirty_days_or_zero() {
        assert_eq!(parse_recovery_window("7"), Ok(7));
        assert_eq!(parse_recovery_window("30"), Ok(30));
        assert_eq!(parse_recovery_window("0"), Ok(0));
        for bad in ["6", "31", "-1", "x", ""] {
            assert!(parse_recovery_window(bad).is_err(), "{bad}");
        }
    }
}
