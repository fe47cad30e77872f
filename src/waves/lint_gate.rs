//! The lint gate of wave creation: the files a wave would run are linted as one scope,
//! from the oldest version among its tenants to the target; an error finding refuses the
//! wave unless the request acknowledges its rule. What was acknowledged, and every
//! warning, is kept in the plan (and the `created` event) for the people who look later.

use serde_json::{json, Value};
use uuid::Uuid;

use super::WaveError;
use crate::lint::{self, Level, RULES};
use crate::migrate::MigrationSet;

/// Lints what the wave would run on `tenants`; the plan's `lint` member, or the refusal.
pub(super) async fn check(
    tx: &tokio_postgres::Transaction<'_>,
    tenants: &[Uuid],
    set: &MigrationSet,
    target: i32,
    acknowledge: &[String],
) -> Result<Value, WaveError> {
    if let Some(unknown) = acknowledge
        .iter()
        .find(|a| !RULES.iter().any(|(id, _, _)| id == a))
    {
        return Err(WaveError::Invalid {
            field: "acknowledge",
            message: format!(
                "unknown lint rule {unknown:?}; the rules are listed by `drover migrations lint --help` and in the README"
            ),
        });
    }
    // The oldest version decides which files run anywhere; none (no history) is all of them.
    let oldest = crate::registry::queries::oldest_schema_version(tx, tenants).await?;
    let report = lint::lint_set(set, oldest.filter(|v| *v > 0), target);
    let (acknowledged, refused): (Vec<_>, Vec<_>) = report
        .errors()
        .cloned()
        .partition(|f| acknowledge.contains(&f.rule));
    if !refused.is_empty() {
        return Err(WaveError::LintFailed(refused));
    }
    let warnings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .cloned()
        .collect();
    Ok(json!({
        "files": report.files,
        "acknowledged": acknowledged,
        "warnings": warnings,
    }))
}
