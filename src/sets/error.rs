//! Why a migration-set operation failed: pushing, reading, deleting a set, or the
//! catalog fetching one. Only a control-DB failure is worth retrying; every other variant
//! needs different input (or, for [`PublishedError::Corrupt`], a person).

use crate::db::DbError;
use crate::migrate::SetError;

use super::published::MAX_FILE_BYTES;

/// Why a set operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishedError {
    /// The request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The files break the rules of a migrations directory (a bad name, a version twice).
    #[error("{0}")]
    Set(#[from] SetError),
    /// One file is over [`MAX_FILE_BYTES`].
    #[error("{file} is {bytes} bytes; a migration file may be at most {MAX_FILE_BYTES} bytes")]
    FileTooLarge { file: String, bytes: usize },
    /// No set with this id or label.
    #[error("no migration set {0:?} (an id, a label, or latest)")]
    NotFound(String),
    /// The label already names other files.
    #[error(
        "label {label:?} already names migration set {set_id}; labels are permanent, pick another"
    )]
    LabelTaken { label: String, set_id: String },
    /// Something unfinished still runs the set.
    #[error("migration set {id} is in use by unfinished waves [{}] and schedules [{}]", .waves.join(", "), .schedules.join(", "))]
    InUse {
        id: String,
        waves: Vec<String>,
        schedules: Vec<String>,
    },
    /// The stored files do not hash to their id (a damaged row); never run.
    #[error("migration set {0}: the stored files do not match the id")]
    Corrupt(String),
    /// The control DB failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl PublishedError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PublishedError::Db(e) if e.is_retryable())
    }
}

impl From<tokio_postgres::Error> for PublishedError {
    fn from(e: tokio_postgres::Error) -> Self {
        PublishedError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for PublishedError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PublishedError::Db(e.into())
    }
}
