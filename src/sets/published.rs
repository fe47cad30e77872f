//! Migration sets published to the control DB (docs/design.md#migration-sets): push, list, show and delete, and reading
//! one set's files back by id (what [`super::Catalog`] caches). The only SQL naming
//! `migration_sets`, `migration_set_files` and `migration_set_labels`.
//!
//! A set is validated with the rules of a migrations directory ([`MigrationSet::from_files`])
//! and stored content-addressed ([`MigrationSet::id`]: SHA-256 over every name and whole
//! file) in immutable rows: pushing the same files again finds the existing set. Sets
//! published when the id hashed refinery's checksums instead keep that id
//! ([`MigrationSet::legacy_id`]): reading one back checks its files against it, and pushing
//! the same files finds it. Labels (e.g. the application's git sha) name one set
//! for good; several labels may name the same set, since most commits change no migration.
//!
//! Who still needs a set (unfinished waves, schedules) is not read here: those tables
//! belong to their modules, which sit above this one. [`delete`] asks the caller through
//! [`SetUsers`], inside its own transaction.

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::PublishedError;
use crate::migrate::{MigrationSet, SetSource};

/// The largest single file a set may hold (the request body limit is `max_set_bytes`).
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// The most files a set may hold.
pub const MAX_FILES: usize = 10_000;

/// Body of `POST /v1/migration-sets`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PushMigrationSet)]
pub struct PushRequest {
    /// A name for the set, e.g. the application's git sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}$")]
    pub label: Option<String>,
    /// Every migration file, `V{n}__{name}.sql`, in any order.
    pub files: Vec<PushedFile>,
}

/// One file of a pushed set.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushedFile {
    /// The file name, `V{n}__{name}.sql`.
    pub name: String,
    /// The SQL text.
    pub sql: String,
}

/// A set as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MigrationSetSummary)]
pub struct SetSummary {
    pub id: String,
    /// Labels naming this set, oldest first.
    pub labels: Vec<String>,
    pub latest_version: i32,
    pub file_count: i32,
    pub total_bytes: i64,
    pub lint_errors: i64,
    pub lint_warnings: i64,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One file as shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MigrationSetFile)]
pub struct FileView {
    pub name: String,
    pub version: i32,
    /// refinery's checksum (decimal text, as in `refinery_schema_history`).
    pub checksum: String,
    pub no_transaction: bool,
    pub sql: String,
}

/// A set with its files and lint report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MigrationSet)]
pub struct SetView {
    #[serde(flatten)]
    pub summary: SetSummary,
    pub versions: Vec<i32>,
    pub files: Vec<FileView>,
    /// The lint report of the whole set (`drover migrations lint --format json`).
    #[schema(value_type = Object)]
    pub lint: Value,
}

/// Whether `s` looks like a set id (64 lower-case hex digits).
pub fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_label(label: &str) -> Result<(), PublishedError> {
    let invalid = |message: &str| PublishedError::Invalid {
        field: "label",
        message: message.into(),
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._/+-".contains(c);
    if label.is_empty() || label.len() > 128 || !label.chars().all(ok_char) {
        return Err(invalid(
            "1 to 128 characters: letters, digits and . _ / + - (e.g. a git sha or a tag)",
        ));
    }
    if !label.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid("must start with a letter or a digit"));
    }
    if label == "latest" || is_id(label) {
        return Err(invalid(
            "`latest` and 64-hex-digit labels would be mistaken for a set id",
        ));
    }
    Ok(())
}

/// Validates the request into a set (nothing is stored when this fails).
pub fn validate(req: &PushRequest) -> Result<MigrationSet, PublishedError> {
    if let Some(label) = &req.label {
        check_label(label)?;
    }
    if req.files.is_empty() {
        return Err(PublishedError::Invalid {
            field: "files",
            message: "a migration set needs at least one file".into(),
        });
    }
    if req.files.len() > MAX_FILES {
        return Err(PublishedError::Invalid {
            field: "files",
            message: format!("at most {MAX_FILES} files"),
        });
    }
    if let Some(big) = req.files.iter().find(|f| f.sql.len() > MAX_FILE_BYTES) {
        return Err(PublishedError::FileTooLarge {
            file: big.name.clone(),
            bytes: big.sql.len(),
        });
    }
    let set = MigrationSet::from_files(req.files.iter().map(|f| (f.name.clone(), f.sql.clone())))?;
    Ok(set.with_source(SetSource::Pushed))
}

