//! Reading what Secrets Manager answers: an SDK error sorted into drover's
//! [`SecretError`] kinds, a `#key` taken out of a JSON secret, and a batch answer mapped
//! back to the references that asked.
//!
//! Errors carry the reference, AWS's error code and AWS's own message (which never holds a
//! secret value), never the value.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{ApiErrorType, SecretValueEntry};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::AwsSmLocation;
use crate::secrets::{SecretError, SecretRef};

/// Error codes that mean our identity may not do this: a person must fix the credentials
/// or the policy (including the KMS key's, which `DecryptionFailure` reports).
const DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "DecryptionFailure",
];

/// Error codes that are worth trying again: AWS is busy or failing.
const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
];

/// An AWS message cut to a readable length (they are short; this is a bound, not a filter).
fn short(message: &str) -> String {
    message.chars().take(200).collect()
}

/// Whether an error means the secret exists but is scheduled for deletion (AWS answers
/// `InvalidRequestException` for every call on such a secret but `RestoreSecret`).
pub(super) fn is_pending_deletion<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.code() == Some("InvalidRequestException")
        && err
            .message()
            .is_some_and(|m| m.to_ascii_lowercase().contains("delet"))
}

/// Whether an error is AWS saying the secret does not exist.
pub(super) fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.code() == Some("ResourceNotFoundException")
}

/// An SDK failure as drover's error for `reference`: missing → `NotFound`, refused →
/// `Denied`, AWS or the network failing → `Unreadable` (retryable).
pub(super) fn sdk_error<E>(reference: &SecretRef, err: &SdkError<E>) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let reference = reference.to_string();
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = err.code().unwrap_or("unknown error");
            let why = format!(
                "AWS answered {code} (HTTP {status}): {}",
                short(err.message().unwrap_or_default())
            );
            coded(reference, code, status, why)
        }
        SdkError::TimeoutError(_) => SecretError::Unreadable {
            reference,
            why: "AWS Secrets Manager did not answer in time (aws_sm_timeout)".into(),
        },
        SdkError::DispatchFailure(failure) => {
            let detail = short(&DisplayErrorContext(err).to_string());
            if failure.is_io() || failure.is_timeout() {
                SecretError::Unreadable {
                    reference,
                    why: format!("AWS Secrets Manager could not be reached: {detail}"),
                }
            } else {
                credentials_or_unreadable(reference, detail)
            }
        }
        _ => credentials_or_unreadable(reference, short(&DisplayErrorContext(err).to_string())),
    }
}

/// Sorts a service error by its code, then by its HTTP status.
fn coded(reference: String, code: &str, status: u16, why: String) -> SecretError {
    if code == "ResourceNotFoundException" {
        SecretError::NotFound { reference, why }
    } else if DENIED.contains(&code) || status == 401 || status == 403 {
        SecretError::Denied { reference, why }
    } else if RETRYABLE.contains(&code) || status == 429 || status >= 500 {
        SecretError::Unreadable { reference, why }
    } else if code == "InvalidRequestException" && why.to_ascii_lowercase().contains("delet") {
        SecretError::NotFound {
            reference,
            why: format!("the secret is scheduled for deletion; {why}"),
        }
    } else {
        // A request AWS will never accept (bad parameter, wrong kind of secret): a person
        // must look, so not retried.
        SecretError::Denied { reference, why }
    }
}

/// A failure before any answer: no usable credentials (a person must configure them) or
/// something on the way (retryable).
fn credentials_or_unreadable(reference: String, detail: String) -> SecretError {
    let lower = detail.to_ascii_lowercase();
    let unconfigured = ["not enabled", "not properly configured", "no credentials"]
        .iter()
        .any(|s| lower.contains(s));
    if unconfigured {
        SecretError::Denied {
            reference,
            why: format!("no AWS credentials (environment, profile, web identity or instance role): {detail}"),
        }
    } else {
        SecretError::Unreadable {
            reference,
            why: format!("the request to AWS Secrets Manager failed: {detail}"),
        }
    }
}

/// The value a location names in a secret's string: the whole string, or its JSON `#key`
/// (a string as is; a number or boolean as written).
pub(super) fn select(
    reference: &SecretRef,
    loc: &AwsSmLocation<'_>,
    secret: &SecretString,
) -> Result<SecretString, SecretError> {
    let Some(key) = loc.key else {
        return Ok(secret.clone());
    };
    let fields = json_object(reference, secret)?;
    match fields.get(key) {
        Some(Value::String(s)) => Ok(SecretString::from(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(SecretString::from(v.to_string())),
        Some(_) => Err(SecretError::NotFound {
            reference: reference.to_string(),
            why: format!("field {key} of the secret is not a string"),
        }),
        None => Err(SecretError::NotFound {
            reference: reference.to_string(),
            why: format!("the secret has no field {key}"),
        }),
    }
}

/// The secret's string as a JSON object; the error never shows the string.
pub(super) fn json_object(
    reference: &SecretRef,
    secret: &SecretString,
) -> Result<serde_json::Map<String, Value>, SecretError> {
    match serde_json::from_str::<Value>(secret.expose_secret()) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(SecretError::NotFound {
            reference: reference.to_string(),
            why: "the secret is not a JSON object, so it has no #key fields".into(),
        }),
    }
}

/// The text of a secret version: `SecretString`, or a `SecretBinary` that is UTF-8.
pub(super) fn secret_text(
    reference: &SecretRef,
    string: Option<&str>,
    binary: Option<&[u8]>,
) -> Result<SecretString, SecretError> {
    if let Some(s) = string {
        return Ok(SecretString::from(s.to_string()));
    }
    match binary.map(std::str::from_utf8) {
        Some(Ok(s)) => Ok(SecretString::from(s.to_string())),
        _ => Err(SecretError::NotFound {
            reference: reference.to_string(),
            why: "the secret's current version holds no text".into(),
        }),
    }
}

/// What one batch answer says about one secret id.
pub(super) enum Answer<'a> {
    Value(&'a SecretValueEntry),
    Error(&'a ApiErrorType),
    Missing,
}

/// Finds what a `BatchGetSecretValue` answer says about `id` (a name or an ARN as the
/// reference wrote it): an entry with that name or ARN (a partial ARN matches the full
/// one it starts), or an error naming that id.
pub(super) fn find<'a>(
    id: &str,
    values: &'a [SecretValueEntry],
    errors: &'a [ApiErrorType],
) -> Answer<'a> {
    let is_arn = id.starts_with("arn:");
    let matches = |e: &&SecretValueEntry| {
        if is_arn {
            e.arn().is_some_and(|arn| {
                arn == id
                    || arn
                        .strip_prefix(id)
                        .is_some_and(|r| r.len() == 7 && r.starts_with('-'))
            })
        } else {
            e.name() == Some(id)
        }
    };
    if let Some(entry) = values.iter().find(matches) {
        return Answer::Value(entry);
    }
    match errors.iter().find(|e| e.secret_id() == Some(id)) {
        Some(e) => Answer::Error(e),
        None => Answer::Missing,
    }
}

