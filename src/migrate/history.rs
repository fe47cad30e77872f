//! A tenant's `refinery_schema_history`: reading it in one round trip (an absent table is
//! an empty history) and checking it against the migration files (drift).

use tokio_postgres::Client;

use super::error::MigrateError;
use super::set::MigrationSet;

/// (version, name, checksum) rows of `refinery_schema_history`.
pub type History = Vec<(i32, String, String)>;

/// (version, name, checksum) rows of `refinery_schema_history`; empty when it does not exist.
/// One round trip: an absent table answers with 42P01 rather than a second query.
pub async fn read_history(client: &Client) -> Result<History, tokio_postgres::Error> {
    Ok(read_history_table(client).await?.unwrap_or_default())
}

/// The history rows, or None when the table does not exist (yet).
pub(crate) async fn read_history_table(
    client: &Client,
) -> Result<Option<History>, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT version, coalesce(name, '') AS name, coalesce(checksum, '') AS checksum \
                       FROM refinery_schema_history ORDER BY version";
    let messages = match client.simple_query(SQL).await {
        Ok(m) => m,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(Some(history_rows(&messages)))
}

fn history_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> History {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.try_get("version")
                    .ok()
                    .flatten()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                r.try_get("name")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_string(),
                r.try_get("checksum")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// Checks the history against the files; returns the current version.
pub fn check_history(
    history: &[(i32, String, String)],
    set: &MigrationSet,
) -> Result<Option<i32>, MigrateError> {
    for (version, name, checksum) in history {
        let Some(file) = set.get(*version) else {
            return Err(MigrateError::Drift {
                version: *version,
                why: format!("V{version}__{name} is applied but missing from the migration files"),
            });
        };
        if file.checksum.to_string() != *checksum || file.name != *name {
            return Err(MigrateError::Drift {
                version: *version,
                why: format!(
                    "{} was edited after it was applied (checksum {} in the database, {} on disk)",
                    file.file_name(),
                    checksum,
                    file.checksum
                ),
            });
        }
    }
    let current = history.iter().map(|h| h.0).max();
    if let Some(cur) = current {
        if let Some(gap) = set
            .files()
            .iter()
            .find(|f| f.version < cur && !history.iter().any(|h| h.0 == f.version))
        {
            return Err(MigrateError::Drift {
                version: gap.version,
                why: format!(
                    "{} is not applied but later versions are (a file was added below V{cur})",
                    gap.file_name()
                ),
            });
        }
    }
    Ok(current)
}