/// Stores the set (or finds it) and its label. `true` when the set is new.
pub async fn push(
    pool: &Pool,
    req: &PushRequest,
    actor: &str,
) -> Result<(bool, SetView), PublishedError> {
    const INSERT_SET: &str = "INSERT INTO control_plane.migration_sets \
         (id, latest_version, file_count, total_bytes, lint, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id";
    const INSERT_FILES: &str = "INSERT INTO control_plane.migration_set_files \
         (set_id, version, name, checksum, sql, no_transaction) \
         SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::bool[])";
    const INSERT_LABEL: &str =
        "INSERT INTO control_plane.migration_set_labels (label, set_id, created_by) \
         VALUES ($1, $2, $3) ON CONFLICT (label) DO NOTHING";
    const LABEL_OWNER: &str =
        "SELECT set_id FROM control_plane.migration_set_labels WHERE label = $1";
    let set = validate(req)?;
    let latest = set.latest().unwrap_or(0);
    let lint = crate::lint::lint_set(&set, None, latest);
    let lint = serde_json::to_value(&lint).unwrap_or_default();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let id = match published_before(&*tx, &set).await? {
        Some(legacy) => legacy,
        None => set.id(),
    };
    let count = i32::try_from(set.files().len()).unwrap_or(i32::MAX);
    let bytes = i64::try_from(set.total_bytes()).unwrap_or(i64::MAX);
    let created = tx
        .query_opt(INSERT_SET, &[&id, &latest, &count, &bytes, &lint, &actor])
        .await?
        .is_some();
    if created {
        let files = set.files();
        let versions: Vec<i32> = files.iter().map(|f| f.version).collect();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        let sums: Vec<String> = files.iter().map(|f| f.checksum.to_string()).collect();
        let sql: Vec<&str> = files.iter().map(|f| f.sql.as_str()).collect();
        let no_tx: Vec<bool> = files.iter().map(|f| f.no_transaction).collect();
        tx.execute(INSERT_FILES, &[&id, &versions, &names, &sums, &sql, &no_tx])
            .await?;
    }
    let mut labelled = false;
    if let Some(label) = &req.label {
        labelled = tx.execute(INSERT_LABEL, &[label, &id, &actor]).await? == 1;
        if !labelled {
            let owner: String = tx
                .query_one(LABEL_OWNER, &[label])
                .await?
                .try_get("set_id")?;
            if owner != id {
                return Err(PublishedError::LabelTaken {
                    label: label.clone(),
                    set_id: owner,
                });
            }
        }
    }
    // A push that changed nothing (the same files, a label it already had) is no event.
    if created || labelled {
        let payload = json!({ "set_id": id, "created": created, "label": req.label,
            "latest_version": latest, "files": count });
        crate::audit::record(&*tx, "migration_set.pushed", actor, None, payload).await?;
    }
    tx.commit().await?;
    if created {
        tracing::info!(set = %id, files = count, latest, label = ?req.label, actor, "migration set pushed");
    }
    Ok((created, view(pool, &id).await?))
}

/// The id of the same files published before ids hashed the contents (under their
/// [`MigrationSet::legacy_id`]), compared byte for byte: pushing them again finds that
/// set, and its labels, rather than storing a twin under the new id.
async fn published_before(
    client: &impl tokio_postgres::GenericClient,
    set: &MigrationSet,
) -> Result<Option<String>, PublishedError> {
    const FILES: &str = "SELECT version, name, sql FROM control_plane.migration_set_files \
         WHERE set_id = $1 ORDER BY version";
    let legacy = set.legacy_id();
    let rows = client.query(FILES, &[&legacy]).await?;
    if rows.len() != set.files().len() {
        return Ok(None);
    }
    for (row, file) in rows.iter().zip(set.files()) {
        let (version, name, sql): (i32, String, String) = (
            row.try_get("version")?,
            row.try_get("name")?,
            row.try_get("sql")?,
        );
        if version != file.version || name != file.name || sql != file.sql {
            return Ok(None);
        }
    }
    Ok(Some(legacy))
}