/// A batch answer's per-secret error as drover's error.
pub(super) fn batch_error(reference: &SecretRef, e: &ApiErrorType) -> SecretError {
    let code = e.error_code().unwrap_or("unknown error");
    let why = format!(
        "AWS answered {code} for this secret in a batch read: {}",
        short(e.message().unwrap_or_default())
    );
    coded(reference.to_string(), code, 400, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> SecretRef {
        s.parse().unwrap()
    }

    #[test]
    fn codes_sort_into_not_found_denied_and_retryable() {
        let kind = |code: &str, status: u16, msg: &str| match coded(
            "aws-sm:tenants/a".into(),
            code,
            status,
            msg.into(),
        ) {
            SecretError::NotFound { .. } => "not found",
            SecretError::Denied { .. } => "denied",
            SecretError::Unreadable { .. } => "retry",
            _ => "other",
        };
        assert_eq!(kind("ResourceNotFoundException", 400, ""), "not found");
        assert_eq!(kind("AccessDeniedException", 400, ""), "denied");
        assert_eq!(kind("UnrecognizedClientException", 400, ""), "denied");
        assert_eq!(kind("ExpiredTokenException", 400, ""), "denied");
        assert_eq!(kind("ThrottlingException", 400, ""), "retry");
        assert_eq!(kind("InternalServiceError", 500, ""), "retry");
        assert_eq!(kind("Whatever", 503, ""), "retry");
        assert_eq!(kind("Whatever", 429, ""), "retry");
        assert_eq!(
            kind("InvalidRequestException", 400, "it was marked for deletion"),
            "not found"
        );
        assert_eq!(kind("InvalidParameterException", 400, ""), "denied");
    }

    #[test]
    fn a_json_key_is_selected_and_errors_never_show_the_secret() {
        let reference = r("aws-sm:tenants/acme#password");
        let loc = AwsSmLocation::of(&reference).unwrap();
        let secret = SecretString::from(r#"{"password":"hunter2","port":5432}"#.to_string());

        let value = select(&reference, &loc, &secret).unwrap();
        let port = select(
            &r("aws-sm:tenants/acme#port"),
            &AwsSmLocation::parse("tenants/acme#port").unwrap(),
            &secret,
        )
        .unwrap();
        let missing = select(
            &r("aws-sm:tenants/acme#user"),
            &AwsSmLocation::parse("tenants/acme#user").unwrap(),
            &secret,
        )
        .unwrap_err();
        let not_json = select(
            &reference,
            &loc,
            &SecretString::from("hunter2-plain".to_string()),
        )
        .unwrap_err();

        assert_eq!(value.expose_secret(), "hunter2");
        assert_eq!(port.expose_secret(), "5432");
        assert!(matches!(missing, SecretError::NotFound { .. }), "{missing}");
        let shown = format!("{missing} {missing:?} {not_json} {not_json:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("no field user"), "{shown}");
    }

    #[test]
    fn batch_answers_are_found_by_name_by_arn_and_by_the_error_naming_the_id() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tenants/b-AbCdEf";
        let values = vec![
            SecretValueEntry::builder()
                .name("tenants/a")
                .arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:tenants/a-XyZxYz")
                .build(),
            SecretValueEntry::builder()
                .name("tenants/b")
                .arn(arn)
                .build(),
        ];
        let errors = vec![ApiErrorType::builder()
            .secret_id("tenants/gone")
            .error_code("ResourceNotFoundException")
            .build()];

        assert!(
            matches!(find("tenants/a", &values, &errors), Answer::Value(e) if e.name() == Some("tenants/a"))
        );
        assert!(
            matches!(find(arn, &values, &errors), Answer::Value(e) if e.name() == Some("tenants/b"))
        );
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tenants/b";
        assert!(matches!(find(partial, &values, &errors), Answer::Value(_)));
        assert!(matches!(
            find("tenants/gone", &values, &errors),
            Answer::Error(_)
        ));
        assert!(matches!(
            find("tenants/c", &values, &errors),
            Answer::Missing
        ));
    }
}