const SUMMARY: &str = "SELECT s.id, s.latest_version, s.file_count, s.total_bytes, s.created_by, s.created_at, \
     (SELECT count(*) FROM jsonb_array_elements(s.lint->'findings') f WHERE f->>'level' = 'error') AS lint_errors, \
     (SELECT count(*) FROM jsonb_array_elements(s.lint->'findings') f WHERE f->>'level' = 'warning') AS lint_warnings, \
     coalesce((SELECT array_agg(l.label ORDER BY l.created_at, l.label) FROM control_plane.migration_set_labels l \
               WHERE l.set_id = s.id), '{}') AS labels \
     FROM control_plane.migration_sets s";

fn summary(row: &tokio_postgres::Row) -> Result<SetSummary, tokio_postgres::Error> {
    Ok(SetSummary {
        id: row.try_get("id")?,
        labels: row.try_get("labels")?,
        latest_version: row.try_get("latest_version")?,
        file_count: row.try_get("file_count")?,
        total_bytes: row.try_get("total_bytes")?,
        lint_errors: row.try_get("lint_errors")?,
        lint_warnings: row.try_get("lint_warnings")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The most recently pushed sets first.
pub async fn list(pool: &Pool, limit: i64) -> Result<Vec<SetSummary>, PublishedError> {
    let client = pool.get().await?;
    let sql = format!("{SUMMARY} ORDER BY s.created_at DESC, s.id LIMIT $1");
    let rows = client.query(&sql, &[&limit]).await?;
    Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
}

/// One set with its files.
pub async fn view(pool: &Pool, id: &str) -> Result<SetView, PublishedError> {
    const FILES: &str = "SELECT version, name, checksum, no_transaction, sql \
         FROM control_plane.migration_set_files WHERE set_id = $1 ORDER BY version";
    const LINT: &str = "SELECT lint FROM control_plane.migration_sets WHERE id = $1";
    let client = pool.get().await?;
    let sql = format!("{SUMMARY} WHERE s.id = $1");
    let row = client
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| PublishedError::NotFound(id.to_string()))?;
    let lint: Value = client.query_one(LINT, &[&id]).await?.try_get("lint")?;
    let files = client
        .query(FILES, &[&id])
        .await?
        .iter()
        .map(|r| {
            let version: i32 = r.try_get("version")?;
            let name: String = r.try_get("name")?;
            Ok(FileView {
                name: format!("V{version}__{name}.sql"),
                version,
                checksum: r.try_get("checksum")?,
                no_transaction: r.try_get("no_transaction")?,
                sql: r.try_get("sql")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(SetView {
        summary: summary(&row)?,
        versions: files.iter().map(|f| f.version).collect(),
        files,
        lint,
    })
}

/// The id an id or a label names, if that set exists.
pub async fn find(pool: &Pool, id_or_label: &str) -> Result<Option<String>, PublishedError> {
    const BY_ID: &str = "SELECT id FROM control_plane.migration_sets WHERE id = $1";
    const BY_LABEL: &str =
        "SELECT set_id AS id FROM control_plane.migration_set_labels WHERE label = $1";
    let client = pool.get().await?;
    let sql = if is_id(id_or_label) { BY_ID } else { BY_LABEL };
    Ok(match client.query_opt(sql, &[&id_or_label]).await? {
        Some(row) => Some(row.try_get("id")?),
        None => None,
    })
}

/// The most recently pushed set's id, if any set was pushed.
pub async fn newest_id(pool: &Pool) -> Result<Option<String>, PublishedError> {
    const NEWEST: &str = "SELECT id FROM control_plane.migration_sets \
         ORDER BY created_at DESC, id LIMIT 1";
    let client = pool.get().await?;
    Ok(match client.query_opt(NEWEST, &[]).await? {
        Some(row) => Some(row.try_get("id")?),
        None => None,
    })
}

/// The files of set `id`, checked against the id; `None` when there is no such set.
pub async fn fetch(pool: &Pool, id: &str) -> Result<Option<MigrationSet>, PublishedError> {
    const FILES: &str = "SELECT version, name, sql FROM control_plane.migration_set_files \
         WHERE set_id = $1 ORDER BY version";
    let client = pool.get().await?;
    let rows = client.query(FILES, &[&id]).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let files = rows
        .iter()
        .map(|r| {
            let version: i32 = r.try_get("version")?;
            let name: String = r.try_get("name")?;
            Ok((format!("V{version}__{name}.sql"), r.try_get("sql")?))
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let set = MigrationSet::from_files(files)?.with_source(SetSource::Pushed);
    // A set published before ids hashed the contents keeps its older id.
    if !set.answers_to(id) {
        return Err(PublishedError::Corrupt(id.to_string()));
    }
    Ok(Some(set.published_as(id)))
}

/// Pins pushed set `id` in the caller's transaction (one creating a wave that runs it): the
/// row is read `FOR SHARE` until commit, so a concurrent [`delete`] waits and then sees
/// the new user. `false` when the set is gone.
pub async fn pin(
    client: &impl tokio_postgres::GenericClient,
    id: &str,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "SELECT id FROM control_plane.migration_sets WHERE id = $1 FOR SHARE";
    Ok(client.query_opt(SQL, &[&id]).await?.is_some())
}

/// Who still uses a set, as [`SetUsers`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetUse {
    /// Ids (as text, oldest first) of the unfinished waves running the set.
    pub waves: Vec<String>,
    /// Names of the schedules whose template names the set (by id or label).
    pub schedules: Vec<String>,
}

/// Reads who still uses a set, for [`delete`]: implemented by the caller, which may read
/// the waves' and the schedules' tables (this module may not).
pub trait SetUsers: Sync {
    /// The users of pushed set `id`, known by every name in `names` (its id and labels),
    /// read in `tx`: the delete's transaction, after it locked the set's row.
    fn users(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        id: &str,
        names: &[String],
    ) -> impl std::future::Future<Output = Result<SetUse, tokio_postgres::Error>> + Send;
}

/// Deletes set `id`, refused while `users` reports an unfinished wave running it or a
/// schedule naming it.
pub async fn delete(
    pool: &Pool,
    id: &str,
    users: &impl SetUsers,
    actor: &str,
) -> Result<(), PublishedError> {
    const LOCK: &str = "SELECT id FROM control_plane.migration_sets WHERE id = $1 FOR UPDATE";
    const DELETE: &str = "DELETE FROM control_plane.migration_sets WHERE id = $1";
    const LABELS: &str = "SELECT label FROM control_plane.migration_set_labels WHERE set_id = $1";
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Wave creation reads the set row FOR SHARE: no wave can start on it while this runs.
    if tx.query_opt(LOCK, &[&id]).await?.is_none() {
        return Err(PublishedError::NotFound(id.to_string()));
    }
    let mut names = vec![id.to_string()];
    for r in tx.query(LABELS, &[&id]).await? {
        names.push(r.try_get("label")?);
    }
    let used = users.users(&tx, id, &names).await?;
    if !used.waves.is_empty() || !used.schedules.is_empty() {
        return Err(PublishedError::InUse {
            id: id.to_string(),
            waves: used.waves,
            schedules: used.schedules,
        });
    }
    tx.execute(DELETE, &[&id]).await?;
    let payload = json!({ "set_id": id, "labels": &names[1..] });
    crate::audit::record(&*tx, "migration_set.deleted", actor, None, payload).await?;
    tx.commit().await?;
    tracing::info!(set = %id, actor, "migration set deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(files: &[(&str, &str)], label: Option<&str>) -> PushRequest {
        PushRequest {
            label: label.map(str::to_string),
            files: files
                .iter()
                .map(|(n, s)| PushedFile {
                    name: n.to_string(),
                    sql: s.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_name_refinery_would_skip_is_refused_naming_the_file() {
        let err = validate(&req(
            &[("V1__ok.sql", "select 1;"), ("V2__add-col.sql", "")],
            None,
        ))
        .unwrap_err();

        assert!(err.to_string().contains("V2__add-col.sql"), "{err}");
    }

    #[test]
    fn labels_that_look_like_ids_or_latest_are_refused() {
        let files = [("V1__a.sql", "select 1;")];

        assert!(validate(&req(&files, Some("latest"))).is_err());
        assert!(validate(&req(&files, Some(&"a".repeat(64)))).is_err());
        assert!(validate(&req(&files, Some("-x"))).is_err());
        assert!(validate(&req(&files, Some("release/1.2.3+abc"))).is_ok());
    }

    #[test]
    fn an_empty_set_and_an_oversized_file_are_refused() {
        let big = "x".repeat(MAX_FILE_BYTES + 1);

        assert!(matches!(
            validate(&req(&[], None)),
            Err(PublishedError::Invalid { field: "files", .. })
        ));
        assert!(matches!(
            validate(&req(&[("V1__big.sql", &big)], None)),
            Err(PublishedError::FileTooLarge { .. })
        ));
    }
}
